import greenfl

CURATED = {
    "ConfigError",
    "DataError",
    "FederatedDataset",
    "Fleet",
    "FleetError",
    "GreenflError",
    "Ledger",
    "RoundRecord",
    "RunConfig",
    "RunResult",
    "TransportError",
    "UpdateRejected",
    "__version__",
    "build_config",
    "load_config",
    "load_fleet",
    "read_ledger",
    "run",
}


def test_public_api_is_curated() -> None:
    assert set(greenfl.__all__) == CURATED
    for name in greenfl.__all__:
        assert hasattr(greenfl, name), name

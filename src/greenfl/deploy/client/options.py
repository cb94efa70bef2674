"""What a deployed client is told (``ClientOptions``: where the server is, who it is, how it
retries) and what it keeps of its run (``ClientStats``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from greenfl.deploy.client.local import ClientAttack


@dataclass(frozen=True)
class ClientOptions:
    server: str
    client_id: int
    token: str = ""
    device: str = ""
    ca_cert_pem: bytes | None = None  # set: TLS, trusting this CA (or self-signed cert)
    tls_server_name: str | None = None  # the name the server's certificate is checked for
    max_message_mb: float = 256.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_for_s: float = 120.0  # give up after this long without reaching the server
    # Tests and demos only: sleep this long inside each task's measured window, as a slow
    # device would (a withdrawn task ends the sleep).
    test_delay_s: float = 0.0
    # Tests only: "share" or "mask": drop out of secure aggregation after that step.
    test_secagg_drop_after: str = ""
    # Tests and demos (greenfl join --attack): a malicious client poisoning its data or
    # its updates, as the simulated attacks do (greenfl.attacks).
    attack: ClientAttack = field(default_factory=lambda: ClientAttack("none"))


@dataclass
class ClientStats:
    rounds: int = 0
    rejected: int = 0
    withdrawn: int = 0  # tasks the server withdrew (their round closed without this client)
    bytes_up: int = 0
    bytes_down: int = 0
    compute_s: float = 0.0
    energy_j: float | None = None  # measured; None where the meter cannot measure energy
    reconnects: int = 0
    shutdown_reason: str = ""
    history: list[dict[str, object]] = field(default_factory=list)

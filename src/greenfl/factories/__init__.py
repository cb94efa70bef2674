"""The composition root: a RunConfig in, a run's parts out, built once (``compose``,
``build_loop``). Each part has its builder here, by concept: ``policies`` (strategy,
selector, codec, scheduler, bandit, each from its own validated params), ``data``
(dataset, model), ``world`` (the engine's settings, grid intensity, costs, the wait,
trainer, server work) and ``safety`` (attacks, privacy, secure aggregation).

Only this package, the CLI and the API read a RunConfig; the engine is handed objects."""

from greenfl.factories.compose import Given, build_loop, compose
from greenfl.factories.data import build_model_for, data_settings, dataset_for, model_name_for
from greenfl.factories.policies import (
    adapter_for,
    codec_for,
    policy_record,
    run_facts,
    run_strategy_for,
    scheduler_for,
    selector_for,
    strategy_for,
)
from greenfl.factories.world import engine_settings, server_work_for, trainer_for

__all__ = [
    "Given",
    "adapter_for",
    "build_loop",
    "build_model_for",
    "codec_for",
    "compose",
    "data_settings",
    "dataset_for",
    "engine_settings",
    "model_name_for",
    "policy_record",
    "run_facts",
    "run_strategy_for",
    "scheduler_for",
    "selector_for",
    "server_work_for",
    "strategy_for",
    "trainer_for",
]

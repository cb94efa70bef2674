"""The SQLite ledger's schema: one run per file; a row per round and per client and round."""

import sqlite3

SCHEMA_VERSION = 8

ROUND_COLUMNS: tuple[str, ...] = (
    "round",
    "start_s",
    "end_s",
    "wait_s",
    "accuracy",
    "loss",
    "selected",
    "completed",
    "server_s",
    "server_energy_j",
    "server_idle_energy_j",
    "server_carbon_g",
    "server_ci_g_per_kwh",
    "server_estimated",
    "server_flops",
    "server_measured",
    "wall_s",
    "client_acc_mean",
    "client_acc_p10",
    "client_acc_worst_decile",
    "client_acc_clients",
    "backdoor_success",
    "epsilon",
    "dp_clip_norm",
    "checkin_s",
    "config_s",
    "report_window_s",
    "width_accuracy",
)

CLIENT_ROUND_COLUMNS: tuple[str, ...] = (
    "round",
    "client_id",
    "device",
    "network",
    "region",
    "target",
    "status",
    "reason",
    "num_samples",
    "flops",
    "start_s",
    "compute_s",
    "bytes_up",
    "bytes_down",
    "comm_s",
    "energy_compute_j",
    "energy_comm_j",
    "ci_g_per_kwh",
    "carbon_operational_g",
    "carbon_embodied_g",
    "estimated",
    "wall_energy_j",
    "energy_network_j",
    "reported_energy_j",
    "server_estimate_j",
    "model_version",
    "staleness",
    "width",
    "precision",
    "density",
    "ci_source",
)

STATUSES: tuple[str, ...] = (
    "completed",
    "partial",
    "straggler",
    "dropped",
    "failed",
    "rejected",
    # issue 29: the update was aggregated, but what the client reported about its work
    # disagreed with what the server observed; the footprint uses the server's estimate
    "disputed",
)
# The statuses whose update was aggregated: all the round's work, or partial work cut at
# the deadline (``fleet.partial_work = "aggregate"``).
AGGREGATED: tuple[str, ...] = ("completed", "partial", "disputed")
AGGREGATED_SQL = "status IN ('completed', 'partial', 'disputed')"

# No CHECK (status IN STATUSES): it doubled the cost of an insert; LedgerWriter checks the
# statuses of each round before writing them.
DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    created_utc TEXT NOT NULL,
    greenfl_version TEXT NOT NULL,
    config_json TEXT NOT NULL,
    fleet_json TEXT NOT NULL,
    status TEXT NOT NULL,
    stop_reason TEXT
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    wait_s REAL NOT NULL DEFAULT 0,
    accuracy REAL,
    loss REAL,
    selected INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    server_s REAL NOT NULL,
    server_energy_j REAL NOT NULL,
    server_idle_energy_j REAL NOT NULL DEFAULT 0,
    server_carbon_g REAL NOT NULL,
    server_ci_g_per_kwh REAL NOT NULL,
    server_estimated INTEGER NOT NULL,
    server_flops REAL,
    server_measured INTEGER,
    wall_s REAL NOT NULL,
    client_acc_mean REAL,
    client_acc_p10 REAL,
    client_acc_worst_decile REAL,
    client_acc_clients INTEGER,
    backdoor_success REAL,
    epsilon REAL,
    dp_clip_norm REAL,
    checkin_s REAL,
    config_s REAL,
    report_window_s REAL,
    width_accuracy TEXT
);
CREATE TABLE IF NOT EXISTS client_rounds (
    round INTEGER NOT NULL,
    client_id INTEGER NOT NULL,
    device TEXT NOT NULL,
    network TEXT NOT NULL,
    region TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT 'default',
    status TEXT NOT NULL,
    reason TEXT,
    num_samples INTEGER NOT NULL,
    flops REAL NOT NULL,
    start_s REAL NOT NULL,
    compute_s REAL NOT NULL,
    bytes_up INTEGER NOT NULL,
    bytes_down INTEGER NOT NULL,
    comm_s REAL NOT NULL,
    energy_compute_j REAL NOT NULL,
    energy_comm_j REAL NOT NULL,
    ci_g_per_kwh REAL NOT NULL,
    carbon_operational_g REAL NOT NULL,
    carbon_embodied_g REAL NOT NULL,
    estimated INTEGER NOT NULL,
    wall_energy_j REAL,
    energy_network_j REAL,
    reported_energy_j REAL,
    server_estimate_j REAL,
    model_version INTEGER,
    staleness INTEGER,
    width REAL,
    precision TEXT,
    density REAL,
    ci_source TEXT,
    PRIMARY KEY (round, client_id)
);
CREATE TABLE IF NOT EXISTS server_state (
    key TEXT PRIMARY KEY,
    round INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chain (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    round INTEGER,
    rounds_sha256 TEXT,
    clients_sha256 TEXT,
    model_sha256 TEXT,
    state_sha256 TEXT,
    body TEXT,
    digest TEXT NOT NULL
);
"""
# issue 29: the hash chain (greenfl.ledger.chain). One link per committed round (kind
# 'round'), after one over the run's fingerprints (kind 'start'); a change accepted on
# --accept-changes is a link of its own (kind 'change', ``body`` says what and when). The
# tables are created on open (CREATE IF NOT EXISTS), so an older ledger gets them empty.

# Columns added after version 1, with their types: a version-1 ledger being resumed gets
# them (NULL in its earlier rounds) before any new round is written.
ADDED_ROUND_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_acc_mean", "REAL"),
    ("client_acc_p10", "REAL"),
    ("client_acc_worst_decile", "REAL"),
    ("client_acc_clients", "INTEGER"),
    # the server's counted work, and 1 where its time came from this host instead
    ("server_flops", "REAL"),
    ("server_measured", "INTEGER"),
    # issue 17: the backdoor's success rate on triggered test inputs (backdoor attack
    # only); the privacy spent so far, epsilon at privacy.delta, and the clip bound used
    # (differential privacy only)
    ("backdoor_success", "REAL"),
    ("epsilon", "REAL"),
    ("dp_clip_norm", "REAL"),
    # issue 28: the round's phases (selection/check-in, configuration, reporting window)
    ("checkin_s", "REAL"),
    ("config_s", "REAL"),
    ("report_window_s", "REAL"),
    # issue 31: each narrower sub-model width's test accuracy after the round, as JSON
    # {"0.5": 0.61, ...} (the full model's is ``accuracy``; NULL without sub-models)
    ("width_accuracy", "TEXT"),
)
# issue 28: each client round's device energy at the wall, and the network's part of
# energy_comm_j (NULL in rounds written before version 3)
ADDED_CLIENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("wall_energy_j", "REAL"),
    ("energy_network_j", "REAL"),
    # issue 29 (deployment): the device energy the client reported, and the server's own
    # estimate from the enrolled device and the observed wall time (NULL in simulation)
    ("reported_energy_j", "REAL"),
    ("server_estimate_j", "REAL"),
    # issue 30: the global model version the client trained from, and how many server
    # steps were applied between that and the step that took its update (0 in a
    # synchronous round; NULL in rounds written before version 5)
    ("model_version", "INTEGER"),
    ("staleness", "INTEGER"),
    # issue 31: the sub-model width the client trained (1.0: the full model; NULL in
    # rounds written before version 6)
    ("width", "REAL"),
    # issue 31: the arithmetic precision the client trained in ('fp32', 'bf16', 'fp16';
    # NULL in rounds written before version 7)
    ("precision", "TEXT"),
    # issue 31: the share of the model's weights the client trained and sent under a
    # sparsity mask (1.0: dense; NULL in rounds written before version 7)
    ("density", "REAL"),
    # issue 32: where the row's grid intensity came from: 'builtin' (the fleet's figures,
    # or a live provider's region that fell back to them), else the live provider
    # (electricitymaps, watttime, uk_eso; NULL in rounds written before version 8)
    ("ci_source", "TEXT"),
)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring an older ledger's tables up to this schema (additive changes only)."""
    for table, added in (("rounds", ADDED_ROUND_COLUMNS), ("client_rounds", ADDED_CLIENT_COLUMNS)):
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in added:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

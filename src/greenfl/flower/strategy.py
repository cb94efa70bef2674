"""``GreenflStrategy``: any Flower strategy, wrapped so that its run gets a greenfl ledger,
``summary.json`` and (optionally) greenfl's carbon-aware client selection.

The wrapper keeps the inner strategy's decisions (how many nodes, what they are sent, how
replies are aggregated) and adds greenfl's, from what the server sees:

- node ids are bound to fleet clients on the server side (``nodes``, the operator's
  enrolment; by default ascending node id -> fleet client 0, 1, ...), never from a node's
  word; with ``tell_clients``, each message's config also carries the bound client
  (``greenfl-client``), so that a simulated node can load that client's partition;
- bytes are the messages' own sizes, down and up;
- FLOPs come from each reply's footprint record (``footprint_mod``), checked against the
  round's median FLOPs per example (a node that strays beyond ``deploy.claim_tolerance``
  is charged the median's figure, its row ``disputed``);
- energy and carbon follow greenfl's footprint model for the bound fleet entry: device
  power, network, the grid's intensity by region and simulated time, embodied carbon, and
  the server's counted work (aggregation, plus the central evaluation's counted FLOPs);
- with ``selector`` (``carbon``, ``fedzero``, ``oort``, ...), the inner strategy's
  messages are re-addressed to the nodes greenfl's selector picks, as many as the inner
  strategy sampled.

Rows are written when a round ends (after the central evaluation, where there is one).
``start`` ends the ledger (``completed``, ``interrupted`` or ``failed``) and writes
``summary.json`` and ``config.json`` into ``out``: ``greenfl report``, ``compare`` and
``verify`` read the folder as a ``greenfl run`` one."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from greenfl.config.load import load_config
from greenfl.config.run import RunConfig, build_config
from greenfl.core.errors import ConfigError
from greenfl.flower.book import FlowerBook
from greenfl.flower.claims import NodeReply
from greenfl.flower.record import (
    CLIENT_KEY,
    FOOTPRINT_KEY,
    Footprint,
    app_metrics,
    message_bytes,
)
from greenfl.models.flop_hooks import LayerFlopCounter

log = logging.getLogger("greenfl.flower")

EvaluateFn = Callable[[int, ArrayRecord], MetricRecord | None]


class GreenflStrategy(Strategy):
    """Wrap ``inner`` (any Flower message-API strategy). ``fleet``: ``builtin`` or a fleet
    file; ``out``: the run folder (None: the ledger is kept in memory); ``config``: a
    greenfl config (file, mapping or RunConfig) for the world (``[fleet]``, ``seed``,
    ``[selection]``, ``stop.target_accuracy``); ``selector``: a greenfl selector name, or
    None to keep the inner strategy's sampling; ``nodes``: node id -> fleet client id;
    ``tell_clients``: put each node's fleet client in its messages' config
    (``greenfl-client``), for a simulation whose nodes load that client's partition."""

    def __init__(
        self,
        inner: Strategy,
        fleet: str | Path | None = None,
        out: str | Path | None = None,
        *,
        config: str | Path | Mapping[str, Any] | RunConfig | None = None,
        selector: str | None = None,
        nodes: Mapping[int, int] | None = None,
        accuracy_key: str = "accuracy",
        loss_key: str = "loss",
        overwrite: bool = False,
        tell_clients: bool = False,
    ) -> None:
        self.inner = inner
        # Off by default: a per-node config makes every message's content its own, which
        # Flower then serialises once per node instead of once per round.
        self.tell_clients = tell_clients
        self.cfg = _config(config, fleet, selector)
        self.book = FlowerBook(self.cfg, Path(out) if out is not None else None, overwrite)
        self.selector = selector
        self.accuracy_key, self.loss_key = accuracy_key, loss_key
        self._nodes: dict[int, int] = {int(n): int(c) for n, c in (nodes or {}).items()}
        self._sent: dict[int, int] = {}  # node id -> bytes sent to it this round (train)
        self._eval_sent: dict[int, int] = {}
        self._num_params = 0
        self._pending: list[NodeReply] | None = None  # a round's replies, not yet written
        self._fed_metrics: MetricRecord | None = None
        self._eval_flops = 0.0

    # ---- Flower's Strategy ------------------------------------------------------------
    def summary(self) -> None:
        log.info("greenfl: ledger %s, selector %s", self.book.out, self.selector or "inner")
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._close_round(math.nan, math.nan)  # a round left open (no central evaluation)
        msgs = list(self.inner.configure_train(server_round, arrays, config, grid))
        self._bind(grid)
        self._num_params = sum(int(np.prod(a.shape)) for a in arrays.values())
        connected = self._connected(grid)
        if msgs:
            self.book.local_epochs = _local_epochs(msgs[0], self.cfg.train.local_epochs)
        self.book.open_round(server_round, len(msgs), len(connected))
        if self.selector is not None and msgs:
            msgs = self._reselect(msgs, connected)
        msgs = self._addressed(msgs)
        self._sent = {m.metadata.dst_node_id: message_bytes(m) for m in msgs}
        if msgs:
            self.book.bytes_down = next(iter(self._sent.values()))
        self._eval_flops = 0.0
        self._fed_metrics = None
        return msgs

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self._pending = self._read(replies, self._sent)
        ok = [r.bytes_up for r in self._pending if r.ok]
        if ok:
            self.book.bytes_up = int(np.median(ok))
        return self.inner.aggregate_train(server_round, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        msgs = self._addressed(
            list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        )
        self._eval_sent = {m.metadata.dst_node_id: message_bytes(m) for m in msgs}
        return msgs

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        replies = list(replies)
        self.book.record_evaluate(server_round, self._read(replies, self._eval_sent))
        self._fed_metrics = self.inner.aggregate_evaluate(server_round, replies)
        return self._fed_metrics

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: EvaluateFn | None = None,
    ) -> Result:
        """Flower's round loop with the ledger kept: each round's rows are written once
        its central evaluation (``evaluate_fn``, FLOPs counted) is in, and the run is ended
        in the ledger however the loop ends."""
        self._initial_accuracy: float | None = None
        status, reason = "failed", "the Flower run raised an error"
        try:
            result = super().start(
                grid,
                initial_arrays,
                num_rounds,
                timeout,
                train_config,
                evaluate_config,
                self._counted(evaluate_fn),
            )
            self._close_round(*self._federated_quality())
            status, reason = "completed", f"{num_rounds} rounds done"
            return result
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted"
            raise
        finally:
            if self.book.ledger is not None:
                self.book.finish(status, reason, self._initial_accuracy)

    # ---- greenfl's side ---------------------------------------------------------------
    def _bind(self, grid: Grid) -> None:
        """Bind the connected nodes to fleet clients, once, on the server's side."""
        if self.book.population is not None:
            return
        if not self._nodes:
            ids = sorted(int(n) for n in grid.get_node_ids())
            self._nodes = {n: i for i, n in enumerate(ids)}
        clients = sorted(self._nodes.values())
        if clients != list(range(len(clients))):
            raise ConfigError(
                "GreenflStrategy nodes: the fleet client ids must be 0..n-1, each once"
            )
        facts = {
            "inner": f"{type(self.inner).__module__}.{type(self.inner).__qualname__}",
            "selector": self.selector,
            "nodes": {str(n): c for n, c in sorted(self._nodes.items())},
        }
        self.book.bind(len(clients), facts)

    def _connected(self, grid: Grid) -> list[int]:
        return sorted(int(n) for n in grid.get_node_ids() if int(n) in self._nodes)

    def _reselect(self, msgs: list[Message], connected: list[int]) -> list[Message]:
        """The inner strategy's messages, re-addressed to the nodes greenfl's selector picks
        among the connected ones the world has available (as many as it sampled)."""
        bound = np.array([self._nodes[n] for n in connected], dtype=np.int64)
        candidates = np.intersect1d(bound, self.book.available_clients())
        chosen = self.book.pick(candidates, len(msgs), self.book.local_epochs)
        node_of = {c: n for n, c in self._nodes.items()}
        return [
            Message(
                content=m.content,
                dst_node_id=node_of[int(c)],
                message_type=m.metadata.message_type,
            )
            for m, c in zip(msgs, chosen.tolist(), strict=False)
        ]

    def _addressed(self, msgs: list[Message]) -> list[Message]:
        """The messages to bound nodes (one to a node not bound is dropped), each with its
        node's fleet client in its config where ``tell_clients`` asks (a copy of the shared
        record: arrays are not copied)."""
        out = []
        for m in msgs:
            node = int(m.metadata.dst_node_id)
            if node not in self._nodes:
                log.warning("greenfl: node %d is not bound to a fleet client: not sent", node)
                continue
            if not self.tell_clients:
                out.append(m)
                continue
            content = RecordDict(dict(m.content.items()))
            configs = list(m.content.config_records.items())
            name, cfg = configs[0] if configs else ("config", ConfigRecord())
            copied = ConfigRecord(dict(cfg.items()))
            copied[CLIENT_KEY] = self._nodes[node]
            content[name] = copied
            out.append(
                Message(content=content, dst_node_id=node, message_type=m.metadata.message_type)
            )
        return out

    def _read(self, replies: list[Message], sent: dict[int, int]) -> list[NodeReply]:
        """What the server saw of each node asked: its reply's bytes, the app's examples
        and loss, and its footprint record (taken out: the inner strategy sees the app's
        records only). A node asked that did not answer failed."""
        out: list[NodeReply] = []
        answered: set[int] = set()
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if node not in self._nodes:
                continue
            answered.add(node)
            cid, down = self._nodes[node], sent.get(node, 0)
            if msg.has_error():
                why = f"the node answered with an error: {msg.error.reason}"
                out.append(NodeReply(cid, False, why, down, 0, 0.0, 0, math.nan, 0.0))
                continue
            up = message_bytes(msg)
            rec = msg.content.get(FOOTPRINT_KEY)
            fp: Footprint | None = None
            reason = None
            if isinstance(rec, MetricRecord):
                try:
                    fp = Footprint.from_record(rec)
                except ValueError as exc:
                    reason = str(exc)
                del msg.content[FOOTPRINT_KEY]
            examples, loss = app_metrics(msg)
            out.append(
                NodeReply(
                    cid,
                    True,
                    reason,
                    down,
                    up,
                    fp.flops if fp else 0.0,
                    examples,
                    loss,
                    fp.compute_s if fp else 0.0,
                    metered_energy_j=fp.energy_j if fp else None,
                    has_record=fp is not None,
                )
            )
        for node, down in sent.items():
            if node not in answered:
                why = "no reply before the round's timeout"
                out.append(NodeReply(self._nodes[node], False, why, down, 0, 0.0, 0, math.nan, 0.0))
        return out

    def _counted(self, fn: EvaluateFn | None) -> EvaluateFn | None:
        """``evaluate_fn`` with its FLOPs counted (the server's evaluation work) and its
        metrics kept: the round's row is written once they are in."""
        if fn is None:
            return None

        def counted(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            with LayerFlopCounter() as counter:
                res = fn(server_round, arrays)
            acc, loss = self._quality(res)
            if server_round == 0:
                self._initial_accuracy = acc
            else:
                self._eval_flops = float(counter.flops)
                self._close_round(acc, loss)
            return res

        return counted

    def _quality(self, res: MetricRecord | None) -> tuple[float, float]:
        if res is None:
            return math.nan, math.nan
        acc, loss = res.get(self.accuracy_key), res.get(self.loss_key)
        return (
            float(acc) if isinstance(acc, (int, float)) else math.nan,
            float(loss) if isinstance(loss, (int, float)) else math.nan,
        )

    def _federated_quality(self) -> tuple[float, float]:
        return self._quality(self._fed_metrics)

    def _close_round(self, accuracy: float, loss: float) -> None:
        if self._pending is None:
            return
        if math.isnan(accuracy):
            accuracy, loss = self._federated_quality()
        pending, self._pending = self._pending, None
        self.book.close_round(pending, accuracy, loss, self._num_params, self._eval_flops)


def _local_epochs(msg: Message, default: int) -> int:
    for rec in msg.content.config_records.values():
        for key in ("local-epochs", "local_epochs", "epochs"):
            v = rec.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
    return default


def _config(
    config: str | Path | Mapping[str, Any] | RunConfig | None,
    fleet: str | Path | None,
    selector: str | None,
) -> RunConfig:
    overrides: list[str] = []
    if fleet is not None:
        overrides.append(f"fleet.catalog={fleet}")
    if selector is not None:
        overrides.append(f"selection.name={selector}")
    if isinstance(config, RunConfig):
        config = config.to_dict()
    if config is None or isinstance(config, Mapping):
        return build_config(dict(config or {}), overrides, source="GreenflStrategy config")
    return load_config(config, overrides)

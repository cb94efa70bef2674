"""A deployed client's local side, built from the server's config when it joins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from pydantic import ValidationError

from greenfl.attacks import ATTACKS, DATA_ATTACKS, PoisonedDataset, UpdateAttack
from greenfl.clients.trainer import TrainResult, train_one
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError, TransportError
from greenfl.core.messages import FitInstructions
from greenfl.core.params import ParamSpec, get_flat
from greenfl.data.base import FederatedDataset
from greenfl.data.local_dir import LocalDirDataset
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.widths import cut
from greenfl.factories import build_model_for, codec_for, dataset_for, model_name_for
from greenfl.factories.sparsity import sparse_training_for
from greenfl.fleet.profiles import PRECISIONS
from greenfl.models.flops import training_flops_per_sample
from greenfl.sparse.server import SparseTraining


@dataclass(frozen=True)
class ClientAttack:
    """The attack a test client mounts (``greenfl join --attack``): ``name`` as in the
    config's [attack] section, ``scale`` its scale (None: the attack's default, see
    AttackConfig.scale), ``backdoor_target`` the label its trigger forces."""

    name: str
    scale: float | None = None
    backdoor_target: int = 0

    def __post_init__(self) -> None:
        if self.name == "alie":
            raise ConfigError(
                "--attack alie needs the colluding attackers' statistics across clients: "
                "it runs in simulation ([attack] name = 'alie'), not from one client"
            )
        if self.name not in ATTACKS:
            raise ConfigError(f"--attack {self.name!r}: choose one of {', '.join(ATTACKS)}")

    def poison(self, dataset: FederatedDataset, client_id: int, seed: int) -> FederatedDataset:
        """``dataset`` with this client's training data poisoned (data attacks only)."""
        if self.name not in DATA_ATTACKS:
            return dataset
        return PoisonedDataset(dataset, [client_id], self.name, seed, self.backdoor_target)

    def on_update(
        self, round_idx: int, result: TrainResult, seed: int, clients_per_round: int
    ) -> TrainResult:
        """The trained update as this client sends it (scaling's default boost is the
        run's clients per round, as in simulation)."""
        if self.name in ("none", "label_flip"):
            return result
        default = float(clients_per_round) if self.name == "scaling" else 1.0
        scale = self.scale if self.scale is not None else default
        attack = UpdateAttack(self.name, scale, seed)
        sent = attack.apply(round_idx, {result.client_id: result.delta}, {})
        return replace(result, delta=sent[result.client_id])


@dataclass(frozen=True)
class LocalModel:
    """What a client trains for a task: the full model, or a width's sub-model (its own
    tensors, the slice of the global model a task of that width carries), and its counted
    training FLOPs per sample."""

    module: torch.nn.Module
    spec: ParamSpec
    flops_per_sample: float


@dataclass
class Local:
    """What a client builds once from the server's config: its data, model and codec.
    ``model_input``: the model's input shape and number of classes (to count a
    sub-model's FLOPs)."""

    cfg: RunConfig
    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    spec: ParamSpec
    codec: Codec
    flops_per_sample: float
    test: tuple[torch.Tensor, torch.Tensor] | None = None  # local held-out data, if any
    model_input: tuple[tuple[int, ...], int] = ((), 0)
    # Sparse training (docs/submodels.md): the mask this client holds, the masked model
    sparse: SparseTraining | None = None
    _widths: dict[float, LocalModel] = field(default_factory=dict, repr=False)

    def under_mask(self, msg: pb.SparseMask) -> SparseTraining:
        """The sparse training state a task's ``sparse`` field names: its mask loaded if
        the task carries it, else the one this client holds, which must be its version.
        TransportError for a run without sparsity, a mask that does not fit the model, or
        a version this client does not hold (the server then sends the mask again)."""
        sparse, version = self.sparse, int(msg.version)
        if sparse is None:
            raise TransportError(
                "the server sends a sparsity mask; the run's config has sparsity.name 'none'"
            )
        if msg.mask:
            try:
                sparse.load_mask(sparse.decode_mask(msg.mask), version)
            except ValueError as exc:
                raise TransportError(f"the server's sparsity mask: {exc}") from None
        elif sparse.version != version:
            raise TransportError(
                f"the task's kept values follow sparsity mask version {version} and carry no "
                f"mask; this client holds version {sparse.version}"
            )
        return sparse

    def at(self, width: float) -> LocalModel:
        """The model a task of sub-model ``width`` trains (1: the full model), built the
        first time a task asks for it; TransportError for a width the run does not train."""
        if width == 1.0:
            return LocalModel(self.model, self.spec, self.flops_per_sample)
        built = self._widths.get(width)
        if built is None:
            sm = self.cfg.submodel
            if sm.name == "none" or width not in sm.widths:
                trained = ", ".join(f"{w:g}" for w in sm.widths) if sm.name != "none" else "1"
                raise TransportError(
                    f"the server asks for sub-model width {width:g}; the run's config trains "
                    f"widths {trained}"
                )
            module, _, spec = cut(self.model, width)
            flops = training_flops_per_sample(module, *self.model_input, self.cfg.train.batch_size)
            built = self._widths[width] = LocalModel(module, spec, flops)
        return built

    def check_precision(self, precision: str, device: str, declared: Sequence[str]) -> None:
        """TransportError unless a task may be trained in ``precision``: one greenfl knows,
        one the run's ``train.precision`` gives a client (fp32 always; bf16 or fp16 if
        asked, either under ``auto``), and, where the server said what the enrolled
        ``device`` trains in (``declared``: ``JoinReply.precisions``; empty: not said),
        one of those. The server's engine asks nothing else; a task that does (a server of
        another version, a fault) is answered with the error, never trained in another
        precision than the one the server charges."""
        if precision not in PRECISIONS:
            raise TransportError(
                f"the server asks for precision {precision!r}; this client trains in "
                f"{', '.join(PRECISIONS)}"
            )
        if precision == "fp32":
            return
        run = self.cfg.train.precision
        if run not in (precision, "auto"):
            raise TransportError(
                f"the server asks for precision {precision}; the run's train.precision is {run!r}"
            )
        if declared and precision not in declared:
            raise TransportError(
                f"the server asks for precision {precision}; device {device!r}, as this "
                f"client is enrolled, trains in {', '.join(declared)} only"
            )


def build_local(
    reply: pb.JoinReply,
    data: LocalDirDataset | None,
    client_id: int,
    attack: ClientAttack | None = None,
) -> Local:
    """What a client builds once from the server's config: its data (its own, checked
    against the run's model, or partition ``client_id``; poisoned under a data attack),
    model and codec."""
    try:
        cfg = RunConfig.model_validate_json(reply.config_json)
    except ValidationError as exc:
        # A server of another greenfl version may send keys this one does not know.
        raise TransportError(
            f"the server's config does not validate here (greenfl versions differ?): "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from None
    test = None
    dataset: FederatedDataset
    if data is not None:
        if not reply.input_shape or reply.num_classes <= 0:
            raise TransportError(
                "the server did not say what its model takes (an older greenfl?); "
                "--data-dir needs a server of this version"
            )
        # Checked here, before any training: the first moment the model is known.
        local = data.for_model(
            tuple(reply.input_shape),
            int(reply.num_classes),
            f"the run's model ({model_name_for(cfg)} on {cfg.data.dataset})",
        )
        test = local.test_data() if local.test is not None else None
        dataset = local if attack is None else attack.poison(local, 0, cfg.seed)
        x, y = dataset.client_data(0)
    else:
        # Demo and test deployments hold partition N of the configured dataset.
        dataset = dataset_for(cfg.data, cfg.seed)
        if attack is not None:
            dataset = attack.poison(dataset, client_id, cfg.seed)
        x, y = dataset.client_data(client_id)
    model = build_model_for(cfg, dataset)
    flops = training_flops_per_sample(
        model, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
    )
    codec = codec_for(cfg.compression)
    # One throwaway step (lr 0, on a copy of the weights): torch's first optimizer step
    # does one-time imports, seconds on a busy machine, that would otherwise be measured
    # as round 1's training time and energy.
    warm = FitInstructions(1, 1, 0.0, cfg.train.momentum, 0.0)
    train_one(model, get_flat(model), x[:1], y[:1], client_id, warm, 0)
    model_input = (tuple(dataset.input_shape), int(dataset.num_classes))
    # A client's own copy of the run's sparse training: it rebuilds the server's mask
    # from the tasks and trains as a simulated client does (population of one: the
    # server, not the client, remembers who holds which mask).
    sparse = sparse_training_for(cfg, model, dataset, 1, codec, flops, deployed=True)
    spec = ParamSpec.of(model)
    return Local(cfg, x, y, model, spec, codec, flops, test, model_input, sparse)

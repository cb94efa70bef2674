"""Width-scaled sub-models (HeteroFL, FjORD's ordered dropout): a client trains the first
ceil(r x width) units of every hidden layer of the global model; the server averages each
coordinate over the clients that trained it (docs/submodels.md).

Importing this package imports no torch. The parts live in their modules:

- ``greenfl.submodel.widths``: width ratios, units kept, GroupNorm groups;
- ``greenfl.submodel.supported``: the supported models by name;
- ``greenfl.submodel.plan``: ``submodel``, ``build_submodel``, ``slice_of``,
  ``slice_indices``, ``width_slices``, ``Slice``, ``sub_params``, ``scatter_delta``,
  ``expand_delta``;
- ``greenfl.submodel.layers``, ``.sequential``, ``.lstm``: how each layer and each model
  family is cut;
- ``greenfl.submodel.aggregate``: ``aggregate_slices`` and the ``HeteroFL`` strategy;
- ``greenfl.submodel.costs``: FLOPs, parameters and bytes per width."""

from __future__ import annotations

from greenfl.submodel.supported import SUPPORTED_MODELS, check_model
from greenfl.submodel.widths import check_width, groups_at, units_at

__all__ = ["SUPPORTED_MODELS", "check_model", "check_width", "groups_at", "units_at"]

"""Sparse training (issue 31, item 3): the server prunes the global model by weight
magnitude to a target sparsity on a schedule (Zhu & Gupta, 2017), keeps the mask, and
applies it after each aggregation; clients train the masked model and send only the kept
coordinates of their delta (docs/submodels.md, "Sparse training").

Dense kernels on an unstructured mask save bytes, not FLOPs: the clients' FLOPs are
counted at the dense model's. Pruning whole units (``structured``) leaves a smaller dense
model, and its FLOPs are counted.

Importing this package imports no torch. The parts live in their modules:

- ``greenfl.sparse.schedule``: ``PruneSchedule``, the gradual polynomial schedule;
- ``greenfl.sparse.layout``: ``prunable_layout``, which coordinates of the flat vector
  may be pruned (weights of linear, convolutional and recurrent layers);
- ``greenfl.sparse.mask``: ``magnitude_mask`` and ``mask_cost``, the mask's wire size;
- ``greenfl.sparse.channels``: structured pruning of whole hidden units and channels
  (``ChannelPruner``), whose smaller model clients train, its FLOPs counted;
- ``greenfl.sparse.training``: ``MaskedModule``, the model clients train;
- ``greenfl.sparse.server``: ``SparseTraining``, the run's mask and what travels under it;
- ``greenfl.sparse.strategy``: ``MaskedStrategy``, aggregation then the mask."""

from __future__ import annotations

from greenfl.sparse.schedule import PruneSchedule

__all__ = ["PruneSchedule"]

"""``data.region_skew``: clients in different regions see different data.

Each region has a profile drawn from (the run's seed, the region), and every client of the
region gets its region's shift, of strength ``skew`` in [0, 1]:

- a label shift: the region favours a fifth of the classes (at least one). A client's
  samples are re-drawn, with replacement and as many as it holds, from its own data: with
  probability ``skew`` a sample of a favoured class (uniformly among the client's samples
  of those classes), otherwise any of its samples. A client holding none of the favoured
  classes keeps its data's mix.
- a feature shift (float features only; token ids are left alone): every feature moves by
  ``FEATURE_SHIFT * skew`` of its standard deviation (over the central test set) times a
  fixed N(0, 1) draw of the region: a region's own sensor, paper or lighting.

A client's data is derived on demand from its own random stream, so the wrapper holds
nothing per client; ``client_sizes()`` are the inner dataset's (the fleet and the
accounting use them). A client's own test data is shifted the same way (a stream of its
own), so accuracy on a region's clients measures that region's distribution; the central
test set is the inner one, unshifted.

A model that never sees a region has not learnt its shift: leaving the region out costs
accuracy on its clients, which is what this makes measurable."""

from __future__ import annotations

import math

import numpy as np
import torch

from greenfl.data.base import FederatedDataset

FAVOURED_SHARE = 0.2  # of the classes each region favours
# Standard deviations per feature at skew 1 (times a region's N(0, 1)). At 1, leaving a
# region out of a digits run at skew 0.5 cost its clients 3-7 points, often within the
# noise of ~170 test samples; at 2 it cost 5-30 (measured over seeds 0-3, 100 rounds).
FEATURE_SHIFT = 2.0
_STREAM = 29
_FAVOURED, _TRAIN, _TEST, _SHIFT = 0, 1, 2, 3  # the random streams, each by region or client


class RegionSkewed:
    """``inner`` with each client's data shifted by its region's profile (module doc)."""

    def __init__(
        self,
        inner: FederatedDataset,
        client_region: np.ndarray,
        num_regions: int,
        skew: float,
        seed: int,
    ) -> None:
        if len(client_region) != inner.num_clients:
            raise ValueError(f"{len(client_region)} client regions for {inner.num_clients} clients")
        if not 0.0 <= skew <= 1.0:
            raise ValueError(f"region skew {skew} is outside [0, 1]")
        self.inner = inner
        self.name = inner.name
        self.num_clients = inner.num_clients
        self.input_shape = inner.input_shape
        self.num_classes = inner.num_classes
        self.client_region = np.asarray(client_region, dtype=np.int64)
        self.num_regions = num_regions
        self.skew = skew
        self.seed = seed
        self._favoured: dict[int, np.ndarray] = {}
        self._shift: dict[int, torch.Tensor] = {}
        self._feature_std: torch.Tensor | None = None

    def client_sizes(self) -> np.ndarray:
        return self.inner.client_sizes()

    def favoured_classes(self, region: int) -> np.ndarray:
        """The classes ``region`` favours, sorted."""
        if region not in self._favoured:
            rng = np.random.default_rng([self.seed, _STREAM, _FAVOURED, region])
            k = max(1, math.ceil(self.num_classes * FAVOURED_SHARE))
            self._favoured[region] = np.sort(rng.choice(self.num_classes, k, replace=False))
        return self._favoured[region]

    def feature_shift(self, region: int) -> torch.Tensor:
        """What ``region`` adds to every float input (of the input's shape)."""
        if region not in self._shift:
            rng = np.random.default_rng([self.seed, _STREAM, _SHIFT, region])
            z = torch.from_numpy(rng.standard_normal(self.input_shape).astype(np.float32))
            self._shift[region] = z * self._std() * (FEATURE_SHIFT * self.skew)
        return self._shift[region]

    def _std(self) -> torch.Tensor:
        """Each feature's standard deviation over the central test set (computed once)."""
        if self._feature_std is None:
            x, _ = self.inner.test_data()
            self._feature_std = x.float().std(dim=0) if len(x) > 1 else torch.ones(x.shape[1:])
        return self._feature_std

    def _shifted(
        self, client_id: int, data: tuple[torch.Tensor, torch.Tensor], stream: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = data
        if self.skew == 0.0 or len(y) == 0:
            return x, y
        region = int(self.client_region[client_id])
        labels = y.numpy()
        favoured = np.isin(labels, self.favoured_classes(region))
        chance = np.full(len(labels), (1.0 - self.skew) / len(labels))
        if favoured.any():
            chance[favoured] += self.skew / int(favoured.sum())
        else:  # nothing to tilt toward: the client's own mix
            chance += self.skew / len(labels)
        rng = np.random.default_rng([self.seed, _STREAM, stream, client_id])
        pick = torch.from_numpy(rng.choice(len(labels), len(labels), p=chance / chance.sum()))
        x, y = x[pick], y[pick]
        if x.is_floating_point():
            x = x + self.feature_shift(region).to(x.dtype)
        return x, y

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._shifted(client_id, self.inner.client_data(client_id), _TRAIN)

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._shifted(client_id, self.inner.client_test_data(client_id), _TEST)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.test_data()

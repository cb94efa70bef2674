"""Synthetic(alpha, beta) of the FedProx paper (Li et al., MLSys 2020), generated lazily.

Client k draws u_k ~ N(0, alpha), B_k ~ N(0, beta); W_k, b_k ~ N(u_k, 1); v_k ~ N(B_k, 1);
x ~ N(v_k, diag(j^-1.2)); y = argmax(W_k x + b_k). alpha controls how much the clients'
labelling rules differ, beta how much their features differ. As in the authors' generator,
alpha and beta are standard deviations (numpy's normal(0, alpha)), not variances.

Client sizes: ``sizes="fedprox"`` is the authors' lognormal(4, 2) + 50 (heavy-tailed: a few
clients hold thousands of samples); ``"clipped"`` (the default) is greenfl's lighter
lognormal of sigma 1 with mean ``mean_samples``, clipped to [5, 444], for quick runs.

Each client's data comes from its own random stream seeded by (seed, client_id), so a
client's samples are derived by index on demand and never stored for the whole population.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from greenfl.core.registry import params
from greenfl.data.base import DatasetDefaults, DataSettings

NUM_FEATURES = 60
NUM_CLASSES = 10
MIN_SAMPLES = 5
MAX_SAMPLES = 444
_SIZES_STREAM = 2**31 - 1
_TEST_STREAM = 1
_TEST_CLIENTS = 100
_TEST_SAMPLES_PER_CLIENT = 20
_SIZE_SIGMA = 1.0
FEDPROX_SIZE_MU, FEDPROX_SIZE_SIGMA, FEDPROX_SIZE_MIN = 4.0, 2.0, 50
_COV_DIAG = np.arange(1, NUM_FEATURES + 1, dtype=np.float64) ** -1.2


class SyntheticDataset:
    def __init__(
        self,
        num_clients: int,
        seed: int,
        alpha: float,
        beta: float,
        mean_samples: float,
        sizes: str = "clipped",
    ) -> None:
        self.name = "synthetic"
        self.num_clients = num_clients
        self.input_shape = (NUM_FEATURES,)
        self.num_classes = NUM_CLASSES
        self.seed = seed
        self.alpha = alpha
        self.beta = beta
        rng = np.random.default_rng([seed, _SIZES_STREAM])
        if sizes == "fedprox":
            drawn = rng.lognormal(FEDPROX_SIZE_MU, FEDPROX_SIZE_SIGMA, num_clients)
            self._sizes = (drawn.astype(np.int64) + FEDPROX_SIZE_MIN).astype(np.int64)
            return
        # mean of a lognormal is exp(mu + sigma^2/2): choose mu so the mean is mean_samples
        mu = np.log(mean_samples) - _SIZE_SIGMA**2 / 2
        sizes = rng.lognormal(mu, _SIZE_SIGMA, num_clients)
        self._sizes = np.clip(np.rint(sizes), MIN_SAMPLES, MAX_SAMPLES).astype(np.int64)

    def client_sizes(self) -> np.ndarray:
        return self._sizes

    def _client_model(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        u = rng.normal(0.0, self.alpha) if self.alpha > 0 else 0.0
        b_mean = rng.normal(0.0, self.beta) if self.beta > 0 else 0.0
        w = rng.normal(u, 1.0, (NUM_FEATURES, NUM_CLASSES))
        b = rng.normal(u, 1.0, NUM_CLASSES)
        v = rng.normal(b_mean, 1.0, NUM_FEATURES)
        return w, b, v

    @staticmethod
    def _sample(
        rng: np.random.Generator, n: int, w: np.ndarray, b: np.ndarray, v: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = v + rng.standard_normal((n, NUM_FEATURES)) * np.sqrt(_COV_DIAG)
        y = np.argmax(x @ w + b, axis=1)
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, client_id])
        w, b, v = self._client_model(rng)
        return self._sample(rng, int(self._sizes[client_id]), w, b, v)

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh samples from the client's own distribution (the test stream)."""
        w, b, v = self._client_model(np.random.default_rng([self.seed, client_id]))
        rng = np.random.default_rng([self.seed, client_id, _TEST_STREAM])
        return self._sample(rng, _TEST_SAMPLES_PER_CLIENT, w, b, v)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh samples from the first clients' own distributions (a separate stream)."""
        xs, ys = [], []
        for cid in range(min(self.num_clients, _TEST_CLIENTS)):
            w, b, v = self._client_model(np.random.default_rng([self.seed, cid]))
            rng = np.random.default_rng([self.seed, cid, _TEST_STREAM])
            x, y = self._sample(rng, _TEST_SAMPLES_PER_CLIENT, w, b, v)
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)


@params
class SyntheticParams:
    alpha: float = Field(1.0, ge=0, le=1e6, description="how much clients' labelling rules differ")
    beta: float = Field(1.0, ge=0, le=1e6, description="how much clients' features differ")
    samples_per_client: float = Field(
        20.0, gt=0, le=1e6, description="mean client size (sizes = clipped)"
    )
    sizes: Literal["clipped", "fedprox"] = Field(
        "clipped",
        description="client sizes: clipped (lognormal, sigma 1, mean samples_per_client, in "
        "[5, 444]) or fedprox (the authors' lognormal(4, 2) + 50)",
    )


class Synthetic:
    """Synthetic(alpha, beta) of the FedProx paper, generated lazily per client."""

    Params = SyntheticParams
    reads_path = False
    defaults = DatasetDefaults(model="mlp")

    @classmethod
    def load(cls, settings: DataSettings, params: SyntheticParams) -> SyntheticDataset:
        return SyntheticDataset(
            settings.num_clients,
            settings.seed,
            params.alpha,
            params.beta,
            params.samples_per_client,
            params.sizes,
        )

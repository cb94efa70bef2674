"""``femnist_writers``: a FEMNIST-shaped dataset generated offline, one client per writer,
each writer with a handwriting style of their own.

The alphabet: 62 classes (10 digits, 26 upper- and 26 lower-case letters, as FEMNIST), each
a prototype glyph of three pen strokes (quadratic Bezier curves) drawn from a constant seed,
so every run writes the same alphabet; a candidate too much like a glyph already drawn is
dropped. The run's seed picks the writers and their samples, never the alphabet.

A writer's style is drawn from a seeded distribution (seed = the run's seed and the client
id, so a client's data is derived on demand, by index, like ``synthetic``): rotation, slant
(shear), size and aspect, position, pen width, ink, per-pixel noise, and their own way of
forming each letter (an offset of every glyph's control points). Each sample adds a small
jitter around the writer's style. ``style_strength`` scales the spread of the style
distribution (0: every writer writes alike; the per-sample jitter stays).

Pixels are ink in [0, 1] (0 the paper), 1x28x28. Strokes are rendered as a line integral of
a Gaussian pen, separably (a batched matrix product per sample), so a batch of samples
costs a few small arrays, never a loop over pixels.

Sizes: LEAF's FEMNIST has 3,550 writers of 226.8 +- 88.9 samples (LEAF, Table 1). Here a
writer's training samples are normal with mean ``samples_per_writer`` and LEAF's relative
spread (0.39), clipped to [10, 3 x mean]; the default mean of 100 is LEAF's scaled down for
CPU rounds (a choice, not a measurement). Each writer's own test data holds
``data.test_fraction`` of their samples (at least 10). Class frequencies: a digit is three
times as likely as a letter (37% digits), an estimate of FEMNIST's mix (NIST's forms hold
more of each digit than of any letter), not its table.

The central test set is written by ``test_writers`` writers outside the population (10
samples each): it measures how the model does on people it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from greenfl.core.registry import params
from greenfl.data.base import MIN_CLIENT_TEST, DatasetDefaults, DataSettings

SIDE = 28
NUM_CLASSES = 62
NUM_DIGITS = 10
DIGIT_WEIGHT = 3.0  # a digit is this many times as likely as a letter (estimate, see above)
STROKES = 3
POINTS = 32  # per stroke: spacing under a pixel for the longest strokes, so lines are solid
LEAF_SPREAD = 88.94 / 226.83  # std / mean of samples per writer, LEAF Table 1
MIN_SAMPLES = 10
TEST_PER_HELD_OUT = 10

_ALPHABET_SEED = 62_2018  # fixed: the same alphabet for every run
_MAX_SIMILARITY = 0.7  # cosine similarity from which a candidate glyph is dropped
_CANDIDATES = 256  # candidate glyphs drawn at a time
_SIZES_STREAM = 1
_STYLE_STREAM = 2
_TRAIN_STREAM = 3
_TEST_STREAM = 4
_POPULATION, _HELD_OUT = 0, 1  # whose style: a client's, or a held-out writer's

# The style distribution at style_strength 1 (standard deviations; estimates chosen so that
# writers differ visibly while a glyph stays legible).
ROTATION_STD = 0.15  # radians, about 9 degrees
SLANT_STD = 0.3  # shear of x by y
LOG_SCALE_STD = 0.12
LOG_ASPECT_STD = 0.12
SHIFT_STD = 0.05  # of the canvas, about 1.4 pixels
PEN_MEDIAN = 0.9  # pixels (the Gaussian pen's sigma)
LOG_PEN_STD = 0.3
LOG_INK_STD = 0.3
SHAPE_STD = 0.05  # a writer's offset of each control point, of the canvas
# Each sample's jitter around its writer's style, whatever the style strength.
JITTER = {"rotation": 0.05, "slant": 0.08, "log_scale": 0.05, "shift": 0.02, "shape": 0.02}
JITTER_LOG_PEN = 0.1


def class_prior() -> np.ndarray:
    """Each class's probability: digits DIGIT_WEIGHT times a letter's."""
    w = np.ones(NUM_CLASSES)
    w[:NUM_DIGITS] = DIGIT_WEIGHT
    return w / w.sum()


def _bezier(ctrl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along quadratic Bezier strokes and the arc length each stands for.
    ``ctrl`` (..., STROKES, 3, 2) -> points (..., STROKES * POINTS, 2), lengths (..., S*P)."""
    t = np.linspace(0.0, 1.0, POINTS)[:, None]
    p0, p1, p2 = ctrl[..., 0:1, :], ctrl[..., 1:2, :], ctrl[..., 2:3, :]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    speed = np.linalg.norm(2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1), axis=-1)
    shape = (*ctrl.shape[:-3], STROKES * POINTS)
    return pts.reshape(*shape, 2), speed.reshape(shape) / (POINTS - 1)


def render(
    ctrl: np.ndarray, affine: np.ndarray, shift: np.ndarray, pen: np.ndarray, ink: np.ndarray
) -> np.ndarray:
    """Samples of glyphs, (n, SIDE, SIDE) in [0, 1]. ``ctrl`` (n, STROKES, 3, 2) control
    points in canvas units (0..1, centre 0.5); ``affine`` (n, 2, 2) about the centre;
    ``shift`` (n, 2) of the canvas; ``pen`` (n,) sigma in pixels; ``ink`` (n,) darkness.

    Each stroke is the line integral of a Gaussian pen, normalised so a stroke's centre
    reads 1 whatever the pen's width; the strokes' sum saturates as ink does. A Bezier curve
    of transformed control points is the transformed curve, so the transform acts on those."""
    moved = np.einsum("nij,nskj->nski", affine, ctrl - 0.5) + 0.5 + shift[:, None, None, :]
    pts, length = _bezier(moved)
    px = pts * SIDE - 0.5  # canvas units to pixel centres 0..27
    grid = np.arange(SIDE, dtype=np.float64)
    s2 = 2.0 * pen[:, None, None] ** 2
    gx = np.exp(-((grid - px[..., 0:1]) ** 2) / s2)  # (n, points, SIDE): columns
    gy = np.exp(-((grid - px[..., 1:2]) ** 2) / s2)  # rows
    weight = length * SIDE / (np.sqrt(2 * np.pi) * pen[:, None])  # pixels of arc per point
    density = np.matmul((gy * weight[..., None]).transpose(0, 2, 1), gx)  # (n, rows, cols)
    # 3: a stroke's centre at ink 1 reads 0.95, and crossings stay under 1 as ink would
    return 1.0 - np.exp(-3.0 * ink[:, None, None] * density)


def _affine(
    rotation: np.ndarray, slant: np.ndarray, log_scale: np.ndarray, log_aspect: np.ndarray
) -> np.ndarray:
    """(n, 2, 2): rotate . shear . scale, acting on (x, y) column vectors."""
    c, s = np.cos(rotation), np.sin(rotation)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    shear = np.zeros_like(rot)
    shear[:, 0, 0] = shear[:, 1, 1] = 1.0
    shear[:, 0, 1] = slant
    scale = np.zeros_like(rot)
    scale[:, 0, 0] = np.exp(log_scale + log_aspect)
    scale[:, 1, 1] = np.exp(log_scale - log_aspect)
    return rot @ shear @ scale


def _canonical(ctrl: np.ndarray) -> np.ndarray:
    """Glyphs in no style: a medium pen, no transform."""
    n = len(ctrl)
    eye = np.broadcast_to(np.eye(2), (n, 2, 2))
    return render(ctrl, eye, np.zeros((n, 2)), np.full(n, PEN_MEDIAN), np.ones(n))


def alphabet() -> np.ndarray:
    """The 62 prototype glyphs' control points, (NUM_CLASSES, STROKES, 3, 2): three strokes
    in the middle of the canvas. Candidates are drawn in batches and taken in order unless
    an earlier glyph looks like them (cosine similarity of the rendered images at or over
    _MAX_SIMILARITY: random strokes overlap, and two near-identical classes would only be
    label noise). Fixed by a constant seed."""
    rng = np.random.default_rng(_ALPHABET_SEED)
    glyphs: list[np.ndarray] = []
    images = np.zeros((0, SIDE * SIDE))
    while len(glyphs) < NUM_CLASSES:
        batch = rng.uniform(0.2, 0.8, (_CANDIDATES, STROKES, 3, 2))
        flat = _canonical(batch).reshape(_CANDIDATES, -1)
        flat /= np.linalg.norm(flat, axis=1, keepdims=True)
        for ctrl, img in zip(batch, flat, strict=True):
            if len(glyphs) < NUM_CLASSES and not np.any(images @ img >= _MAX_SIMILARITY):
                glyphs.append(ctrl)
                images = np.vstack([images, img])
    return np.stack(glyphs)


_ALPHABET: np.ndarray | None = None


def _glyphs() -> np.ndarray:
    global _ALPHABET
    if _ALPHABET is None:  # drawn once per process: every writer shares it
        _ALPHABET = alphabet()
    return _ALPHABET


@dataclass(frozen=True)
class Style:
    """One writer's handwriting."""

    rotation: float
    slant: float
    log_scale: float
    log_aspect: float
    shift: np.ndarray  # (2,)
    log_pen: float
    log_ink: float
    noise: float  # per-pixel noise std
    shape: np.ndarray  # (NUM_CLASSES, STROKES, 3, 2) offsets of the control points


def draw_style(rng: np.random.Generator, strength: float, noise_std: float) -> Style:
    s = strength
    return Style(
        rotation=float(rng.normal(0.0, ROTATION_STD * s)),
        slant=float(rng.normal(0.0, SLANT_STD * s)),
        log_scale=float(rng.normal(0.0, LOG_SCALE_STD * s)),
        log_aspect=float(rng.normal(0.0, LOG_ASPECT_STD * s)),
        shift=rng.normal(0.0, SHIFT_STD * s, 2),
        log_pen=float(np.log(PEN_MEDIAN) + rng.normal(0.0, LOG_PEN_STD * s)),
        log_ink=float(rng.normal(0.0, LOG_INK_STD * s)),
        noise=float(noise_std * rng.uniform(0.5, 1.5)),
        shape=rng.normal(0.0, SHAPE_STD * s, (NUM_CLASSES, STROKES, 3, 2)),
    )


def write(style: Style, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``labels`` written in ``style``, each sample jittered: (n, 1, SIDE, SIDE) float32."""
    n = len(labels)
    j = JITTER
    ctrl = _glyphs()[labels] + style.shape[labels]
    ctrl = ctrl + rng.normal(0.0, j["shape"], ctrl.shape)
    affine = _affine(
        style.rotation + rng.normal(0.0, j["rotation"], n),
        style.slant + rng.normal(0.0, j["slant"], n),
        style.log_scale + rng.normal(0.0, j["log_scale"], n),
        np.full(n, style.log_aspect),
    )
    shift = style.shift + rng.normal(0.0, j["shift"], (n, 2))
    pen = np.clip(np.exp(style.log_pen + rng.normal(0.0, JITTER_LOG_PEN, n)), 0.4, 2.5)
    img = render(ctrl, affine, shift, pen, np.full(n, np.exp(style.log_ink)))
    img = img + rng.normal(0.0, style.noise, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32).reshape(n, 1, SIDE, SIDE)


class WritersDataset:
    """Writers as clients; every client's data derived on demand from (seed, client id)."""

    def __init__(
        self,
        num_clients: int,
        seed: int,
        samples_per_writer: float = 100.0,
        style_strength: float = 1.0,
        noise_std: float = 0.05,
        test_fraction: float = 0.2,
        test_writers: int = 100,
    ) -> None:
        self.name = "femnist_writers"
        self.num_clients = num_clients
        self.input_shape = (1, SIDE, SIDE)
        self.num_classes = NUM_CLASSES
        self.seed = seed
        self.style_strength = style_strength
        self.noise_std = noise_std
        self.test_writers = test_writers
        rng = np.random.default_rng([seed, _SIZES_STREAM])
        mean = samples_per_writer
        drawn = rng.normal(mean, LEAF_SPREAD * mean, num_clients)
        hi = max(MIN_SAMPLES, 3 * mean)
        self._sizes = np.clip(np.rint(drawn), MIN_SAMPLES, hi).astype(np.int64)
        ratio = test_fraction / (1.0 - test_fraction)  # test samples per training sample
        self._test_sizes = np.maximum(MIN_CLIENT_TEST, np.rint(self._sizes * ratio)).astype(
            np.int64
        )
        self._prior = class_prior()
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None

    def client_sizes(self) -> np.ndarray:
        return self._sizes

    def style(self, client_id: int) -> Style:
        """Client ``client_id``'s handwriting."""
        return self._style(_POPULATION, client_id)

    def _style(self, who: int, index: int) -> Style:
        rng = np.random.default_rng([self.seed, _STYLE_STREAM, who, index])
        return draw_style(rng, self.style_strength, self.noise_std)

    def _samples(
        self, style: Style, n: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        labels = rng.choice(NUM_CLASSES, n, p=self._prior)
        x = write(style, labels, rng)
        return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, _TRAIN_STREAM, client_id])
        return self._samples(self.style(client_id), int(self._sizes[client_id]), rng)

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The writer's own held-out samples: fresh samples in the same style."""
        rng = np.random.default_rng([self.seed, _TEST_STREAM, client_id])
        return self._samples(self.style(client_id), int(self._test_sizes[client_id]), rng)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """TEST_PER_HELD_OUT samples by each of ``test_writers`` writers outside the
        population (their own style stream): generalisation to people never seen."""
        if self._test is None:
            parts = [
                self._samples(
                    self._style(_HELD_OUT, w),
                    TEST_PER_HELD_OUT,
                    np.random.default_rng([self.seed, _TEST_STREAM, _HELD_OUT, w]),
                )
                for w in range(self.test_writers)
            ]
            self._test = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return self._test


@params
class WritersParams:
    samples_per_writer: float = Field(
        100.0,
        ge=MIN_SAMPLES,
        le=1e5,
        description="mean training samples per writer (normal with LEAF FEMNIST's relative "
        "spread 0.39, within [10, 3 x mean]); LEAF's own mean is 227",
    )
    style_strength: float = Field(
        1.0,
        ge=0,
        le=3,
        description="how much writers' styles differ: scales the spread of rotation, slant, "
        "size, position, pen, ink and letter shapes (0: all write alike)",
    )
    noise_std: float = Field(
        0.05, ge=0, le=1, description="typical per-pixel noise (each writer 0.5-1.5 x this)"
    )
    test_writers: int = Field(
        100,
        ge=1,
        le=100_000,
        description="held-out writers (outside the population) of the central test set, "
        "10 samples each",
    )


class FemnistWriters:
    """A FEMNIST-shaped dataset generated offline: 62 classes of 28x28 glyphs, one client
    per writer, each writer with a seeded handwriting style."""

    Params = WritersParams
    reads_path = False
    # LEAF's FEMNIST baseline round, as data.leaf.Femnist: 10 writers a round, one epoch of
    # batch 10, lr 0.06 (LEAF's paper); evaluation every 5 rounds on 50 writers as there.
    defaults = DatasetDefaults(
        model="femnist_cnn",
        train={"clients_per_round": 10, "local_epochs": 1, "batch_size": 10, "lr": 0.06},
        eval={"every": 5, "clients": 50},
    )

    @classmethod
    def load(cls, settings: DataSettings, params: WritersParams) -> WritersDataset:
        return WritersDataset(
            settings.num_clients,
            settings.seed,
            params.samples_per_writer,
            params.style_strength,
            params.noise_std,
            settings.test_fraction,
            params.test_writers,
        )

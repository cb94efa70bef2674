"""The standard models of the FL benchmarks, at the sizes their papers give.

- ``femnist_cnn``: LEAF's FEMNIST CNN (Caldas et al., 2018): two 5x5 same-padded conv
  layers of 32 and 64 channels, each followed by 2x2 max pooling, a 2048-unit dense layer
  and the class layer. 6,603,710 parameters for 62 classes.
- ``char_lstm``: LEAF's Shakespeare model: an 8-dimensional character embedding, two LSTM
  layers of 256 units and a dense layer on the last step's output. 819,920 parameters for
  LEAF's 80-character vocabulary.
- ``cifar_cnn``: the CIFAR CNN of McMahan et al. (2017): two 5x5 conv layers of 32 and 64
  with pooling, a 512-unit dense layer. 2,156,490 parameters for 10 classes.
- ``resnet20``: He et al.'s (2016) CIFAR ResNet-20 (three stages of three basic blocks,
  16/32/64 channels), with GroupNorm instead of batch norm as Hsieh et al. (2020) recommend
  for non-IID federated training: no running statistics, so clients share nothing but
  weights. 272,474 parameters for 10 classes.

Every builder takes (input_shape, num_classes, hidden) like the built-in models; ``hidden``
is ignored (the architectures are fixed by their papers).
"""

from __future__ import annotations

import torch
from torch import nn

from greenfl.core.registry import NoParams


def _image_shape(input_shape: tuple[int, ...], channels: int) -> tuple[int, ...]:
    """(C, H, W) of an image input, given flat (C*H*W,) features or the shape itself."""
    if len(input_shape) == 3:
        return input_shape
    flat = 1
    for d in input_shape:
        flat *= d
    side = int(round((flat / channels) ** 0.5))
    if channels * side * side != flat:
        raise ValueError(f"needs square {channels}-channel images, got input shape {input_shape}")
    return (channels, side, side)


def _conv_body(shape: tuple[int, ...], input_shape: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(
        nn.Unflatten(1, shape) if len(input_shape) != 3 else nn.Identity(),
        nn.Conv2d(shape[0], 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )


def _flat_features(body: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, *input_shape)).shape[1])


def femnist_cnn(input_shape: tuple[int, ...], num_classes: int, hidden: list[int]) -> nn.Module:
    shape = _image_shape(input_shape, channels=1)
    body = _conv_body(shape, input_shape)
    flat = _flat_features(body, input_shape)
    return nn.Sequential(*body, nn.Linear(flat, 2048), nn.ReLU(), nn.Linear(2048, num_classes))


def cifar_cnn(input_shape: tuple[int, ...], num_classes: int, hidden: list[int]) -> nn.Module:
    shape = _image_shape(input_shape, channels=3)
    body = _conv_body(shape, input_shape)
    flat = _flat_features(body, input_shape)
    return nn.Sequential(*body, nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, num_classes))


EMBEDDING_DIM = 8
LSTM_UNITS = 256
LSTM_LAYERS = 2


class CharLSTM(nn.Module):
    """Token ids (batch, seq) in, logits of the next token out."""

    def __init__(self, vocab_size: int, num_classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBEDDING_DIM)
        self.lstm = nn.LSTM(EMBEDDING_DIM, LSTM_UNITS, LSTM_LAYERS, batch_first=True)
        self.head = nn.Linear(LSTM_UNITS, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(tokens))
        return self.head(out[:, -1, :])


def char_lstm(input_shape: tuple[int, ...], num_classes: int, hidden: list[int]) -> nn.Module:
    if len(input_shape) != 1:
        raise ValueError(f"char_lstm needs (sequence_length,) token inputs, got {input_shape}")
    # Next-character prediction: the labels are the vocabulary.
    return CharLSTM(vocab_size=num_classes, num_classes=num_classes)


class BasicBlock(nn.Module):
    """Two 3x3 convs with GroupNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.GroupNorm(_groups(out_ch), out_ch),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _groups(channels: int) -> int:
    return 2 if channels % 2 == 0 else 1  # Hsieh et al.'s GroupNorm setting


def resnet20(input_shape: tuple[int, ...], num_classes: int, hidden: list[int]) -> nn.Module:
    shape = _image_shape(input_shape, channels=3)
    layers: list[nn.Module] = [
        nn.Unflatten(1, shape) if len(input_shape) != 3 else nn.Identity(),
        nn.Conv2d(shape[0], 16, 3, padding=1, bias=False),
        nn.GroupNorm(_groups(16), 16),
        nn.ReLU(),
    ]
    in_ch = 16
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(in_ch, width, stride))
            in_ch = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


class _Builder:
    """A reference model without parameters of its own, as a registry entry."""

    Params = NoParams
    builder: staticmethod

    @classmethod
    def build(cls, input_shape: tuple[int, ...], num_classes: int, params: NoParams) -> nn.Module:
        return cls.builder(input_shape, num_classes, [])


class FemnistCnn(_Builder):
    """LEAF's FEMNIST CNN."""

    builder = staticmethod(femnist_cnn)


class CifarCnn(_Builder):
    """The CIFAR CNN of the FedAvg paper."""

    builder = staticmethod(cifar_cnn)


class CharLstmModel(_Builder):
    """LEAF's Shakespeare char-LSTM."""

    builder = staticmethod(char_lstm)


class ResNet20(_Builder):
    """ResNet-20 with GroupNorm."""

    builder = staticmethod(resnet20)

"""The networks of the ``imc-blocks`` space: VGG, modified-VGG and residual stages, and the classifier around them.

Kept apart from the space (:mod:`rnc.search.spaces.imc_blocks`) so that the supernet
(:mod:`rnc.search.supernet.imc_supernet`) builds the same modules without importing the space.
Block forms follow the multi-objective IMC NAS paper's search space (see the space module's docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rnc.search.layers import PointwiseConv2d
from rnc.search.spaces.base import GenomeError

BLOCK_TYPES: tuple[str, ...] = ("vgg", "mvgg", "res")


@dataclass(frozen=True)
class StageChoice:
    """One active stage of a network: block type, depth and width."""

    block: str
    depth: int
    width: int


class ConvBnRelu(nn.Module):
    """conv -> batch-norm -> ReLU."""

    def __init__(self, conv: nn.Module, bn: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class PlainBlock(nn.Module):
    """``vgg`` (stride-1 convs then 2x2 max-pool) or ``mvgg`` (first conv stride 2, no pooling)."""

    def __init__(self, kind: str, layers: Sequence[ConvBnRelu]) -> None:
        super().__init__()
        self.kind = kind
        self.layers = nn.ModuleList(layers)
        self.depth = len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[: self.depth]:
            x = layer(x)
        if self.kind == "vgg":
            x = F.max_pool2d(x, 2)
        return x


class ResUnit(nn.Module):
    """Basic residual unit; ``shortcut`` is a projection (1x1 conv + BN) or ``None`` for identity."""

    def __init__(self, conv1: nn.Module, bn1: nn.Module, conv2: nn.Module, bn2: nn.Module, shortcut=None) -> None:
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = conv1, bn1, conv2, bn2
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class ConvBn(nn.Module):
    """conv -> batch-norm (a projection shortcut)."""

    def __init__(self, conv: nn.Module, bn: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class ResBlock(nn.Module):
    """``res``: a stack of residual units (the first one down-samples)."""

    def __init__(self, units: Sequence[ResUnit]) -> None:
        super().__init__()
        self.kind = "res"
        self.units = nn.ModuleList(units)
        self.depth = len(self.units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units[: self.depth]:
            x = unit(x)
        return x


def make_block(kind: str, in_channels: int, width: int, depth: int, conv=None, bn=None) -> nn.Module:
    """A block of ``kind``; ``conv(cin, cout, kernel, stride)`` and ``bn(channels)`` make its layers (plain
    ``nn.Conv2d``/``nn.BatchNorm2d`` by default, elastic ones in the supernet)."""
    conv = conv or _plain_conv
    bn = bn or nn.BatchNorm2d
    if kind in ("vgg", "mvgg"):
        layers = []
        for j in range(depth):
            stride = 2 if kind == "mvgg" and j == 0 else 1
            layers.append(ConvBnRelu(conv(in_channels if j == 0 else width, width, 3, stride), bn(width)))
        return PlainBlock(kind, layers)
    if kind == "res":
        units = []
        for j in range(depth):
            cin, stride = (in_channels, 2) if j == 0 else (width, 1)
            shortcut = ConvBn(conv(in_channels, width, 1, 2), bn(width)) if j == 0 else None
            units.append(ResUnit(conv(cin, width, 3, stride), bn(width), conv(width, width, 3, 1), bn(width), shortcut))
        return ResBlock(units)
    raise GenomeError(f"space 'imc-blocks': unknown block type {kind!r}; valid types: {', '.join(BLOCK_TYPES)}")


class ImcNet(nn.Module):
    """A network of the ``imc-blocks`` space: ``stages`` then average pooling and ``classifier``."""

    def __init__(self, stages: Sequence[nn.Module], classifier: nn.Module) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _plain_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    if kernel == 1:  # strided 1x1 convs subsample first (oneDNN #6035, rnc.search.layers)
        return PointwiseConv2d(cin, cout, stride)
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)

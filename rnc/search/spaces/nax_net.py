"""The network of the ``nax`` space: a CIFAR ResNet (ResNet-20 by default) whose every conv has its own kernel size.

Kept apart from the space (:mod:`rnc.search.spaces.nax`) so that the supernet
(:mod:`rnc.search.supernet.nax_supernet`) builds the same modules without importing the space. Option-A
shortcuts as in He et al. (CVPR 2016), section 4.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


@dataclass(frozen=True)
class ConvSlot:
    """One searchable conv layer of the ResNet: its module name, channels and stride."""

    name: str
    in_channels: int
    out_channels: int
    stride: int


def resnet_conv_slots(in_channels: int, widths: Sequence[int], blocks_per_stage: int) -> tuple[ConvSlot, ...]:
    """The conv layers of a CIFAR ResNet in forward order (stem, then ``conv1``/``conv2`` of every block)."""
    slots = [ConvSlot("conv1", in_channels, widths[0], 1)]
    planes_in = widths[0]
    for stage, planes in enumerate(widths):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            prefix = f"layer{stage + 1}.{block}"
            slots.append(ConvSlot(f"{prefix}.conv1", planes_in, planes, stride))
            slots.append(ConvSlot(f"{prefix}.conv2", planes, planes, 1))
            planes_in = planes
    return tuple(slots)


class NaxBasicBlock(nn.Module):
    """ResNet basic block with option-A shortcut; ``conv_factory(cin, cout, kernel, stride)`` makes its convs."""

    def __init__(self, in_planes: int, planes: int, stride: int, kernels: tuple[int, int], conv_factory=None):
        super().__init__()
        make = conv_factory or _plain_conv
        self.conv1 = make(in_planes, planes, kernels[0], stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = make(planes, planes, kernels[1], 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad_channels = planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """He et al.'s option A: subsample by the stride, zero-pad the new channels on both sides."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_channels:
            low = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, low, self.pad_channels - low))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class NaxResNet(nn.Module):
    """CIFAR ResNet (He et al., 2016) with a kernel size per conv layer; module names as in the genome."""

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int],
        blocks_per_stage: int,
        kernels: Sequence[int],
        num_classes: int,
        conv_factory=None,
    ) -> None:
        super().__init__()
        make = conv_factory or _plain_conv
        kernels = list(kernels)
        self.conv1 = make(in_channels, widths[0], kernels[0], 1)
        self.bn1 = nn.BatchNorm2d(widths[0])
        planes_in, k = widths[0], 1
        for stage, planes in enumerate(widths):
            blocks = []
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(NaxBasicBlock(planes_in, planes, stride, (kernels[k], kernels[k + 1]), make))
                planes_in, k = planes, k + 2
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.num_stages = len(widths)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for stage in range(self.num_stages):
            out = getattr(self, f"layer{stage + 1}")(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def _plain_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)

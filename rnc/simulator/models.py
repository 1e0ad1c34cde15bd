"""Example networks the project defines itself (no downloads)."""

from __future__ import annotations

import torch.nn as nn


def vgg8(num_classes: int = 10, in_channels: int = 3) -> nn.Sequential:
    """NeuroSim's CIFAR-10 VGG-8 (DNN+NeuroSim, Peng et al., IEDM 2019): 6 conv + 2 FC at 32x32 input.

    conv 3-128, 128-128 at 32x32; 128-256, 256-256 at 16x16; 256-512, 512-512 at 8x8 (3x3, padding 1,
    max-pool after every second conv); FC 8192-1024, 1024-num_classes. 12,973,440 weights and
    615,917,568 MACs per image for 10 classes.
    """

    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *conv(in_channels, 128), *conv(128, 128), nn.MaxPool2d(2),
        *conv(128, 256), *conv(256, 256), nn.MaxPool2d(2),
        *conv(256, 512), *conv(512, 512), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8192, 1024, bias=False), nn.ReLU(inplace=True),
        nn.Linear(1024, num_classes, bias=False),
    )

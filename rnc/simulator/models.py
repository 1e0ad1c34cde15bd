"""Example networks the project defines itself (no downloads)."""

from __future__ import annotations

import torch
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


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., CVPR 2016): two 3x3 convs with batch-norm, identity or 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR ResNet of depth ``6n+2`` (He et al., CVPR 2016, Sec. 4.2): 16/32/64 channels at 32/16/8 pixels."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages: list[nn.Module] = []
        channels = 16
        for stage, width in enumerate((16, 32, 64)):
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, width, stride))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet20(num_classes: int = 10, in_channels: int = 3) -> ResNetCifar:
    """ResNet-20 for CIFAR-10 (He et al., CVPR 2016): 19 3x3 convs, two 1x1 shortcut convs and 1 FC: 270,896 weights.

    Shortcuts that change shape use a 1x1 strided conv with batch-norm (option B of the paper), so every
    weight layer is a Conv2d or Linear that maps onto crossbars; 40.8 M MACs per 32x32 image.
    NAX (Negi et al., DAC 2022) uses this network as its CIFAR-10 baseline.
    """
    return ResNetCifar(3, num_classes, in_channels)


def digits_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Sequential:
    """A tiny CNN for scikit-learn's 8x8 digits: two 3x3 convs (ReLU, 2x2 max-pool) and a linear head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 16, num_classes),
    )

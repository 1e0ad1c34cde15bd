"""``nax``: NAX's per-layer kernel-size and crossbar-size co-design space (Negi et al., DAC 2022).

The network is the CIFAR ResNet-20 of He et al. (CVPR 2016, Sec. 4.2): a 3x3-class stem conv of 16 channels,
three stages of three basic blocks of widths 16/32/64 (the first block of stages 2 and 3 halves the resolution
with a stride-2 conv), global average pooling and a linear classifier. Shortcuts are He et al.'s option A
(identity; where the shape changes, stride-2 subsampling and zero-padding of the new channels), so every weight
layer is a conv of the main path or the classifier.

NAX searches, for every conv layer (the stem and both convs of every block, 19 in ResNet-20):

- its kernel size, one of ``kernel_sizes`` (default 3/5/7; padding ``k // 2`` keeps the resolution), and
- the size of the square crossbars the layer is mapped onto, one of ``crossbar_sizes`` (default 64/128/256) --
  a *hardware* gene: :meth:`NaxSpace.hardware_for` writes it into ``HardwareConfig.layer_crossbar_sizes`` under
  the layer's module name, exactly as :func:`~rnc.simulator.trace_workload` names it.

Genome layout: for each conv layer in forward order (``conv1``, ``layer1.0.conv1``, ``layer1.0.conv2``, ...,
``layer3.2.conv2``), two genes ``<layer>.kernel`` and ``<layer>.crossbar``; then any global ``hw.*`` genes.
Every gene changes the design, so the cardinality is the product of the choices: ``(3 * 3) ** 19`` =
1,350,851,717,672,992,089 designs (``3 ** 19`` = 1,162,261,467 networks times as many crossbar assignments).
The classifier has no genes and is mapped onto the base hardware's crossbar size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rnc.search.spaces.base import Gene, GenomeError, SearchSpace
from rnc.search.spaces.nax_net import (  # noqa: F401  (re-exported: the network and its conv slots live in nax_net)
    ConvSlot,
    NaxBasicBlock,
    NaxResNet,
    resnet_conv_slots,
)
from rnc.simulator import HardwareConfig, Layer, Workload

if TYPE_CHECKING:
    from rnc.search.supernet.nax_supernet import NaxSupernet

NAX_KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
NAX_CROSSBAR_SIZES: tuple[int, ...] = (64, 128, 256)
RESNET20_WIDTHS: tuple[int, ...] = (16, 32, 64)


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """PyTorch's conv output size: ``floor((size + 2p - d(k-1) - 1) / s) + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class NaxSpace(SearchSpace):
    """NAX's space over a CIFAR ResNet (default ResNet-20): per conv layer, kernel size and crossbar size."""

    name = "nax"

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        num_classes: int = 10,
        kernel_sizes: Sequence[int] = NAX_KERNEL_SIZES,
        crossbar_sizes: Sequence[int] = NAX_CROSSBAR_SIZES,
        widths: Sequence[int] = RESNET20_WIDTHS,
        blocks_per_stage: int = 3,
    ) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        self.kernel_sizes = _sorted_unique("kernel_sizes", kernel_sizes)
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise GenomeError(f"space 'nax': kernel_sizes {list(self.kernel_sizes)} must be odd (padding k // 2)")
        self.crossbar_sizes = _sorted_unique("crossbar_sizes", crossbar_sizes)
        self.widths = tuple(int(w) for w in widths)
        if not self.widths or min(self.widths) < 1 or list(self.widths) != sorted(self.widths):
            raise GenomeError(f"space 'nax': widths {list(widths)} must be positive and non-decreasing")
        if int(blocks_per_stage) < 1:
            raise GenomeError(f"space 'nax': blocks_per_stage must be at least 1, got {blocks_per_stage}")
        self.blocks_per_stage = int(blocks_per_stage)
        self.slots = resnet_conv_slots(self.input_shape[0], self.widths, self.blocks_per_stage)
        genes: list[Gene] = []
        for slot in self.slots:
            genes.append(Gene(f"{slot.name}.kernel", self.kernel_sizes))
            genes.append(Gene(f"{slot.name}.crossbar", self.crossbar_sizes, hardware=True))
        self.genes = tuple(genes)
        self._space_options: dict[str, Any] = {
            "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "kernel_sizes": list(self.kernel_sizes), "crossbar_sizes": list(self.crossbar_sizes),
            "widths": list(self.widths), "blocks_per_stage": self.blocks_per_stage,
        }

    # -- genome -> architecture ----------------------------------------------------------------------
    def kernels(self, genome: Sequence[int] | np.ndarray) -> tuple[int, ...]:
        """The kernel size of every conv layer, in :attr:`slots` order."""
        arr = self.network_genome(genome)
        return tuple(self.kernel_sizes[int(i)] for i in arr[0::2])

    def crossbars(self, genome: Sequence[int] | np.ndarray) -> dict[str, int]:
        """Layer name -> side of the square crossbars it is mapped onto."""
        arr = self.network_genome(genome)
        return {slot.name: self.crossbar_sizes[int(i)] for slot, i in zip(self.slots, arr[1::2], strict=True)}

    def label(self, genome: Sequence[int] | np.ndarray) -> str:
        """``k3x14 k5x5 k7x0 xb64-256``: how many conv layers take each kernel size; smallest-largest crossbar."""
        kernels = self.kernels(genome)
        sides = list(self.crossbars(genome).values())
        counts = " ".join(f"k{k}x{kernels.count(k)}" for k in self.kernel_sizes)
        return f"{counts} xb{min(sides)}-{max(sides)}"

    def build_module(self, genome: np.ndarray) -> NaxResNet:
        return NaxResNet(
            self.input_shape[0], self.widths, self.blocks_per_stage, self.kernels(genome), self.num_classes
        )

    def build_supernet(self) -> NaxSupernet:
        from rnc.search.supernet.nax_supernet import NaxSupernet

        return NaxSupernet(self)

    def hardware_for(self, genome: np.ndarray, hw: HardwareConfig) -> HardwareConfig:
        """``hw`` with every conv layer's crossbar size in ``layer_crossbar_sizes`` (square ``(s, s)``)."""
        sizes = dict(hw.layer_crossbar_sizes)
        sizes.update({name: (side, side) for name, side in self.crossbars(genome).items()})
        return hw.with_updates(layer_crossbar_sizes=sizes)

    def workload(self, genome: np.ndarray) -> Workload:
        """The layer table of :meth:`build_module` without PyTorch (same names, shapes and ``preds`` as
        :func:`~rnc.simulator.trace_workload`): a block's ``conv1`` reads every layer that reaches the block's
        input through the identity shortcuts; the classifier reads the last block's output."""
        kernels = self.kernels(genome)
        _, h, w = self.input_shape
        layers: list[Layer] = []
        sources: tuple[int, ...] = ()

        def add_conv(slot: ConvSlot, kernel: int, preds: tuple[int, ...]) -> int:
            nonlocal h, w
            pad = kernel // 2
            out_h = conv_out_size(h, kernel, slot.stride, pad)
            out_w = conv_out_size(w, kernel, slot.stride, pad)
            layers.append(
                Layer(
                    name=slot.name, kind="conv", in_channels=slot.in_channels, out_channels=slot.out_channels,
                    kernel_h=kernel, kernel_w=kernel, stride_h=slot.stride, stride_w=slot.stride,
                    padding_h=pad, padding_w=pad, in_h=h, in_w=w, out_h=out_h, out_w=out_w, preds=preds,
                )
            )
            h, w = out_h, out_w
            return len(layers) - 1

        stem = add_conv(self.slots[0], kernels[0], ())
        sources = (stem,)
        for i in range(1, len(self.slots), 2):
            conv1 = add_conv(self.slots[i], kernels[i], sources)
            conv2 = add_conv(self.slots[i + 1], kernels[i + 1], (conv1,))
            sources = tuple(sorted({*sources, conv2}))
        layers.append(
            Layer(name="fc", kind="linear", in_channels=self.widths[-1], out_channels=self.num_classes,
                  preds=sources, bias=True)
        )
        return Workload(NaxResNet.__name__, self.input_shape, tuple(layers), (len(layers) - 1,))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["network"] = f"CIFAR ResNet-{6 * self.blocks_per_stage + 2}, widths {list(self.widths)}"
        out["networks"] = len(self.kernel_sizes) ** len(self.slots)
        return out


def _sorted_unique(label: str, values: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}))
    if not out or out[0] < 1:
        raise GenomeError(f"space 'nax': {label} {list(values)} must be a non-empty list of positive integers")
    return out

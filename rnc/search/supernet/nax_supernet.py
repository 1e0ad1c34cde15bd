"""Weight-sharing supernet of the ``nax`` space: a CIFAR ResNet whose every conv has an elastic kernel.

Each conv layer holds the weights of the largest kernel (7x7 by default); a smaller kernel is the centre of
the larger one through once-for-all's learned kernel transform matrices (Cai et al., ICLR 2020, Sec. 3.2;
:class:`~rnc.search.supernet.elastic.ElasticConv2d`). Widths and depth are fixed in NAX's space, so the
batch-norm and classifier layers are plain and shared by every subnet. The crossbar-size genes do not change
the network (they reach the simulator through :meth:`~rnc.search.spaces.nax.NaxSpace.hardware_for`), so every
genome with the same kernels runs the same subnet.

Module names are those of :class:`~rnc.search.spaces.nax.NaxResNet`, so ``extract(genome)`` is
``space.build_module(genome)`` with the subnet's weights loaded under the same ``state_dict`` keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import nn

from rnc.search.spaces.nax_net import ConvSlot, NaxResNet
from rnc.search.supernet.elastic import ElasticConv2d


class NaxSpaceView(Protocol):
    """What the supernet reads of its space (:class:`~rnc.search.spaces.nax.NaxSpace` has it all).

    A structural type, so that this module does not import the space: the space imports this module when it
    builds its supernet, and the space's module depends on the supernet's, never the other way round.
    """

    kernel_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    blocks_per_stage: int
    slots: tuple[ConvSlot, ...]
    input_shape: tuple[int, int, int]
    num_classes: int

    def largest(self) -> np.ndarray: ...

    def kernels(self, genome: Sequence[int] | np.ndarray) -> tuple[int, ...]: ...

    def build_module(self, genome: np.ndarray) -> NaxResNet: ...


class NaxSupernet(NaxResNet):
    """The ``nax`` supernet: ``set_active(genome)`` picks every conv's kernel; ``extract(genome)`` copies it out."""

    def __init__(self, space: NaxSpaceView) -> None:
        kernel_sizes = space.kernel_sizes

        def elastic_conv(cin: int, cout: int, kernel: int, stride: int) -> ElasticConv2d:
            return ElasticConv2d(cin, cout, kernel_sizes, stride)

        super().__init__(
            space.input_shape[0], space.widths, space.blocks_per_stage, [max(kernel_sizes)] * len(space.slots),
            space.num_classes, conv_factory=elastic_conv,
        )
        self.space = space
        self.set_active(space.largest())

    def elastic_convs(self) -> list[tuple[str, ElasticConv2d]]:
        """The elastic conv layers in genome order (stem, then both convs of every block)."""
        return [(slot.name, self.get_submodule(slot.name)) for slot in self.space.slots]

    def set_active(self, genome: Sequence[int] | np.ndarray) -> None:
        """Select the subnet of ``genome`` (kernel size of every conv) for the following forward passes."""
        for (_, conv), kernel in zip(self.elastic_convs(), self.space.kernels(genome), strict=True):
            conv.active_kernel = kernel

    @torch.no_grad()
    def extract(self, genome: Sequence[int] | np.ndarray) -> NaxResNet:
        """``space.build_module(genome)`` holding this supernet's weights for ``genome`` (the transformed kernel
        centres, the shared batch-norm statistics and classifier); the supernet's active subnet is unchanged."""
        previous = [conv.active_kernel for _, conv in self.elastic_convs()]
        module = self.space.build_module(genome)
        state: dict[str, torch.Tensor] = {}
        try:
            self.set_active(genome)
            for name, child in self.named_modules():
                if isinstance(child, ElasticConv2d):
                    exported = child.export()
                    state.update({f"{name}.{key}": value for key, value in exported.state_dict().items()})
                elif isinstance(child, (nn.BatchNorm2d, nn.Linear)):
                    state.update({f"{name}.{key}": value for key, value in child.state_dict().items()})
        finally:
            for (_, conv), kernel in zip(self.elastic_convs(), previous, strict=True):
                conv.active_kernel = kernel
        module.load_state_dict(state, strict=True)
        module.train(self.training)
        return module

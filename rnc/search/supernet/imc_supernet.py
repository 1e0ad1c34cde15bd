"""Weight-sharing supernet of the ``imc-blocks`` space: a choice of block type per stage, elastic depth and width.

Every stage holds one candidate block per block type (``vgg``, ``mvgg``, ``res``: the single-path one-shot
choice block of Guo et al., ECCV 2020), each built at the largest depth and width with elastic layers
(:mod:`rnc.search.supernet.elastic`). A subnet runs, in each of its ``num_stages`` first stages, the chosen
candidate's first ``depth`` layers (units for ``res``) on the first ``width`` channels (once-for-all's elastic
depth and width, Cai et al., ICLR 2020); later stages are skipped and the classifier reads the first
``width`` features of the last active stage through the classifier kept for that number of stages (one
linear head per stage count: the features that reach the head differ too much between stage counts to share
one; the standalone network has one ``classifier``).

Channels are taken in their stored order (no importance sorting): a stage's width is shared by the output of
every depth of all three candidates and by the three candidates of the next stage, so there is no permutation
that preserves the largest network's function for every depth.

Module names inside a stage's candidate are those of the standalone block, so ``extract(genome)`` is
``space.build_module(genome)`` with the candidate's active weights loaded under the same ``state_dict`` keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rnc.search.spaces.imc_net import ImcNet, PlainBlock, ResBlock, StageChoice, make_block
from rnc.search.supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    fold_batchnorm,
    load_active_weights,
)


class ImcSpaceView(Protocol):
    """What the supernet reads of its space (:class:`~rnc.search.spaces.imc_blocks.ImcBlocksSpace` has it all).

    A structural type, so that this module does not import the space: the space imports this module when it
    builds its supernet, and the space's module depends on the supernet's, never the other way round.
    """

    block_types: tuple[str, ...]
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    max_stages: int
    input_shape: tuple[int, int, int]
    num_classes: int

    def largest(self) -> np.ndarray: ...

    def validate(self, genome: Sequence[int] | np.ndarray) -> np.ndarray: ...

    def stages_of(self, genome: Sequence[int] | np.ndarray) -> tuple[StageChoice, ...]: ...

    def build_module(self, genome: np.ndarray) -> ImcNet: ...


def _elastic_conv(cin: int, cout: int, kernel: int, stride: int) -> ElasticConv2d:
    return ElasticConv2d(cin, cout, (kernel,), stride)


class ImcSupernetStage(nn.Module):
    """One stage: a candidate block per block type, built at the largest depth and width."""

    def __init__(self, block_types: Sequence[str], max_in: int, max_width: int, max_depth: int) -> None:
        super().__init__()
        self.candidates = nn.ModuleDict(
            {
                kind: make_block(kind, max_in, max_width, max_depth, conv=_elastic_conv, bn=ElasticBatchNorm2d)
                for kind in block_types
            }
        )
        self.active_block = next(iter(self.candidates))
        for block in self.candidates.values():  # inference runs each conv with its batch-norm folded in
            if isinstance(block, PlainBlock):
                for layer in block.layers:
                    fold_batchnorm(layer.conv, layer.bn)
            elif isinstance(block, ResBlock):
                for unit in block.units:
                    fold_batchnorm(unit.conv1, unit.bn1)
                    fold_batchnorm(unit.conv2, unit.bn2)
                    if unit.shortcut is not None:
                        fold_batchnorm(unit.shortcut.conv, unit.shortcut.bn)

    def configure(self, kind: str, depth: int, in_channels: int, width: int) -> None:
        """Activate candidate ``kind`` with its first ``depth`` layers on ``in_channels`` -> ``width`` channels."""
        self.active_block = kind
        block = self.candidates[kind]
        block.depth = depth
        if isinstance(block, PlainBlock):
            for j, layer in enumerate(block.layers):
                layer.conv.active_in = in_channels if j == 0 else width
                layer.conv.active_out = width
                layer.bn.active_out = width
        elif isinstance(block, ResBlock):
            for j, unit in enumerate(block.units):
                unit.conv1.active_in = in_channels if j == 0 else width
                unit.conv2.active_in = width
                for layer in (unit.conv1, unit.bn1, unit.conv2, unit.bn2):
                    layer.active_out = width
                if unit.shortcut is not None:
                    unit.shortcut.conv.active_in = in_channels
                    unit.shortcut.conv.active_out = width
                    unit.shortcut.bn.active_out = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.candidates[self.active_block](x)


class ImcSupernet(nn.Module):
    """The ``imc-blocks`` supernet: ``set_active(genome)`` selects a subnet; ``extract(genome)`` copies it out."""

    def __init__(self, space: ImcSpaceView) -> None:
        super().__init__()
        self.space = space
        max_width, max_depth = max(space.widths), max(space.depths)
        self.stages = nn.ModuleList(
            ImcSupernetStage(space.block_types, space.input_shape[0] if i == 0 else max_width, max_width, max_depth)
            for i in range(space.max_stages)
        )
        # one classifier per number of stages: what reaches the head differs too much between stage counts
        # for one shared head (a 1-stage subnet's features are not a 5-stage subnet's)
        self.classifiers = nn.ModuleList(ElasticLinear(max_width, space.num_classes) for _ in range(space.max_stages))
        self._start_deeper_layers_as_identity()
        self.active_stages = space.max_stages
        self._active_genome = space.largest()
        self.set_active(self._active_genome)

    @torch.no_grad()
    def _start_deeper_layers_as_identity(self) -> None:
        """Initialise every layer after a candidate's first one as an identity map, so that depth ``d + 1``
        starts as a refinement of depth ``d``.

        Elastic depth hands the next stage and the head the output of the candidate's first, second or third
        layer. In a plain (``vgg``/``mvgg``) stack these are unrelated features unless the deeper layers start
        from the identity: their 3x3 kernels are Dirac deltas (``nn.init.dirac_``: output channel ``c`` copies
        input channel ``c``), which on the non-negative ReLU features that reach them, followed by batch-norm
        and ReLU, keeps every channel's meaning. ``res`` units after the first start with their second
        batch-norm's scale at zero (zero-init residual, Goyal et al. 2017), i.e. as identities. Measured on
        digits (``docs/spaces-nax-imc.md``, 16 random subnets, 60 epochs, four random subnets per step): mean
        inherited accuracy 81% without, 92% with (stand-alone: 95%).
        """
        for stage in self.stages:
            for block in stage.candidates.values():
                if isinstance(block, PlainBlock):
                    for layer in block.layers[1:]:
                        nn.init.dirac_(layer.conv.weight)
                elif isinstance(block, ResBlock):
                    for unit in block.units[1:]:
                        nn.init.zeros_(unit.bn2.weight)

    def set_active(self, genome: Sequence[int] | np.ndarray) -> None:
        """Select the subnet of ``genome`` for the following forward passes."""
        stages = self.space.stages_of(genome)
        in_channels = self.space.input_shape[0]
        for stage, choice in zip(self.stages, stages, strict=False):
            stage.configure(choice.block, choice.depth, in_channels, choice.width)
            in_channels = choice.width
        self.active_stages = len(stages)
        self.classifiers[len(stages) - 1].active_in = in_channels
        self._active_genome = self.space.validate(genome).copy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages[: self.active_stages]:
            x = stage(x)
        return self.classifiers[self.active_stages - 1](F.adaptive_avg_pool2d(x, 1).flatten(1))

    @torch.no_grad()
    def extract(self, genome: Sequence[int] | np.ndarray) -> ImcNet:
        """``space.build_module(genome)`` holding this supernet's weights for ``genome``; the supernet's active
        subnet is left as it was."""
        previous = self._active_genome
        target = self.space.build_module(genome)
        try:
            self.set_active(genome)
            for i in range(self.active_stages):
                stage = self.stages[i]
                load_active_weights(stage.candidates[stage.active_block], target.stages[i])
            head = self.classifiers[self.active_stages - 1].export()
            target.classifier.load_state_dict(head.state_dict(), strict=True)
        finally:
            self.set_active(previous)
        return target.train(self.training)

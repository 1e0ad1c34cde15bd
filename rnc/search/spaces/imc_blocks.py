"""``imc-blocks``: stages of VGG-like, modified-VGG or ResNet-like blocks with adaptable depth and width.

After the space of *Multi-Objective Neural Architecture Search for In-Memory Computing* (Amin, Mohammadi and
Zand, 2024, arXiv:2406.06746): a CNN assembled from three block types inspired by VGG and ResNet, with an
adaptable number of blocks, searched with Bayesian optimization over more than 640 million networks. The
paper's exact hyper-parameter ranges are not reproduced here; this module defines the space precisely:

Network (``ImcNet``)
    ``num_stages`` stages in sequence, then global average pooling and a linear classifier. Every stage halves
    the resolution once and has one block type, a depth and a width ``w`` (output channels of all its convs):

    - ``vgg`` (VGG-like, Simonyan and Zisserman 2015): ``depth`` x [3x3 conv (stride 1) -> BN -> ReLU], then
      2x2 max-pooling (stride 2);
    - ``mvgg`` (modified VGG, all-convolutional down-sampling as in Springenberg et al. 2015): the same stack
      with no pooling; its first conv has stride 2;
    - ``res`` (ResNet-like, He et al. 2016): ``depth`` basic residual units [3x3 conv -> BN -> ReLU -> 3x3 conv
      -> BN, + shortcut, ReLU]; the first unit has stride 2 and a 1x1 stride-2 projection conv + BN shortcut,
      the others an identity shortcut (so a ``res`` stage of depth ``d`` has ``2d + 1`` convs).

    All convs are bias-free with padding ``k // 2``; the classifier has a bias. Halving the resolution in
    every stage needs ``min(H, W) >= 2 ** max_stages``.

Genome layout (flat vector of choice indices, ``1 + 3 * max_stages`` genes, then any global ``hw.*`` genes)
    ``num_stages`` in ``1..max_stages``; then for every stage ``i = 1..max_stages``: ``s<i>_block`` in
    ``block_types``, ``s<i>_depth`` in ``depths``, ``s<i>_width`` in ``widths``.

Cardinality (distinct networks)
    The genes of stages beyond ``num_stages`` do not change the network; every other gene does (a ``vgg`` and
    an ``mvgg`` stage differ by where they down-sample, a ``res`` stage has shortcuts). With ``T`` block types,
    ``D`` depths and ``W`` widths, a stage has ``S = T * D * W`` distinct forms and the space holds
    ``sum over n in 1..max_stages of S ** n`` networks. Defaults (``T = 3``, ``D = 3``, ``W = 8``,
    ``max_stages = 5``, ``S = 72``): 72 + 5,184 + 373,248 + 26,873,856 + 1,934,917,632 = **1,962,169,992**
    networks (:data:`DEFAULT_CARDINALITY`), out of ``5 * 72 ** 5`` = 9,674,588,160 genomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from rnc.search.spaces.base import Gene, GenomeError, SearchSpace
from rnc.search.spaces.imc_net import (  # noqa: F401  (re-exported: the networks live in imc_net)
    BLOCK_TYPES,
    ConvBn,
    ConvBnRelu,
    ImcNet,
    PlainBlock,
    ResBlock,
    ResUnit,
    StageChoice,
    make_block,
)
from rnc.simulator import Layer, Workload

if TYPE_CHECKING:
    from rnc.search.supernet.imc_supernet import ImcSupernet

IMC_DEPTHS: tuple[int, ...] = (1, 2, 3)
IMC_WIDTHS: tuple[int, ...] = (16, 24, 32, 40, 48, 64, 96, 128)
IMC_MAX_STAGES = 5


def count_networks(stage_forms: int, stage_counts: Sequence[int]) -> int:
    """Distinct networks of a space whose stages each have ``stage_forms`` forms: ``sum_n stage_forms ** n``."""
    return sum(stage_forms**n for n in stage_counts)


DEFAULT_CARDINALITY = count_networks(len(BLOCK_TYPES) * len(IMC_DEPTHS) * len(IMC_WIDTHS), range(1, 6))


# -- the space --------------------------------------------------------------------------------------------


class ImcBlocksSpace(SearchSpace):
    """Stages of VGG-like / modified-VGG / ResNet-like blocks with per-stage depth and width (module docstring)."""

    name = "imc-blocks"
    # three unrelated block types per stage and elastic depth in plain stacks: every (block, depth, width) path
    # is trained only by random samples, so the sandwich takes four of them per step (docs/spaces-nax-imc.md)
    supernet_random_subnets = 4

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int] = (3, 32, 32),
        num_classes: int = 10,
        max_stages: int = IMC_MAX_STAGES,
        block_types: Sequence[str] = BLOCK_TYPES,
        depths: Sequence[int] = IMC_DEPTHS,
        widths: Sequence[int] = IMC_WIDTHS,
    ) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        self.max_stages = int(max_stages)
        if self.max_stages < 1:
            raise GenomeError(f"space 'imc-blocks': max_stages must be at least 1, got {max_stages}")
        smallest_side = min(self.input_shape[1:])
        if smallest_side < 2**self.max_stages:
            fits = max(int(np.log2(smallest_side)), 0)
            raise GenomeError(
                f"space 'imc-blocks': input {self.input_shape[1]}x{self.input_shape[2]} is too small for "
                f"{self.max_stages} stages (each halves the resolution; needs at least {2**self.max_stages}x"
                f"{2**self.max_stages}); pass max_stages={fits} or a larger input_shape"
            )
        unknown = [b for b in block_types if b not in BLOCK_TYPES]
        if unknown or not block_types or len(set(block_types)) != len(block_types):
            raise GenomeError(
                f"space 'imc-blocks': block_types {list(block_types)} must be distinct names from {list(BLOCK_TYPES)}"
            )
        self.block_types = tuple(block_types)
        self.depths = _positive_sorted("depths", depths)
        self.widths = _positive_sorted("widths", widths)
        genes = [Gene("num_stages", tuple(range(1, self.max_stages + 1)))]
        for i in range(1, self.max_stages + 1):
            genes += [
                Gene(f"s{i}_block", self.block_types),
                Gene(f"s{i}_depth", self.depths),
                Gene(f"s{i}_width", self.widths),
            ]
        self.genes = tuple(genes)
        self._space_options: dict[str, Any] = {
            "input_shape": list(self.input_shape), "num_classes": self.num_classes, "max_stages": self.max_stages,
            "block_types": list(self.block_types), "depths": list(self.depths), "widths": list(self.widths),
        }

    # -- genome bookkeeping -------------------------------------------------------------------------------
    @property
    def stage_forms(self) -> int:
        """Distinct forms of one stage: block types x depths x widths."""
        return len(self.block_types) * len(self.depths) * len(self.widths)

    @property
    def cardinality(self) -> int:
        """Distinct networks: ``sum over n in 1..max_stages of stage_forms ** n`` (inactive stages don't count)."""
        return count_networks(self.stage_forms, range(1, self.max_stages + 1))

    @property
    def genome_count(self) -> int:
        """Distinct genomes (inactive stages make several genomes encode one network)."""
        return int(np.prod(self.n_choices, dtype=object))

    def active_mask(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """Inactive: the genes of stages beyond ``num_stages``."""
        arr = self.validate(genome)
        mask = np.ones(len(arr), dtype=bool)
        mask[1 + 3 * (int(arr[0]) + 1) : 1 + 3 * self.max_stages] = False
        return mask

    def label(self, genome: Sequence[int] | np.ndarray) -> str:
        """``vgg2x32 res3x64``: per active stage, block type, depth and width."""
        return " ".join(f"{s.block}{s.depth}x{s.width}" for s in self.stages_of(genome))

    def stages_of(self, genome: Sequence[int] | np.ndarray) -> tuple[StageChoice, ...]:
        """The active stages of ``genome``."""
        arr = self.network_genome(genome)
        return tuple(
            StageChoice(
                self.block_types[int(arr[1 + 3 * i])],
                self.depths[int(arr[2 + 3 * i])],
                self.widths[int(arr[3 + 3 * i])],
            )
            for i in range(int(arr[0]) + 1)
        )

    # -- builders -------------------------------------------------------------------------------------------
    def build_module(self, genome: np.ndarray) -> ImcNet:
        stages, in_channels = [], self.input_shape[0]
        for stage in self.stages_of(genome):
            stages.append(make_block(stage.block, in_channels, stage.width, stage.depth))
            in_channels = stage.width
        return ImcNet(stages, nn.Linear(in_channels, self.num_classes))

    def build_supernet(self) -> ImcSupernet:
        from rnc.search.supernet.imc_supernet import ImcSupernet

        return ImcSupernet(self)

    def workload(self, genome: np.ndarray) -> Workload:
        """The layer table of :meth:`build_module` without PyTorch (names, shapes and ``preds`` as
        :func:`~rnc.simulator.trace_workload` finds them: identity shortcuts carry their sources forward)."""
        _, h, w = self.input_shape
        channels = self.input_shape[0]
        layers: list[Layer] = []
        sources: tuple[int, ...] = ()

        def conv(name: str, cin: int, cout: int, kernel: int, stride: int, size: tuple[int, int], preds) -> int:
            pad = kernel // 2
            out = tuple((s + 2 * pad - kernel) // stride + 1 for s in size)
            layers.append(
                Layer(
                    name=name, kind="conv", in_channels=cin, out_channels=cout, kernel_h=kernel, kernel_w=kernel,
                    stride_h=stride, stride_w=stride, padding_h=pad, padding_w=pad, in_h=size[0], in_w=size[1],
                    out_h=out[0], out_w=out[1], preds=tuple(preds),
                )
            )
            return len(layers) - 1

        for i, stage in enumerate(self.stages_of(genome)):
            prefix = f"stages.{i}"
            if stage.block in ("vgg", "mvgg"):
                for j in range(stage.depth):
                    stride = 2 if stage.block == "mvgg" and j == 0 else 1
                    k = conv(f"{prefix}.layers.{j}.conv", channels, stage.width, 3, stride, (h, w), sources)
                    h, w, channels, sources = layers[k].out_h, layers[k].out_w, stage.width, (k,)
                if stage.block == "vgg":
                    h, w = h // 2, w // 2
            else:
                for j in range(stage.depth):
                    stride = 2 if j == 0 else 1
                    unit = f"{prefix}.units.{j}"
                    c1 = conv(f"{unit}.conv1", channels, stage.width, 3, stride, (h, w), sources)
                    out_hw = (layers[c1].out_h, layers[c1].out_w)
                    c2 = conv(f"{unit}.conv2", stage.width, stage.width, 3, 1, out_hw, (c1,))
                    if j == 0:
                        sc = conv(f"{unit}.shortcut.conv", channels, stage.width, 1, 2, (h, w), sources)
                        sources = (c2, sc)
                    else:
                        sources = tuple(sorted({*sources, c2}))
                    (h, w), channels = out_hw, stage.width
        layers.append(
            Layer(name="classifier", kind="linear", in_channels=channels, out_channels=self.num_classes,
                  preds=sources, bias=True)
        )
        return Workload(ImcNet.__name__, self.input_shape, tuple(layers), (len(layers) - 1,))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["genomes"] = self.genome_count
        out["note"] = (
            "cardinality counts distinct networks: the genes of stages beyond num_stages do not change the network"
        )
        return out


def _positive_sorted(label: str, values: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(v) for v in values}))
    if not out or out[0] < 1:
        raise GenomeError(f"space 'imc-blocks': {label} {list(values)} must be a non-empty list of positive integers")
    return out

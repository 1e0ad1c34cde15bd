"""``mbv3``: RNC's search space, a once-for-all MobileNetV3-small backbone for small images.

Architecture (MobileNetV3-small, Howard et al., ICCV 2019, Table 2, with the once-for-all elastic dimensions
of Cai et al., ICLR 2020, as RNC, arXiv 2409.18841, searches it; widths scale with ``width_mult``):

======================  =====================================================================================
stem                    conv 3x3, 16 channels, stride 2, batch-norm, h-swish
first block (fixed)     depthwise 3x3 + pointwise 1x1 to 16 channels, ReLU, residual (stride 1)
stage 1..4              widths 24, 40, 48, 96; strides 2, 2, 1, 2; ReLU, h-swish, h-swish, h-swish;
                        squeeze-excitation in stages 2-4. Each stage has ``depth`` in {2, 3, 4} inverted
                        residual blocks (1x1 expand, k x k depthwise, [SE], 1x1 project, residual when the
                        stride is 1 and the width is unchanged); every block chooses its depthwise ``kernel``
                        in {3, 5, 7} and its ``expand`` ratio in {3, 4, 6} (middle channels
                        ``make_divisible(in_channels * expand, 8)``; SE reduces to ``make_divisible(mid / 4, 8)``)
head                    conv 1x1 to 576, h-swish, global average pool, linear to 1024, h-swish, dropout 0.2,
                        linear classifier
======================  =====================================================================================

The stem keeps MobileNetV3's stride 2, so a 32x32 input ends at 2x2 and RNC's 64x64 at 4x4.

Genes, stage by stage: ``s<i>_depth``, then for the four block positions ``s<i>_b<j>_kernel`` and
``s<i>_b<j>_expand``: 36 genes. Blocks beyond a stage's depth do not exist in the network, so their genes
do not change it: :attr:`Mbv3Space.cardinality` counts distinct networks,
``prod over stages of (9**2 + 9**3 + 9**4) = 7371**4`` (about 2.95e15), while there are ``3**36`` genomes.
:meth:`Mbv3Space.active_mask` marks them; ``canonical`` (set to index 0) and ``key`` follow from it (base class).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rnc.search.layers import PointwiseConv2d
from rnc.search.spaces.base import Gene, SearchSpace
from rnc.search.supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticDepthwiseConv2d,
    fold_batchnorm,
    load_active_weights,
    make_divisible,
    sort_channels,
)
from rnc.simulator import Layer, Workload

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
STEM_CHANNELS = 16
HEAD_CHANNELS = 576
HEAD_FEATURES = 1024


@dataclass(frozen=True)
class StageSpec:
    width: int
    stride: int
    activation: str  # "relu" | "hswish"
    squeeze_excite: bool


BASE_STAGES = (
    StageSpec(24, 2, "relu", False),
    StageSpec(40, 2, "hswish", True),
    StageSpec(48, 1, "hswish", True),
    StageSpec(96, 2, "hswish", True),
)


def _activation(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.Hardswish(inplace=True)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


# ---------------------------------------------------------------------------------------------------------
# Modules (shared by the standalone network and the supernet: the supernet passes elastic layers in)
# ---------------------------------------------------------------------------------------------------------

class ConvBnAct(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-excitation: ``x * hardsigmoid(expand(relu(reduce(mean_hw(x)))))`` (two 1x1 convs with bias)."""

    def __init__(self, reduce: nn.Module, expand: nn.Module) -> None:
        super().__init__()
        self.reduce, self.expand = reduce, expand
        self.act = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1x1 expand, kxk depthwise, optional SE, 1x1 project, residual when shapes allow."""

    def __init__(
        self,
        expand: nn.Module,
        expand_bn: nn.Module,
        dw: nn.Module,
        dw_bn: nn.Module,
        se: nn.Module | None,
        project: nn.Module,
        project_bn: nn.Module,
        activation: str,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand, self.expand_bn, self.dw, self.dw_bn = expand, expand_bn, dw, dw_bn
        self.se = se
        self.project, self.project_bn = project, project_bn
        self.act = _activation(activation)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.expand_bn(self.expand(x)))
        out = self.act(self.dw_bn(self.dw(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project(out))
        return x + out if self.residual else out


class FirstBlock(nn.Module):
    """The fixed first block: depthwise 3x3, ReLU, pointwise 1x1, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.dw_bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)
        self.project = nn.Conv2d(channels, channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project_bn(self.project(self.act(self.dw_bn(self.dw(x)))))


class Head(nn.Module):
    def __init__(self, in_channels: int, channels: int, features: int, dropout: float) -> None:
        super().__init__()
        self.conv = PointwiseConv2d(in_channels, channels)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.Hardswish(inplace=True)
        self.fc = nn.Linear(channels, features)
        self.fc_act = nn.Hardswish(inplace=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        x = torch.flatten(x.mean((2, 3)), 1)
        return self.dropout(self.fc_act(self.fc(x)))


class Mbv3Net(nn.Module):
    """A network of the ``mbv3`` space; ``depths[i]`` blocks of ``stages[i]`` run."""

    def __init__(
        self, stem: nn.Module, first: nn.Module, stages: nn.ModuleList, head: nn.Module, classifier: nn.Module
    ) -> None:
        super().__init__()
        self.stem, self.first, self.stages, self.head, self.classifier = stem, first, stages, head, classifier
        self.depths = [len(stage) for stage in stages]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for stage, depth in zip(self.stages, self.depths, strict=True):
            for block in stage[:depth]:
                x = block(x)
        return self.classifier(self.head(x))


class Mbv3Supernet(Mbv3Net):
    """The once-for-all supernet of :class:`Mbv3Space` (elastic kernel, expand ratio and depth)."""

    def __init__(self, space: Mbv3Space) -> None:
        stages = nn.ModuleList()
        in_channels = space.stem_channels
        for spec in space.stages:
            blocks = nn.ModuleList()
            for j in range(max(DEPTHS)):
                stride = spec.stride if j == 0 else 1
                mid = make_divisible(in_channels * max(EXPANDS))
                se = None
                if spec.squeeze_excite:
                    reduced = make_divisible(mid / 4)
                    se = SqueezeExcite(ElasticConv2d(mid, reduced, bias=True), ElasticConv2d(reduced, mid, bias=True))
                blocks.append(
                    InvertedResidual(
                        ElasticConv2d(in_channels, mid), ElasticBatchNorm2d(mid),
                        ElasticDepthwiseConv2d(mid, KERNELS, stride), ElasticBatchNorm2d(mid), se,
                        ElasticConv2d(mid, spec.width), ElasticBatchNorm2d(spec.width),
                        spec.activation, residual=stride == 1 and in_channels == spec.width,
                    )
                )
                in_channels = spec.width
            stages.append(blocks)
        for block in itertools.chain.from_iterable(stages):  # inference runs each conv with its batch-norm folded
            fold_batchnorm(block.expand, block.expand_bn)
            fold_batchnorm(block.dw, block.dw_bn)
            fold_batchnorm(block.project, block.project_bn)
        stem, first, head, classifier = space._fixed_modules()
        super().__init__(stem, first, stages, head, classifier)
        self.space = space
        self.set_active(space.largest())

    def set_active(self, genome: Sequence[int] | np.ndarray) -> None:
        """Select the subnet of ``genome``; ``forward`` then runs it."""
        values = self.space.decode(genome)
        in_channels = self.space.stem_channels
        for i, (stage, spec) in enumerate(zip(self.stages, self.space.stages, strict=True)):
            self.depths[i] = values[f"s{i + 1}_depth"]
            for j, block in enumerate(stage):
                kernel, expand = values[f"s{i + 1}_b{j + 1}_kernel"], values[f"s{i + 1}_b{j + 1}_expand"]
                mid = make_divisible(in_channels * expand)
                block.expand.active_in, block.expand.active_out = in_channels, mid
                block.expand_bn.active_out = mid
                block.dw.active_kernel, block.dw.active_in, block.dw.active_out = kernel, mid, mid
                block.dw_bn.active_out = mid
                if block.se is not None:
                    reduced = make_divisible(mid / 4)
                    block.se.reduce.active_in, block.se.reduce.active_out = mid, reduced
                    block.se.expand.active_in, block.se.expand.active_out = reduced, mid
                block.project.active_in, block.project.active_out = mid, spec.width
                in_channels = spec.width

    def extract(self, genome: Sequence[int] | np.ndarray) -> Mbv3Net:
        """The standalone network of ``genome`` with the supernet's weights (same keys as ``build_module``)."""
        self.set_active(genome)
        with torch.device("meta"):  # no initialisation: every tensor comes from the supernet
            target = self.space.build_module(genome)
        load_active_weights(self, target, assign=True)
        return target.train(self.training)

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Order every block's middle channels by importance (L1 norm of the project conv's weights over them)."""
        for stage in self.stages:
            for block in stage:
                producers = [block.expand, block.expand_bn, block.dw, block.dw_bn]
                co_consumers = []
                if block.se is not None:
                    producers.append(block.se.expand)
                    co_consumers.append(block.se.reduce)
                sort_channels(block.project, producers, co_consumers, optimizer=optimizer)


# ---------------------------------------------------------------------------------------------------------
# The space
# ---------------------------------------------------------------------------------------------------------

class Mbv3Space(SearchSpace):
    """RNC's once-for-all MobileNetV3-small space (see the module docstring for the architecture)."""

    name = "mbv3"

    def __init__(
        self,
        *,
        input_shape: Sequence[int] | None = None,
        resolution: int | None = None,
        num_classes: int = 10,
        width_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        if input_shape is None:
            input_shape = (3, int(resolution or 64), int(resolution or 64))
        elif resolution is not None and tuple(input_shape)[1:] != (resolution, resolution):
            raise ValueError(f"mbv3: input_shape {tuple(input_shape)} disagrees with resolution={resolution}")
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"mbv3: input_shape must be (channels, height, width), got {shape}")
        if min(shape[1:]) < 8:
            raise ValueError(
                f"mbv3: input resolution {shape[1]}x{shape[2]} is too small (at least 8x8; RNC used 64x64)"
            )
        if width_mult <= 0:
            raise ValueError(f"mbv3: width_mult must be positive, got {width_mult}")
        if num_classes < 2:
            raise ValueError(f"mbv3: num_classes must be at least 2, got {num_classes}")
        super().__init__(input_shape=shape, num_classes=num_classes)
        self.width_mult = float(width_mult)
        self.dropout = float(dropout)
        self.stem_channels = make_divisible(STEM_CHANNELS * width_mult)
        self.stages = tuple(
            StageSpec(make_divisible(s.width * width_mult), s.stride, s.activation, s.squeeze_excite)
            for s in BASE_STAGES
        )
        self.head_channels = make_divisible(HEAD_CHANNELS * width_mult)
        self.head_features = HEAD_FEATURES
        genes: list[Gene] = []
        for i in range(len(self.stages)):
            genes.append(Gene(f"s{i + 1}_depth", DEPTHS))
            for j in range(max(DEPTHS)):
                genes.append(Gene(f"s{i + 1}_b{j + 1}_kernel", KERNELS))
                genes.append(Gene(f"s{i + 1}_b{j + 1}_expand", EXPANDS))
        self.genes = tuple(genes)
        self._space_options = {
            "input_shape": list(shape), "num_classes": self.num_classes, "width_mult": self.width_mult,
            "dropout": self.dropout,
        }

    # -- genome bookkeeping ------------------------------------------------------------------------------
    @property
    def cardinality(self) -> int:
        """Distinct networks: per stage, ``sum over depths d of (|kernels| * |expands|) ** d``, multiplied."""
        per_block = len(KERNELS) * len(EXPANDS)
        per_stage = sum(per_block**d for d in DEPTHS)
        return per_stage ** len(self.stages)

    @property
    def genome_count(self) -> int:
        """Distinct genomes (several genomes encode the same network when blocks are inactive)."""
        return math.prod(self.n_choices)

    def active_mask(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """Inactive: the kernel/expand genes of blocks beyond a stage's depth."""
        arr = self.validate(genome)
        mask = np.ones(len(arr), dtype=bool)
        per_stage = 1 + 2 * max(DEPTHS)
        for i in range(len(self.stages)):
            base = i * per_stage
            depth = DEPTHS[arr[base]]
            mask[base + 1 + 2 * depth : base + per_stage] = False
        return mask

    def label(self, genome: Sequence[int] | np.ndarray) -> str:
        """``d2.3.4.2.3 k5.0 e4.3``: blocks per stage, mean kernel and mean expansion of the active blocks."""
        values = self.active_genes(genome)
        depths = [values[f"s{i + 1}_depth"] for i in range(len(self.stages))]
        kernels = [v for k, v in values.items() if k.endswith("_kernel")]
        expands = [v for k, v in values.items() if k.endswith("_expand")]
        return (
            f"d{'.'.join(str(d) for d in depths)} k{sum(kernels) / len(kernels):.1f} "
            f"e{sum(expands) / len(expands):.1f}"
        )

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["genomes"] = self.genome_count
        out["note"] = (
            "cardinality counts distinct networks: the kernel/expand genes of blocks beyond a stage's depth "
            "do not change the network"
        )
        return out

    # -- builders -------------------------------------------------------------------------------------------
    def _fixed_modules(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        c = self.stem_channels
        stem = ConvBnAct(
            nn.Conv2d(self.input_shape[0], c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.Hardswish(inplace=True)
        )
        head = Head(self.stages[-1].width, self.head_channels, self.head_features, self.dropout)
        return stem, FirstBlock(c), head, nn.Linear(self.head_features, self.num_classes)

    def _blocks(self, genome: Sequence[int] | np.ndarray):
        """Yield ``(stage index, block index, spec, in_channels, mid, kernel, stride, residual)`` of active blocks."""
        values = self.decode(genome)
        in_channels = self.stem_channels
        for i, spec in enumerate(self.stages):
            for j in range(values[f"s{i + 1}_depth"]):
                kernel = values[f"s{i + 1}_b{j + 1}_kernel"]
                mid = make_divisible(in_channels * values[f"s{i + 1}_b{j + 1}_expand"])
                stride = spec.stride if j == 0 else 1
                yield i, j, spec, in_channels, mid, kernel, stride, stride == 1 and in_channels == spec.width
                in_channels = spec.width

    def build_module(self, genome: Sequence[int] | np.ndarray) -> Mbv3Net:
        stage_blocks: list[list[nn.Module]] = [[] for _ in self.stages]
        for i, _j, spec, cin, mid, kernel, stride, residual in self._blocks(genome):
            se = None
            if spec.squeeze_excite:
                reduced = make_divisible(mid / 4)
                se = SqueezeExcite(nn.Conv2d(mid, reduced, 1), nn.Conv2d(reduced, mid, 1))
            stage_blocks[i].append(
                InvertedResidual(
                    nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid),
                    nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid),
                    se, nn.Conv2d(mid, spec.width, 1, bias=False), nn.BatchNorm2d(spec.width),
                    spec.activation, residual,
                )
            )
        stem, first, head, classifier = self._fixed_modules()
        return Mbv3Net(stem, first, nn.ModuleList(nn.ModuleList(b) for b in stage_blocks), head, classifier)

    def build_supernet(self) -> Mbv3Supernet:
        return Mbv3Supernet(self)

    def workload(self, genome: Sequence[int] | np.ndarray) -> Workload:
        """The crossbar workload built from the genome alone; equals ``trace_workload(build_module(genome))``.

        ``preds`` follow the dataflow as tracing sees it: a residual add feeds the next layer with both its
        operands' producers; an SE-scaled tensor with the depthwise conv's and the SE expand conv's.
        """
        layers: list[Layer] = []

        def conv(name, cin, cout, kernel, stride, groups, size, preds, bias=False) -> int:
            out = _conv_out(size[0], kernel, stride), _conv_out(size[1], kernel, stride)
            layers.append(
                Layer(
                    name=name, kind="conv", in_channels=cin, out_channels=cout, kernel_h=kernel, kernel_w=kernel,
                    stride_h=stride, stride_w=stride, padding_h=kernel // 2, padding_w=kernel // 2, groups=groups,
                    in_h=size[0], in_w=size[1], out_h=out[0], out_w=out[1], preds=tuple(sorted(preds)), bias=bias,
                )
            )
            return len(layers) - 1

        c_in, h, w = self.input_shape
        c = self.stem_channels
        stem = conv("stem.conv", c_in, c, 3, 2, 1, (h, w), ())
        size = _conv_out(h, 3, 2), _conv_out(w, 3, 2)
        dw = conv("first.dw", c, c, 3, 1, c, size, {stem})
        project = conv("first.project", c, c, 1, 1, 1, size, {dw})
        sources = {stem, project}
        for i, j, spec, cin, mid, kernel, stride, residual in self._blocks(genome):
            prefix = f"stages.{i}.{j}"
            expand = conv(f"{prefix}.expand", cin, mid, 1, 1, 1, size, sources)
            dw = conv(f"{prefix}.dw", mid, mid, kernel, stride, mid, size, {expand})
            size = _conv_out(size[0], kernel, stride), _conv_out(size[1], kernel, stride)
            feeding = {dw}
            if spec.squeeze_excite:
                reduced = make_divisible(mid / 4)
                se_reduce = conv(f"{prefix}.se.reduce", mid, reduced, 1, 1, 1, (1, 1), {dw}, bias=True)
                se_expand = conv(f"{prefix}.se.expand", reduced, mid, 1, 1, 1, (1, 1), {se_reduce}, bias=True)
                feeding.add(se_expand)
            project = conv(f"{prefix}.project", mid, spec.width, 1, 1, 1, size, feeding)
            sources = sources | {project} if residual else {project}
        head = conv("head.conv", self.stages[-1].width, self.head_channels, 1, 1, 1, size, sources)
        layers.append(
            Layer(name="head.fc", kind="linear", in_channels=self.head_channels, out_channels=self.head_features,
                  preds=(head,), bias=True)
        )
        layers.append(
            Layer(name="classifier", kind="linear", in_channels=self.head_features, out_channels=self.num_classes,
                  preds=(len(layers) - 1,), bias=True)
        )
        return Workload("Mbv3Net", tuple(self.input_shape), tuple(layers), (len(layers) - 1,))


"""Workloads: the weight-layer table of one network at one input size, with its dataflow graph.

A :class:`Workload` lists every layer that holds a weight matrix mapped onto crossbars (convolutions of any
stride, dilation and groups -- 1-D, 2-D, 3-D and transposed --, ``Linear``, attention's projections), in
topological order, with its shapes and the indices of the weight layers whose outputs feed it (``preds``):
residual adds, concatenations and parallel branches (SqueezeNet's expand 1x1 / 3x3) stay a graph, not a flat
chain. The digital unit's work (attention's QK^T and AV, softmax, norms, layer scale, embeddings, class
tokens) is listed as :class:`DigitalOp` s; batch-norm, activations, pooling, adds and concats are free
(the tile's digital units). ``docs/simulator.md``, "What goes where", has the full table and its sources.

Conventions (im2col; ISAAC, NeuroSim):

- a conv layer with ``Cin`` inputs, ``Cout`` outputs, a ``kh x kw`` kernel and ``groups`` g is ``g``
  weight matrices of ``rows = (Cin/g) * kh * kw`` rows and ``Cout/g`` output columns (before slicing);
- a linear layer is one matrix of ``rows = in_features`` and ``out_features`` columns; its "output
  positions" are the number of vectors it is applied to per image (1 for a classifier head);
- ``macs = positions * Cout * rows``; bias is kept digital (no row);
- a weight used ``uses`` times is stored once; ``shared_positions`` are the positions of its further uses.

:func:`trace_workload` builds a workload from any ``torch.nn.Module`` by running it once
(:mod:`rnc.simulator.tracing`); search spaces build the same table straight from a genome (the fast path),
and tests tie the two together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from typing import Literal

import numpy as np

from rnc.errors import UserError

LayerKind = Literal["conv", "linear"]


class WorkloadError(UserError, ValueError):
    """A model that cannot be turned into a crossbar workload; the message names the module."""


class ForwardPassError(WorkloadError):
    """The model's forward pass failed on a zero input of the given shape (most often a wrong input shape);
    :attr:`reason` is the first line of the underlying error."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Layer:
    """One weight layer. Spatial sizes are of one image; ``preds`` index earlier layers of the workload."""

    name: str
    kind: LayerKind
    in_channels: int
    out_channels: int
    kernel_h: int = 1
    kernel_w: int = 1
    stride_h: int = 1
    stride_w: int = 1
    padding_h: int = 0
    padding_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1
    in_h: int = 1
    in_w: int = 1
    out_h: int = 1
    out_w: int = 1
    preds: tuple[int, ...] = ()
    bias: bool = False
    transposed: bool = False
    uses: int = 1
    shared_positions: int = 0

    @property
    def rows(self) -> int:
        """Crossbar rows of one group's weight matrix: ``(Cin/groups) * kh * kw``."""
        return (self.in_channels // self.groups) * self.kernel_h * self.kernel_w

    @property
    def cols_per_group(self) -> int:
        """Output channels of one group (columns before bit-slicing)."""
        return self.out_channels // self.groups

    @property
    def positions(self) -> int:
        """Output positions per image (one crossbar MVM per position and input slice), over all ``uses``."""
        return self.out_h * self.out_w + self.shared_positions

    @property
    def weights(self) -> int:
        return self.rows * self.out_channels

    @property
    def macs(self) -> int:
        return self.positions * self.out_channels * self.rows

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "conv" and self.groups > 1 and self.groups == self.in_channels

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preds"] = list(self.preds)
        return data


@dataclass(frozen=True)
class DigitalOp:
    """Work of the digital unit for one image: ``ops`` elementary operations of ``kind``.

    ``kind``: ``matmul`` (activation x activation, one multiply-add per op: attention's QK^T and AV),
    ``softmax``, ``norm`` (layer/group norm), ``scale`` (an activation times a parameter: layer scale),
    ``add_parameter`` (position embeddings, relative position biases), ``concat_parameter`` (class tokens).
    ``name`` is the module that issues it; ``preds`` the weight layers it reads; ``after`` the index of the
    last weight layer issued before it (-1: before any).
    """

    name: str
    kind: str
    ops: int
    preds: tuple[int, ...] = ()
    after: int = -1

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preds"] = list(self.preds)
        return data


@dataclass(frozen=True)
class Workload:
    """The weight layers of a network in topological order, at ``input_shape`` = (C, H, W) or (features,)."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    outputs: tuple[int, ...] = field(default=())
    digital: tuple[DigitalOp, ...] = field(default=())

    def __post_init__(self) -> None:
        for i, layer in enumerate(self.layers):
            if any(p >= i or p < 0 for p in layer.preds):
                raise WorkloadError(f"layer {i} ({layer.name}): preds {layer.preds} must index earlier layers")
            if layer.in_channels % layer.groups or layer.out_channels % layer.groups:
                raise WorkloadError(
                    f"layer {layer.name}: channels {layer.in_channels}->{layer.out_channels} "
                    f"not divisible by groups={layer.groups}"
                )

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def total_weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Column arrays (int64) for the Numba kernels; ``pred_ptr``/``pred_idx`` are CSR predecessors."""
        cols = (
            "in_channels", "out_channels", "kernel_h", "kernel_w", "stride_h", "stride_w", "groups",
            "in_h", "in_w", "out_h", "out_w",
        )
        get = attrgetter(*cols)
        n = len(self.layers)
        table = np.array([(*get(lay), lay.rows, lay.cols_per_group, lay.positions, len(lay.preds))
                          for lay in self.layers], np.int64).reshape(n, len(cols) + 4)
        columns = np.ascontiguousarray(table.T)  # one row per column: contiguous int64 views
        out = {c: columns[i] for i, c in enumerate((*cols, "rows", "cols_per_group", "positions"))}
        ptr = np.zeros(n + 1, np.int64)
        np.cumsum(columns[-1], out=ptr[1:])
        out["pred_ptr"] = ptr
        out["pred_idx"] = np.fromiter((p for lay in self.layers for p in lay.preds), np.int64, int(ptr[-1]))
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "outputs": list(self.outputs),
            "digital": [op.to_dict() for op in self.digital],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Workload:
        layers = tuple(Layer(**{**d, "preds": tuple(d.get("preds", ()))}) for d in data["layers"])
        digital = tuple(DigitalOp(**{**d, "preds": tuple(d.get("preds", ()))}) for d in data.get("digital", ()))
        return cls(data["name"], tuple(data["input_shape"]), layers, tuple(data.get("outputs", ())), digital)

    @property
    def digital_ops(self) -> int:
        """Elementary operations of the digital unit per image (see :mod:`rnc.simulator.digital`)."""
        return sum(op.ops for op in self.digital)


def parse_input_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x64x64"`` or ``(3, 64, 64)`` -> ``(3, 64, 64)``; a clear error otherwise.

    The shape of one input without the batch dimension: ``CxHxW`` for images, ``CxL`` for a Conv1d model,
    ``TxD`` for a token sequence, ``D`` for a linear-only model (1 to 4 dimensions). Whether the model accepts
    it is checked by tracing, which runs the model (:class:`ForwardPassError` when it cannot). Raises
    :class:`WorkloadError` for a malformed, empty, non-positive or over-long shape.
    """
    if isinstance(text, str):
        parts = text.strip().lower().replace(",", "x").split("x")
        try:
            dims = tuple(int(part) for part in parts)
        except ValueError:
            raise WorkloadError(f"input shape {text!r}: expected dimensions joined by 'x', such as 3x64x64") from None
        if len(dims) > 4:
            raise WorkloadError(
                f"input shape {text!r}: {len(dims)} dimensions, at most 4 without the batch (e.g. 3x64x64)"
            )
    else:
        dims = tuple(int(d) for d in text)
    if not dims or any(d <= 0 for d in dims):
        raise WorkloadError(f"input shape {text!r}: every dimension must be a positive integer (e.g. 3x64x64)")
    return dims


# -------------------------------------------------------------------------------------------------------
# Tracing any torch.nn.Module
# -------------------------------------------------------------------------------------------------------

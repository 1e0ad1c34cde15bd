"""Workloads: the weight-layer table of one network at one input size, with its dataflow graph.

A :class:`Workload` lists every layer that holds a weight matrix mapped onto crossbars (``Conv2d`` of any
stride, dilation and groups, and ``Linear``), in topological order, with its shapes and the indices of the
weight layers whose outputs feed it (``preds``): residual adds, concatenations and parallel branches
(SqueezeNet's expand 1x1 / 3x3) stay a graph, not a flat chain. Everything between weight layers
(batch-norm, activations, pooling, adds, concats) is digital and not mapped onto crossbars.

Conventions (im2col; ISAAC, NeuroSim):

- a conv layer with ``Cin`` inputs, ``Cout`` outputs, a ``kh x kw`` kernel and ``groups`` g is ``g``
  weight matrices of ``rows = (Cin/g) * kh * kw`` rows and ``Cout/g`` output columns (before slicing);
- a linear layer is one matrix of ``rows = in_features`` and ``out_features`` columns; its "output
  positions" are the number of vectors it is applied to per image (1 for a classifier head);
- ``macs = positions * Cout * rows``; bias is kept digital (no row).

:func:`trace_workload` builds a workload from any ``torch.nn.Module`` with ``torch.fx``; search spaces build
the same table straight from a genome (the fast path), and tests tie the two together.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from rnc.errors import UserError

LayerKind = Literal["conv", "linear"]


class WorkloadError(UserError, ValueError):
    """A model that cannot be turned into a crossbar workload; the message names the module."""


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
        """Output positions per image (one crossbar MVM per position and input slice)."""
        return self.out_h * self.out_w

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
class Workload:
    """The weight layers of a network in topological order, at ``input_shape`` = (C, H, W) or (features,)."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    outputs: tuple[int, ...] = field(default=())

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
        out = {c: np.fromiter((getattr(lay, c) for lay in self.layers), np.int64, len(self.layers)) for c in cols}
        out["rows"] = np.fromiter((lay.rows for lay in self.layers), np.int64, len(self.layers))
        out["cols_per_group"] = np.fromiter((lay.cols_per_group for lay in self.layers), np.int64, len(self.layers))
        out["positions"] = np.fromiter((lay.positions for lay in self.layers), np.int64, len(self.layers))
        ptr = np.zeros(len(self.layers) + 1, np.int64)
        for i, lay in enumerate(self.layers):
            ptr[i + 1] = ptr[i] + len(lay.preds)
        out["pred_ptr"] = ptr
        out["pred_idx"] = np.fromiter((p for lay in self.layers for p in lay.preds), np.int64, int(ptr[-1]))
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Workload:
        layers = tuple(Layer(**{**d, "preds": tuple(d.get("preds", ()))}) for d in data["layers"])
        return cls(data["name"], tuple(data["input_shape"]), layers, tuple(data.get("outputs", ())))


def parse_input_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"3x64x64"`` or ``(3, 64, 64)`` -> ``(3, 64, 64)``; a clear error otherwise.

    A string (the CLI's ``--input``) must give exactly three dimensions, channels x height x width; a sequence
    may give any number (a linear-only model takes ``(features,)``).
    """
    if isinstance(text, str):
        parts = text.strip().lower().replace(",", "x").split("x")
        try:
            dims = tuple(int(part) for part in parts)
        except ValueError:
            raise WorkloadError(f"input shape {text!r}: expected CxHxW such as 3x64x64") from None
        if len(dims) != 3:
            raise WorkloadError(
                f"input shape {text!r}: {len(dims)} dimension(s), expected 3 (channels x height x width, e.g. 3x64x64)"
            )
    else:
        dims = tuple(int(d) for d in text)
    if not dims or any(d <= 0 for d in dims):
        raise WorkloadError(f"input shape {text!r}: every dimension must be a positive integer (e.g. 3x64x64)")
    return dims


# -------------------------------------------------------------------------------------------------------
# Tracing any torch.nn.Module
# -------------------------------------------------------------------------------------------------------

def _digital_module_types() -> tuple[type, ...]:
    import torch.nn as nn

    return (
        nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
        nn.PReLU,
    )


def _layer_from_module(name: str, module, in_shape, out_shape, preds: tuple[int, ...]) -> Layer:
    import torch.nn as nn

    if isinstance(module, nn.Conv2d):
        pad = module.padding if isinstance(module.padding, tuple) else (0, 0)
        if module.padding == "same":
            pad = tuple((k - 1) // 2 * d for k, d in zip(module.kernel_size, module.dilation, strict=True))
        return Layer(
            name=name, kind="conv", in_channels=module.in_channels, out_channels=module.out_channels,
            kernel_h=module.kernel_size[0], kernel_w=module.kernel_size[1],
            stride_h=module.stride[0], stride_w=module.stride[1],
            padding_h=int(pad[0]), padding_w=int(pad[1]),
            dilation_h=module.dilation[0], dilation_w=module.dilation[1], groups=module.groups,
            in_h=int(in_shape[-2]), in_w=int(in_shape[-1]), out_h=int(out_shape[-2]), out_w=int(out_shape[-1]),
            preds=preds, bias=module.bias is not None,
        )
    # Linear: every leading dimension but the batch is a position.
    positions = math.prod(int(d) for d in out_shape[1:-1]) if len(out_shape) > 2 else 1
    return Layer(
        name=name, kind="linear", in_channels=module.in_features, out_channels=module.out_features,
        out_h=positions, out_w=1, in_h=positions, in_w=1, preds=preds, bias=module.bias is not None,
    )


def _check_supported(name: str, module) -> None:
    import torch.nn as nn

    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return
    own_params = list(module.parameters(recurse=False))
    if own_params and not isinstance(module, _digital_module_types()):
        raise WorkloadError(
            f"module {name!r} ({type(module).__name__}) holds weights but is not supported on crossbars; "
            "supported weight layers are Conv2d and Linear (normalization layers stay digital)"
        )


def trace_workload(model, input_shape: str | Sequence[int], *, name: str | None = None) -> Workload:
    """The crossbar workload of ``model`` for one input of ``input_shape`` (``(C, H, W)``, no batch).

    Traces with ``torch.fx`` to keep the dataflow graph between weight layers; models that ``torch.fx``
    cannot trace (data-dependent control flow) fall back to forward hooks in execution order, with a warning
    that the graph is then a chain. Layers are named by their module's qualified name.
    """
    import torch
    import torch.nn as nn

    shape = parse_input_shape(input_shape)
    if not isinstance(model, nn.Module):
        raise WorkloadError(f"expected a torch.nn.Module, got {type(model).__name__}")
    label = name or type(model).__name__
    for mod_name, module in model.named_modules():
        _check_supported(mod_name or label, module)
    was_training = model.training
    model.eval()
    try:
        try:
            import torch.fx as fx
            from torch.fx.passes.shape_prop import ShapeProp

            graph_module = fx.GraphModule(model, _layer_tracer().trace(model), type(model).__name__)
        except Exception as exc:  # any tracing failure falls back to hooks
            warnings.warn(
                f"torch.fx could not trace {label} ({type(exc).__name__}: {exc}); using forward hooks, "
                "so the layer graph is a chain in execution order",
                stacklevel=2,
            )
            return _trace_with_hooks(model, shape, label)
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros((1, *shape)))
        return _workload_from_graph(graph_module, shape, label)
    finally:
        model.train(was_training)


def _layer_tracer():
    """A ``torch.fx`` tracer that keeps every ``nn.Conv2d`` / ``nn.Linear`` -- subclasses included (e.g. a conv
    with its own ``forward``) -- as one leaf, so each maps to one crossbar layer as its class describes it."""
    import torch.fx as fx
    import torch.nn as nn

    class LayerTracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
            return isinstance(m, (nn.Conv2d, nn.Linear)) or super().is_leaf_module(m, module_qualified_name)

    return LayerTracer()


def _workload_from_graph(graph_module, shape: tuple[int, ...], label: str) -> Workload:
    import torch.nn as nn
    import torch.nn.functional as F  # noqa: N812

    modules = dict(graph_module.named_modules())
    sources: dict[str, frozenset[int]] = {}
    layers: list[Layer] = []
    outputs: tuple[int, ...] = ()
    weight_functions = {F.conv1d, F.conv2d, F.conv3d, F.linear, F.conv_transpose2d, F.embedding}

    def inputs_of(node) -> frozenset[int]:
        found: set[int] = set()
        for arg in node.all_input_nodes:
            found |= sources.get(arg.name, frozenset())
        return frozenset(found)

    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                in_meta = node.all_input_nodes[0].meta.get("tensor_meta")
                out_meta = node.meta.get("tensor_meta")
                if in_meta is None or out_meta is None:
                    raise WorkloadError(f"module {node.target!r}: no shape information after tracing")
                preds = tuple(sorted(inputs_of(node)))
                layers.append(_layer_from_module(node.target, module, in_meta.shape, out_meta.shape, preds))
                sources[node.name] = frozenset({len(layers) - 1})
                continue
        elif node.op == "call_function" and node.target in weight_functions:
            raise WorkloadError(
                f"{label}: functional weight op {getattr(node.target, '__name__', node.target)} at node "
                f"{node.name!r}; use nn.Conv2d / nn.Linear modules so the weights can be mapped"
            )
        elif node.op == "output":
            outputs = tuple(sorted(inputs_of(node)))
        sources[node.name] = inputs_of(node)
    if not layers:
        raise WorkloadError(f"{label}: no Conv2d or Linear layers to map onto crossbars")
    return Workload(label, shape, tuple(layers), outputs)


def _trace_with_hooks(model, shape: tuple[int, ...], label: str) -> Workload:
    import torch
    import torch.nn as nn

    records: list[tuple[str, nn.Module, tuple, tuple]] = []
    handles = []
    for mod_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            def hook(mod, args, out, _name=mod_name):
                records.append((_name, mod, tuple(args[0].shape), tuple(out.shape)))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape)))
    finally:
        for handle in handles:
            handle.remove()
    if not records:
        raise WorkloadError(f"{label}: no Conv2d or Linear layers to map onto crossbars")
    layers = tuple(
        _layer_from_module(n, m, i, o, (k - 1,) if k else ()) for k, (n, m, i, o) in enumerate(records)
    )
    return Workload(label, shape, layers, (len(layers) - 1,))

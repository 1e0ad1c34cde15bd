"""Trace any ``torch.nn.Module`` into a :class:`~rnc.simulator.workload.Workload` by running it once.

The model runs one forward pass on a batch of one (on the ``meta`` device where it can: shapes only, no
arithmetic; else on zeros with its real weights) under a :class:`torch.overrides.TorchFunctionMode` that sees
every torch function call. Each tensor carries a tag: *activation* (depends on the input; with the set of
weight layers it derives from), *parameter-derived* (computed from parameters only, e.g. ``W.t()``,
``class_token.expand(...)``, ``table[index]``) or *constant* (buffers, tensors the forward creates).
What goes where (conventions in ``docs/simulator.md``, "What goes where"):

- **crossbars**: a weight function (``linear``, ``conv1d/2d/3d``, ``conv_transpose1d/2d``, a matrix product
  with one parameter-derived operand) whose input is an activation and whose weight is parameter-derived:
  fixed during inference (ISAAC, ISCA 2016; PUMA, ASPLOS 2019). Attention's input and output projections
  (``F.multi_head_attention_forward``) are such layers;
- **digital unit** (:mod:`rnc.simulator.digital`): matrix products of two activations (attention's QK^T and
  AV), softmax, layer/group norm, and element-wise operations of an activation with a parameter (layer
  scale, position embeddings, relative position biases, class-token concatenation);
- **free** (the tile's digital units, as ISAAC keeps them out of its energy model): batch-norm (folded into
  the preceding weights at inference), activations, pooling, residual adds, concatenations of activations,
  reshapes; **precomputed**: weight functions whose input does not depend on the image (Swin V2's
  continuous position-bias MLP), evaluated once at load time.

A weight used twice (a module called twice, or one parameter tied to two modules) is stored once: its uses
serialize on the same crossbars (``shared="serialize"``, the default) or get their own copy
(``shared="duplicate"``). Every parameter the forward pass touches must end up in one of these roles; any
other use (a parameter in an unknown function) is refused with the module, its class and the reason, so a
model is never mapped in part. Data-dependent control flow is no obstacle (the forward pass really runs),
except on ``meta``, where the fallback reruns it on zeros.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from rnc.simulator.workload import DigitalOp, ForwardPassError, Layer, Workload, WorkloadError, parse_input_shape

# ops per element of the digital unit's non-matrix work (our convention; see docs/simulator.md):
SOFTMAX_OPS_PER_ELEMENT = 5  # max, subtract, exp, sum, divide
NORM_OPS_PER_ELEMENT = 7  # mean add, subtract, square, variance add, normalize multiply, scale, shift

_CONV = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
_CONV_T = {F.conv_transpose1d: 1, F.conv_transpose2d: 2, F.conv_transpose3d: 3}
_MATMUL = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__, torch.mm,
           torch.Tensor.mm, torch.bmm, torch.Tensor.bmm, torch.einsum}
_SOFTMAX = {F.softmax, torch.softmax, torch.Tensor.softmax, F.log_softmax, torch.log_softmax,
            torch.Tensor.log_softmax}
_NORM = {F.layer_norm, F.group_norm, F.instance_norm, torch.layer_norm, torch.group_norm}
_FOLDED = {F.batch_norm, torch.batch_norm}
_PARAM_ELEMENTWISE = {
    torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.add_,
    torch.Tensor.__iadd__, torch.sub, torch.Tensor.sub, torch.Tensor.__sub__, torch.Tensor.__rsub__,
    torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.mul_,
    torch.Tensor.__imul__, torch.div, torch.Tensor.div, torch.Tensor.__truediv__, torch.addcmul, F.prelu,
    torch.where, torch.Tensor.masked_fill, operator.add, operator.mul,
}
_CONCAT = {torch.cat, torch.concat, torch.stack}


@dataclass(frozen=True)
class _Tag:
    """What a tensor depends on: the input (with the weight layers it derives from) and/or parameters."""

    active: bool
    sources: frozenset[int] = frozenset()
    params: frozenset[int] = frozenset()


@dataclass
class _LayerRecord:
    layer: Layer
    weight_id: int
    uses: int = 1
    shared_positions: int = 0
    preds: set[int] = field(default_factory=set)


class _Recorder(TorchFunctionMode):
    """Tags every tensor and records weight layers and digital operations as the forward pass runs."""

    def __init__(self, names: dict[int, str], modules: dict[str, nn.Module], shared: str, label: str) -> None:
        super().__init__()
        self.names = names  # id(parameter) -> qualified name
        self.modules = modules
        self.shared = shared
        self.label = label
        self.tags: dict[int, tuple[torch.Tensor, _Tag]] = {}
        self.layers: list[_LayerRecord] = []
        self.by_weight: dict[int, int] = {}
        self.digital: list[DigitalOp] = []
        self.roles: dict[int, str] = {}
        self.used: set[int] = set()
        self.stack: list[str] = []
        self.module_inputs: dict[str, torch.Size] = {}

    # -- tags ------------------------------------------------------------------------------------------
    def tag(self, t: torch.Tensor) -> _Tag | None:
        hit = self.tags.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        if isinstance(t, nn.Parameter) and id(t) in self.names:
            return _Tag(False, params=frozenset({id(t)}))
        return None

    def set_tag(self, t: torch.Tensor, tag: _Tag) -> None:
        self.tags[id(t)] = (t, tag)

    def module_path(self) -> str:
        return self.stack[-1] if self.stack else ""

    def where(self) -> str:
        path = self.module_path()
        module = self.modules.get(path)
        return f"module {path or self.label!r} ({type(module).__name__ if module is not None else '?'})"

    # -- dispatch --------------------------------------------------------------------------------------
    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        tags = [(t, self.tag(t)) for t in tensors]
        for _t, tg in tags:
            if tg is not None:
                self.used |= tg.params
        active = [tg for _t, tg in tags if tg is not None and tg.active]
        params = frozenset().union(*(tg.params for _t, tg in tags if tg is not None and not tg.active))
        if func is F.multi_head_attention_forward and active:
            return self._attention(args, kwargs)
        result = func(*args, **kwargs)
        if not active:  # constants and parameter-derived values: computed once, offline
            if params:
                self._tag_all(result, _Tag(False, params=params))
            return result
        sources = frozenset().union(*(tg.sources for tg in active))
        out_tag = _Tag(True, sources)
        if not params and (func in _CONV or func in _CONV_T or func is F.linear):
            raise WorkloadError(
                f"{self.where()}: {func.__name__} with a weight that is not a parameter (a buffer or a tensor made "
                "in forward); register it as an nn.Parameter so it can be mapped, or the model would be mapped "
                "in part"
            )
        if params:
            out_tag = self._with_params(func, args, kwargs, tags, params, sources, result) or out_tag
        elif func in _MATMUL:
            self._digital("matmul", _matmul_macs(func, args, result), sources)
        elif func in _SOFTMAX:
            self._digital("softmax", SOFTMAX_OPS_PER_ELEMENT * _numel(result), sources)
        elif func in _NORM:
            self._digital("norm", NORM_OPS_PER_ELEMENT * _numel(result), sources)
        elif func is F.scaled_dot_product_attention:
            self._sdpa(args, kwargs, sources)
        self._tag_all(result, out_tag)
        return result

    def _tag_all(self, result: Any, tag: _Tag) -> None:
        flat, _ = tree_flatten(result)
        for t in flat:
            if isinstance(t, torch.Tensor):
                self.set_tag(t, tag)

    def _mark(self, params: frozenset[int], role: str) -> None:
        for p in params:
            self.roles.setdefault(p, role)

    def _digital(self, kind: str, ops: int, sources: frozenset[int]) -> None:
        name = self.module_path() or self.label
        self.digital.append(DigitalOp(name, kind, int(ops), tuple(sorted(sources)), len(self.layers) - 1))

    # -- an activation meets parameters ----------------------------------------------------------------
    def _with_params(self, func, args, kwargs, tags, params, sources, result) -> _Tag | None:
        if func in _CONV or func in _CONV_T or func is F.linear:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            w_tag = self.tag(weight)
            if w_tag is None or w_tag.active or not w_tag.params:
                raise WorkloadError(f"{self.where()}: {func.__name__} with a weight computed from the input")
            self._mark(w_tag.params, "crossbar")
            self._mark(params - w_tag.params, "digital")  # the bias: added digitally
            return _Tag(True, frozenset({self._weight_layer(func, args, kwargs, weight, w_tag, sources, result)}))
        if func in _MATMUL and func is not torch.einsum:
            return self._param_matmul(func, args, tags, params, sources, result)
        if func in _FOLDED:
            self._mark(params, "folded")
            return None
        if func in _NORM:
            self._mark(params, "digital")
            self._digital("norm", NORM_OPS_PER_ELEMENT * _numel(result), sources)
            return None
        if func in _CONCAT:
            self._mark(params, "digital")
            ops = sum(_numel(t) for t, tg in tags if tg is not None and not tg.active)
            self._digital("concat_parameter", ops, sources)
            return None
        if func in _PARAM_ELEMENTWISE:
            self._mark(params, "digital")
            kind = "scale" if "mul" in func.__name__ or "div" in func.__name__ else "add_parameter"
            self._digital(kind, _numel(result), sources)
            return None
        owner = self._owner(next(iter(params)))
        raise WorkloadError(
            f"{owner}: parameter used by {getattr(func, '__name__', func)} on an activation (in {self.where()}); "
            "only weight layers (linear, convolutions, matrix products), normalization and element-wise "
            "operations with parameters can be mapped, so the model is not mapped in part"
        )

    def _param_matmul(self, func, args, tags, params, sources, result) -> _Tag:
        a, b = args[0], args[1]
        if func is torch.Tensor.__rmatmul__:
            a, b = b, a
        a_tag, b_tag = self.tag(a), self.tag(b)
        if b_tag is not None and not b_tag.active and b.dim() == 2:  # x @ W: W is (in, out)
            weight, w_tag, transposed = b, b_tag, True
        elif a_tag is not None and not a_tag.active and a.dim() == 2:  # W @ x: W is (out, in)
            weight, w_tag, transposed = a, a_tag, False
        else:
            raise WorkloadError(f"{self.where()}: matrix product of an activation with a parameter that is not "
                                "a 2-D matrix; a crossbar holds a 2-D weight matrix, so it cannot be mapped")
        self._mark(w_tag.params, "crossbar")
        out_f, in_f = (weight.shape[1], weight.shape[0]) if transposed else (weight.shape[0], weight.shape[1])
        positions = _numel(result) // int(out_f)
        layer = Layer(name=self._layer_name(w_tag), kind="linear", in_channels=int(in_f), out_channels=int(out_f),
                      in_h=positions, out_h=positions)
        return _Tag(True, frozenset({self._add_layer(layer, w_tag, sources)}))

    # -- weight layers ---------------------------------------------------------------------------------
    def _layer_name(self, w_tag: _Tag) -> str:
        pid = min(w_tag.params, key=lambda p: self.names[p])
        name = self.names[pid]
        base, _, leaf = name.rpartition(".")
        if leaf == "weight":
            return base or self.label
        return f"{base}.{leaf.removesuffix('_weight')}" if base else leaf.removesuffix("_weight")

    def _owner(self, pid: int) -> str:
        name = self.names.get(pid, "?")
        path = name.rpartition(".")[0]
        module = self.modules.get(path)
        kind = type(module).__name__ if module is not None else "?"
        return f"module {path or self.label!r} ({kind}), parameter {name!r}"

    def _weight_layer(self, func, args, kwargs, weight, w_tag, sources, result) -> int:
        x = args[0] if args else kwargs["input"]
        name = self._layer_name(w_tag)
        module = self.modules.get(name)
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed and name in self.stack:
            # a convolution module running now is mapped as its class describes it, whatever function
            # computes it (e.g. a strided 1x1 conv as subsampling and a matrix product)
            return self._add_layer(self._module_conv_layer(name, module), w_tag, sources)
        if func is F.linear:
            positions = _numel(result) // int(weight.shape[0])
            layer = Layer(name=name, kind="linear", in_channels=int(weight.shape[1]),
                          out_channels=int(weight.shape[0]), in_h=positions, out_h=positions,
                          bias=_arg(args, kwargs, 2, "bias") is not None)
        else:
            layer = _conv_layer(name, func, args, kwargs, weight, x, result)
        return self._add_layer(layer, w_tag, sources)

    def _add_layer(self, layer: Layer, w_tag: _Tag, sources: frozenset[int]) -> int:
        key = min(w_tag.params)
        index = self.by_weight.get(key)
        if index is not None and self.shared == "serialize":
            rec = self.layers[index]
            rec.uses += 1
            rec.shared_positions += layer.out_h * layer.out_w
            rec.preds |= {s for s in sources if s < index}
            return index
        if index is not None:  # duplicate: the next use gets its own crossbars
            uses = sum(1 for r in self.layers if r.weight_id == key) + 1
            layer = Layer(**{**layer.__dict__, "name": f"{layer.name}@{uses}"})
        self.layers.append(_LayerRecord(layer, key, preds=set(sources)))
        self.by_weight.setdefault(key, len(self.layers) - 1)
        return len(self.layers) - 1

    def _module_conv_layer(self, name: str, module: nn.modules.conv._ConvNd) -> Layer:
        in_shape = self.module_inputs.get(name)
        if in_shape is None or module.transposed:
            raise WorkloadError(f"module {name!r} ({type(module).__name__}): its weight is used outside a "
                                "convolution and its input shape is unknown; cannot map it as a convolution")
        dims = len(module.kernel_size)
        pad = module.padding if not isinstance(module.padding, str) else (
            (0,) * dims if module.padding == "valid"
            else tuple((k - 1) * d // 2 for k, d in zip(module.kernel_size, module.dilation, strict=True)))
        out = []
        for size, k, st, p, d in zip(in_shape[-dims:], module.kernel_size, module.stride, pad, module.dilation,
                                     strict=True):
            out.append(size if module.padding == "same" else (size + 2 * p - d * (k - 1) - 1) // st + 1)
        x = torch.empty((1, module.in_channels, *in_shape[-dims:]), device="meta")
        y = torch.empty((1, module.out_channels, *out), device="meta")
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
        args = (x, module.weight, module.bias, module.stride, module.padding, module.dilation, module.groups)
        return _conv_layer(name, conv, args, {}, module.weight, x, y)

    # -- attention -------------------------------------------------------------------------------------
    def _attention(self, args, kwargs):
        """``F.multi_head_attention_forward``: projections on crossbars, QK^T, softmax and AV digital."""
        bound = inspect.signature(F.multi_head_attention_forward).bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        result = F.multi_head_attention_forward(*bound.args, **bound.kwargs)  # the mode is off inside
        q, k, v = a["query"], a["key"], a["value"]
        seq_q, seq_k = int(q.shape[0]), int(k.shape[0])
        embed, heads = int(a["embed_dim_to_check"]), int(a["num_heads"])
        sources = frozenset().union(*(self.tag(t).sources for t in (q, k, v) if self.tag(t) is not None))
        for t in (a["in_proj_bias"], a["bias_k"], a["bias_v"], a["out_proj_bias"]):
            if isinstance(t, torch.Tensor) and self.tag(t) is not None:
                self._mark(self.tag(t).params, "digital")
                self.used |= self.tag(t).params
        if a["use_separate_proj_weight"]:
            projections = [(a["q_proj_weight"], q, "q_proj"), (a["k_proj_weight"], k, "k_proj"),
                           (a["v_proj_weight"], v, "v_proj")]
        elif q is k and k is v:
            projections = [(a["in_proj_weight"], q, "")]
        else:
            projections = [(a["in_proj_weight"], t, part) for t, part in ((q, "q_proj"), (k, "k_proj"),
                                                                           (v, "v_proj"))]
        proj_layers = set()
        for weight, x, part in projections:
            w_tag = self.tag(weight)
            self._mark(w_tag.params, "crossbar")
            self.used |= w_tag.params
            rows = int(weight.shape[0]) // (3 if part and not a["use_separate_proj_weight"] else 1)
            base = self._layer_name(w_tag)
            name = f"{base.rsplit('.', 1)[0]}.{part}" if part else base
            positions = int(x.shape[0])
            layer = Layer(name=name, kind="linear", in_channels=int(weight.shape[1]), out_channels=rows,
                          in_h=positions, out_h=positions, bias=a["in_proj_bias"] is not None)
            src = self.tag(x).sources if self.tag(x) is not None else frozenset()
            proj_layers.add(self._add_layer(layer, _Tag(False, params=w_tag.params), src))
        keys = seq_k + (1 if a["bias_k"] is not None else 0) + (1 if a["add_zero_attn"] else 0)
        batch = int(q.shape[1]) if q.dim() == 3 else 1
        scores = batch * heads * seq_q * keys
        self._digital("matmul", scores * (embed // heads), frozenset(proj_layers))
        self._digital("softmax", SOFTMAX_OPS_PER_ELEMENT * scores, frozenset(proj_layers))
        self._digital("matmul", scores * (embed // heads), frozenset(proj_layers))
        out_w = a["out_proj_weight"]
        o_tag = self.tag(out_w)
        self._mark(o_tag.params, "crossbar")
        self.used |= o_tag.params
        layer = Layer(name=self._layer_name(o_tag), kind="linear", in_channels=int(out_w.shape[1]),
                      out_channels=int(out_w.shape[0]), in_h=seq_q * batch, out_h=seq_q * batch,
                      bias=a["out_proj_bias"] is not None)
        out_index = self._add_layer(layer, o_tag, frozenset(proj_layers) | sources)
        self._tag_all(result, _Tag(True, frozenset({out_index})))
        return result

    def _sdpa(self, args, kwargs, sources) -> None:
        q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
        scores = _numel(q) // int(q.shape[-1]) * int(k.shape[-2])
        self._digital("matmul", scores * int(q.shape[-1]), sources)
        self._digital("softmax", SOFTMAX_OPS_PER_ELEMENT * scores, sources)
        self._digital("matmul", scores * int(v.shape[-1]), sources)


def _numel(x: Any) -> int:
    flat, _ = tree_flatten(x)
    return sum(t.numel() for t in flat if isinstance(t, torch.Tensor))


def _arg(args, kwargs, index: int, name: str):
    return args[index] if len(args) > index else kwargs.get(name)


def _matmul_macs(func, args, result) -> int:
    """Multiply-adds of a matrix product: output elements x contracted size (einsum: the contracted indices)."""
    if func is torch.einsum:
        equation = args[0].replace(" ", "")
        operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
        inputs, _, output = equation.partition("->")
        sizes: dict[str, int] = {}
        for spec, t in zip(inputs.split(","), operands, strict=True):
            head, _, tail = spec.partition("...")  # letters before the ellipsis: leading dims; after: trailing
            sizes.update({c: int(n) for c, n in zip(head, t.shape, strict=False)})
            if tail:
                sizes.update({c: int(n) for c, n in zip(tail, t.shape[len(t.shape) - len(tail):], strict=True)})
        if not output:  # implicit output: the indices appearing once
            letters = inputs.replace(",", "").replace("...", "")
            output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        contracted = math.prod(n for c, n in sizes.items() if c not in output)
        return _numel(result) * contracted
    a = args[0] if func is not torch.Tensor.__rmatmul__ else args[1]
    return _numel(result) * int(a.shape[-1])


def _conv_layer(name: str, func, args, kwargs, weight, x, result) -> Layer:
    """One convolution as a crossbar layer; 1-D as H=1, 3-D with depth folded into H (rows and positions
    are exact), transposed as the direct convolution over the zero-inserted input (see docs)."""
    transposed = func in _CONV_T
    dims = _CONV_T[func] if transposed else _CONV[func]
    if transposed:
        stride, padding, _out_pad, groups, dilation = (_arg(args, kwargs, i, n) for i, n in enumerate(
            ("stride", "padding", "output_padding", "groups", "dilation"), start=3))
    else:
        stride, padding, dilation, groups = (_arg(args, kwargs, i, n) for i, n in enumerate(
            ("stride", "padding", "dilation", "groups"), start=3))
    groups = int(groups or 1)

    def tup(value, default: int) -> tuple[int, ...]:
        if value is None or isinstance(value, str):
            return (default,) * dims
        return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * dims

    k = tuple(int(s) for s in weight.shape[2:])
    st, di = tup(stride, 1), tup(dilation, 1)
    pad = tup(padding, 0)
    if padding == "same":
        pad = tuple((kk - 1) * d // 2 for kk, d in zip(k, di, strict=True))
    cin = int(weight.shape[0]) if transposed else int(weight.shape[1]) * groups
    cout = int(weight.shape[1]) * groups if transposed else int(weight.shape[0])
    in_sp, out_sp = tuple(int(s) for s in x.shape[-dims:]), tuple(int(s) for s in result.shape[-dims:])

    def hw(v: tuple[int, ...]) -> tuple[int, int]:  # (H, W): 1-D -> (1, L); 3-D -> (D*H, W)
        return (1, v[0]) if dims == 1 else (math.prod(v[:-1]), v[-1])

    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = hw(k), hw(st), hw(pad), hw(di)
    if dims == 1:
        ph, dh = 0, 1
    (ih, iw), (oh, ow) = hw(in_sp), hw(out_sp)
    return Layer(name=name, kind="conv", in_channels=cin, out_channels=cout, kernel_h=kh, kernel_w=kw,
                 stride_h=sh, stride_w=sw, padding_h=ph, padding_w=pw, dilation_h=dh, dilation_w=dw, groups=groups,
                 in_h=ih, in_w=iw, out_h=oh, out_w=ow, bias=_arg(args, kwargs, 2, "bias") is not None,
                 transposed=transposed)


class _ModuleStack:
    """Global forward pre/post hooks that keep the qualified name of the module running now."""

    def __init__(self, recorder: _Recorder, model: nn.Module) -> None:
        self.recorder = recorder
        self.paths = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}

    def __enter__(self):
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        def pre(module, args):
            path = self.paths.get(id(module), self.recorder.module_path())
            self.recorder.stack.append(path)
            if args and isinstance(args[0], torch.Tensor):
                self.recorder.module_inputs[path] = args[0].shape

        def post(_module, _args, _out):
            if self.recorder.stack:
                self.recorder.stack.pop()

        self.handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


def run_and_record(model: nn.Module, shape: tuple[int, ...], label: str, shared: str) -> Workload:
    """Run ``model`` once (meta device first, zeros as fallback) and build its workload (see module doc)."""
    if shared not in ("serialize", "duplicate"):
        raise WorkloadError(f"shared={shared!r}: expected 'serialize' or 'duplicate'")
    meta_error: Exception | None = None
    for device in ("meta", None):
        try:
            return _record_once(model, shape, label, shared, device)
        except WorkloadError:
            raise
        except Exception as exc:
            if device is None:
                text = str(exc).strip()
                raise ForwardPassError(
                    f"{label}: the forward pass failed on a zero input of shape {(1, *shape)} "
                    f"({type(exc).__name__}: {exc})" + (f"; on meta: {meta_error}" if meta_error else ""),
                    reason=text.splitlines()[0] if text else type(exc).__name__,
                ) from None
            meta_error = exc
    raise AssertionError("unreachable")


def _record_once(model: nn.Module, shape, label: str, shared: str, device: str | None) -> Workload:
    from torch.func import functional_call

    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    if device == "meta":
        state = {n: nn.Parameter(p.detach().to("meta"), requires_grad=False) for n, p in params.items()}
        state.update({n: b.to("meta") for n, b in buffers.items()})
        x = torch.zeros((1, *shape), device="meta")
    else:
        state = dict(params)
        first = next(iter(params.values()), None)
        x = torch.zeros((1, *shape), device=first.device if first is not None else "cpu")
    names: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        canonical = next(n for n, q in params.items() if q is p) if name not in params else name
        names.setdefault(id(state[canonical]), canonical)
    recorder = _Recorder(names, dict(model.named_modules()), shared, label)
    recorder.set_tag(x, _Tag(True))
    with torch.no_grad(), _ModuleStack(recorder, model), recorder:
        out = functional_call(model, state, (x,), tie_weights=True, strict=False)
    flat, _ = tree_flatten(out)
    outputs = frozenset().union(*(recorder.tag(t).sources for t in flat
                                  if isinstance(t, torch.Tensor) and recorder.tag(t) is not None))
    unaccounted = sorted(recorder.used - set(recorder.roles), key=lambda p: names[p])
    if unaccounted:
        raise WorkloadError(f"{recorder._owner(unaccounted[0])}: used by the forward pass but in no role "
                            "(crossbar, digital, folded); refusing to map the model in part")
    if not recorder.layers:
        raise WorkloadError(f"{label}: no weight layer (linear, convolution) to map onto crossbars")
    layers = tuple(Layer(**{**r.layer.__dict__, "preds": tuple(sorted(r.preds)), "uses": r.uses,
                             "shared_positions": r.shared_positions}) for r in recorder.layers)
    return Workload(label, shape, layers, tuple(sorted(outputs)), tuple(recorder.digital))


def trace_workload(model, input_shape: str | Sequence[int], *, name: str | None = None,
                   shared: str = "serialize") -> Workload:
    """The crossbar workload of ``model`` for one input of ``input_shape`` (``(C, H, W)``, no batch).

    Runs one forward pass (on the ``meta`` device where possible, else on zeros) and records every weight
    layer, its dataflow predecessors and the digital unit's work; see :mod:`rnc.simulator.tracing` for what
    goes where. Layers are named by their module's qualified name (attention projections
    ``<module>.in_proj`` / ``<module>.out_proj``). ``shared``: ``"serialize"`` (a weight used twice is stored
    once, its uses serialize on its crossbars) or ``"duplicate"`` (each further use ``name@k`` gets its own).

    Raises:
        WorkloadError: not a module, a bad shape, a forward pass that fails, or a parameter that cannot be
            mapped (the message names the module, its class and the reason).
    """
    shape = parse_input_shape(input_shape)
    if not isinstance(model, nn.Module):
        raise WorkloadError(f"expected a torch.nn.Module, got {type(model).__name__}")
    label = name or type(model).__name__
    refused = _refused()
    for mod_name, module in model.named_modules():
        reason = next((why for cls, why in refused.items() if isinstance(module, cls)), None)
        if reason is not None:
            raise WorkloadError(f"module {mod_name or label!r} ({type(module).__name__}): {reason}")
    was_training = model.training
    model.eval()
    try:
        return run_and_record(model, shape, label, shared)
    finally:
        model.train(was_training)


def _refused() -> dict[type, str]:
    recurrent = ("recurrent layers feed their output back through their weights at every time step; this "
                 "workload has no time axis, so they are refused")
    lookup = "an embedding is a table lookup, not a matrix-vector product; it cannot run on crossbars"
    return {nn.RNN: recurrent, nn.LSTM: recurrent, nn.GRU: recurrent, nn.RNNCell: recurrent,
            nn.LSTMCell: recurrent, nn.GRUCell: recurrent, nn.Embedding: lookup, nn.EmbeddingBag: lookup}

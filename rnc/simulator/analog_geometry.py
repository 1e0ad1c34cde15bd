"""How each crossbar-mapped module type becomes the 2-D convolution an :class:`AnalogLayer` computes.

Every module ``to_analog`` maps is one weight tensor ``(Cout, Cin/groups, kh, kw)`` applied as a 2-D
convolution, after an optional explicit padding of the input (conventions as the workload maps them,
``docs/simulator.md``, "What goes where"):

- ``Linear``: a 1x1 conv over ``(N*, in_features, 1, 1)``; every leading dimension is a position.
- ``Conv1d``: a ``1 x k`` conv over ``(N, C, 1, L)``.
- ``Conv2d``: itself. Zero padding given as numbers goes to the convolution; every other padding (the
  ``reflect``, ``replicate`` and ``circular`` modes, and ``padding='same'`` of any mode, whose split is
  asymmetric for even kernels) is applied to the input first with ``F.pad`` exactly as PyTorch's module
  does (its ``_reversed_padding_repeated_twice``), and the convolution runs unpadded.
- ``ConvTranspose1d/2d``: the direct convolution over the zero-inserted input (the transposed-convolution
  identity, Dumoulin & Visin, "A guide to convolution arithmetic", 2016, Sec. 4): ``stride - 1`` zeros between
  input pixels, ``dilation*(k-1) - padding`` zeros on each side plus ``output_padding`` at the end, then a
  stride-1 convolution with the kernel flipped and the in/out channels of each group swapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812

from rnc.simulator.analog_arith import AnalogError

MAPPED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class Geometry:
    """The conv an :class:`AnalogLayer` runs: ``weight`` ``(Cout, Cin/groups, kh, kw)``, conv arguments,
    and the input preparation (``pre_pad`` for ``F.pad`` with ``pad_mode``, ``insert`` zero-insertion)."""

    kind: str  # "linear", "conv1d", "conv2d"
    weight: torch.Tensor
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    pre_pad: tuple[int, ...] | None
    pad_mode: str
    insert: tuple[int, int]
    transposed: bool


def geometry_of(name: str, module: nn.Module) -> Geometry:
    """The :class:`Geometry` of a mapped module; :class:`AnalogError` names any other."""
    w = module.weight.detach().to("cpu", torch.float32)
    if isinstance(module, nn.Linear):
        return Geometry("linear", w.view(w.shape[0], w.shape[1], 1, 1), (1, 1), (0, 0), (1, 1), 1, None,
                        "constant", (1, 1), False)
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        return _transposed(name, module, w)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        one_d = isinstance(module, nn.Conv1d)
        two = (lambda v: (1, *v)) if one_d else (lambda v: tuple(v))
        weight = w.unsqueeze(2) if one_d else w
        explicit = isinstance(module.padding, str) or module.padding_mode != "zeros"
        pre_pad = None
        padding = (0, 0)
        if explicit:
            pre_pad = tuple(module._reversed_padding_repeated_twice)
            if one_d:
                pre_pad = (*pre_pad, 0, 0)
        else:
            padding = (0, *module.padding) if one_d else tuple(module.padding)
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        return Geometry("conv1d" if one_d else "conv2d", weight, two(module.stride), padding, two(module.dilation),
                        module.groups, pre_pad, mode, (1, 1), False)
    raise AnalogError(f"module {name!r} ({type(module).__name__}): not a crossbar layer to_analog maps "
                      f"({', '.join(t.__name__ for t in MAPPED)}, MultiheadAttention)")


def _transposed(name: str, module: nn.Module, w: torch.Tensor) -> Geometry:
    one_d = isinstance(module, nn.ConvTranspose1d)
    if one_d:
        w = w.unsqueeze(2)
    two = (lambda v: (1, *v)) if one_d else (lambda v: tuple(v))
    if module.padding_mode != "zeros":
        raise AnalogError(f"module {name!r} ({type(module).__name__}): padding_mode {module.padding_mode!r}; "
                          "PyTorch itself supports only zeros for transposed convolutions")
    g = module.groups
    cin, cout_g, kh, kw = w.shape
    weight = w.view(g, cin // g, cout_g, kh, kw).transpose(1, 2).reshape(g * cout_g, cin // g, kh, kw)
    weight = weight.flip(2, 3).contiguous()
    stride, dilation = two(module.stride), two(module.dilation)
    padding = (0, *module.padding) if one_d else tuple(module.padding)
    out_pad = (0, *module.output_padding) if one_d else tuple(module.output_padding)
    (ph, pw) = (d * (k - 1) - p for d, k, p in zip(dilation, (kh, kw), padding, strict=True))
    pre_pad = (pw, pw + out_pad[1], ph, ph + out_pad[0])
    return Geometry("conv1d" if one_d else "conv2d", weight, (1, 1), (0, 0), dilation, g, pre_pad, "constant",
                    stride, True)


def prepare_input(geo: Geometry, x: torch.Tensor) -> torch.Tensor:
    """Zero-insertion (transposed convs) and explicit padding of a ``(N, C, H, W)`` input."""
    sh, sw = geo.insert
    if sh > 1 or sw > 1:
        n, c, h, w = x.shape
        up = x.new_zeros(n, c, (h - 1) * sh + 1, (w - 1) * sw + 1)
        up[:, :, ::sh, ::sw] = x
        x = up
    if geo.pre_pad is not None and any(geo.pre_pad):
        x = F.pad(x, geo.pre_pad, mode=geo.pad_mode)
    return x

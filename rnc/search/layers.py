"""Pointwise (1x1) convolution as the search spaces run it on CPU: one function, one ``nn.Conv2d`` subclass.

A 1x1 conv without padding is computed by :func:`pointwise_conv2d`, the same function as ``F.conv2d`` with a
two fast/safe special cases:

- stride ``s > 1`` runs as stride-``s`` subsampling followed by a stride-1 conv (a 1x1 kernel without padding
  reads exactly the pixels the subsampling keeps). oneDNN's backward-weights kernel for strided 1x1 convs on
  channels-last (NHWC) CPU inputs with fewer input channels than its channel block (an ``imc-blocks`` first
  ``res`` shortcut: 3 RGB channels) writes past its workspace (oneDNN issue #6035): training aborts with heap
  corruption, hangs, or gets wrong weight gradients; a stride-1 conv does not take that path.
- on a 1x1 map (squeeze-excitation, last stages and heads at small resolutions) it is a matrix product;
  oneDNN's conv runs these about 3x slower than ``addmm`` on CPU.

:class:`PointwiseConv2d` is an ``nn.Conv2d(cin, cout, 1, stride)`` (same parameters and ``state_dict`` keys)
whose forward is :func:`pointwise_conv2d`; the workload tracer keeps ``nn.Conv2d`` subclasses as single layers,
so the simulator maps it as the conv it is. The supernets' elastic convs use the same function for kernel 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def pointwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride)`` for a ``(cout, cin, 1, 1)`` weight (no padding, one group)."""
    if stride > 1:
        x = x[:, :, ::stride, ::stride]
    if x.shape[-2:] == (1, 1):
        out_channels, in_channels = weight.shape[:2]
        return F.linear(x.reshape(x.shape[0], in_channels), weight.reshape(out_channels, in_channels), bias)[
            :, :, None, None
        ]
    return F.conv2d(x, weight, bias)


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1, stride, bias=...)`` computed by :func:`pointwise_conv2d`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, 1, stride, 0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise_conv2d(x, self.weight, self.bias, self.stride[0])

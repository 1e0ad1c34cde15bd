"""One Conv2d or Linear layer as its crossbars compute it (:class:`AnalogLayer`).

The mapping, the cell model and the arithmetic are documented in :mod:`rnc.simulator.analog`. This module
holds the per-layer machinery: row tiling by whole input channels, the cell conductances with their static
non-idealities (sampled once), per-forward read noise, the grouped convolution that reads every crossbar
tile and weight slice at once, the ADC and the digital shift-and-add.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812

from rnc.simulator.analog_arith import (
    AnalogError,
    adc_shift_add_,
    adc_step_for_range,
    input_planes,
    quantize_inputs,
    quantize_weights,
    slice_weights,
)
from rnc.simulator.analog_geometry import geometry_of, prepare_input
from rnc.simulator.hardware import HardwareConfig

Mode = Literal["analog", "observe_inputs", "observe_adc"]

PARTIAL_SUM_CHUNK_BYTES = 4 * 2**20
"""Largest partial-sum tensor one grouped convolution produces; bigger work is done in chunks.

Cache-sized on purpose: oneDNN's grouped convolution writes a few-MiB output faster than a batch-sized one
(ResNet-20 stages 2-3 at batch 256: 1.5x), and the ADC kernel then reads the partial sums from cache."""


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from a tuple, stable across processes (unlike ``hash``)."""
    text = ":".join(str(p) for p in parts).encode()
    return (zlib.crc32(text) << 31) ^ zlib.crc32(text[::-1])


@dataclass(frozen=True)
class RowTiling:
    """How one group's ``Cin_g * K*K`` rows split over crossbars of ``rows`` rows (NeuroSim's mapping).

    A tile holds whole input channels, at most ``floor(rows / (K*K))`` of them; the ``tiles`` tiles hold
    ``channels_per_tile`` channels each (balanced; the last group is zero-padded), which is the same number
    of crossbars as filling them greedily. When one channel's ``K*K`` kernel does not fit (``K*K > rows``),
    each channel is split into ``parts`` virtual channels of at most ``rows`` kernel positions.
    """

    parts: int
    virtual_channels: int
    tiles: int
    channels_per_tile: int

    @property
    def padded_channels(self) -> int:
        return self.tiles * self.channels_per_tile

    @classmethod
    def plan(cls, in_channels_per_group: int, kernel_positions: int, rows: int) -> RowTiling:
        fit = rows // kernel_positions
        if fit >= 1:
            tiles = math.ceil(in_channels_per_group / fit)
            return cls(1, in_channels_per_group, tiles, math.ceil(in_channels_per_group / tiles))
        parts = math.ceil(kernel_positions / rows)
        virtual = in_channels_per_group * parts
        return cls(parts, virtual, virtual, 1)


class AnalogLayer(nn.Module):
    """A Conv2d or Linear layer computed by bit-sliced crossbars with an ADC per column read.

    Inference only: the forward pass runs without autograd. The conductances, ADC step and input range
    are buffers (they follow ``.to(device)`` and are saved in ``state_dict``).
    """

    def __init__(self, name: str, module: nn.Module, hw: HardwareConfig, *, seed: int) -> None:
        super().__init__()
        self.name = name
        geo = geometry_of(name, module)  # Linear, Conv1d/2d, ConvTranspose1d/2d as one 2-D conv
        self.geometry = geo
        self.is_linear = geo.kind == "linear"
        self.is_1d = geo.kind == "conv1d"
        weight = geo.weight
        self.stride, self.padding, self.dilation, self.groups = geo.stride, geo.padding, geo.dilation, geo.groups
        self.padding_mode = "zeros" if geo.pre_pad is None else geo.pad_mode
        self.out_channels, in_per_group, kh, kw = weight.shape
        self.in_channels = in_per_group * self.groups
        self.kernel = (kh, kw)
        self.rows, self.cols = hw.crossbar_size_for(name)
        self.cell_bits, self.weight_bits = hw.cell_bits, hw.weight_bits
        self.input_bits, self.dac_bits, self.adc_bits = hw.input_bits, hw.dac_bits, hw.adc_bits
        self.tiling = RowTiling.plan(in_per_group, kh * kw, self.rows)
        self.seed = seed
        ni = hw.nonideal
        self.read_noise_sigma = ni.read_noise_sigma
        self.wire_resistance_ratio = ni.wire_resistance_ratio
        levels_max = 2**self.cell_bits - 1
        # conductance in units of one level step: G_off .. G_on = g_off .. g_off + levels_max
        self.g_off = levels_max / (ni.on_off_ratio - 1) if ni.on_off_ratio > 1 else 0.0
        self.g_on = self.g_off + levels_max

        q, self.weight_scale = quantize_weights(weight, self.weight_bits)
        sliced = slice_weights(q, self.weight_bits, self.cell_bits, hw.signed_encoding)
        self.columns = sliced.column_weights.numel()
        # digital correction per unit of (signed) input: the offset and the off-state current of every column
        self.input_sum_correction = sliced.offset + self.g_off * float(sliced.column_weights.sum())
        self.register_buffer("column_weights", sliced.column_weights)
        self.register_buffer("conductance", self._static_conductance(sliced.levels, hw))
        self.register_buffer("row_index", self._row_index())
        self.register_buffer("col_index", self._col_index())
        self.register_buffer("bias", None if module.bias is None else module.bias.detach().to("cpu").clone())
        drift = ni.drift_nu > 0 and ni.drift_time_s > ni.drift_t0_s
        self.drift_compensation = (ni.drift_time_s / ni.drift_t0_s) ** ni.drift_nu if drift else 1.0
        # ranges: set by calibration, by fixed ranges, or (ADC only) by the crossbar's full scale
        self.register_buffer("input_max", torch.tensor(float("nan")))
        self.register_buffer("input_signed", torch.tensor(False))
        self.register_buffer("adc_step", torch.tensor(float("nan")))
        self.mode: Mode = "analog"
        self.observed_min = math.inf
        self.observed_max = 0.0
        self.reads = 0
        self._cached_weight: torch.Tensor | None = None
        self._cache_key: tuple[float, torch.device] | None = None
        self._ones: torch.Tensor | None = None

    # -- cells --------------------------------------------------------------------------------------
    def _static_conductance(self, levels: torch.Tensor, hw: HardwareConfig) -> torch.Tensor:
        """Programmed conductances with variation, stuck-at faults and drift (sampled once, seeded per layer)."""
        ni = hw.nonideal
        gen = torch.Generator().manual_seed(stable_seed(self.seed, self.name, "cells"))
        g = levels + self.g_off
        if ni.conductance_sigma > 0:
            g = g * (1 + ni.conductance_sigma * torch.randn(g.shape, generator=gen))
        if ni.stuck_at_on_rate > 0 or ni.stuck_at_off_rate > 0:
            draw = torch.rand(g.shape, generator=gen)
            g = torch.where(draw < ni.stuck_at_on_rate, torch.full_like(g, self.g_on), g)
            stuck_off = (draw >= ni.stuck_at_on_rate) & (draw < ni.stuck_at_on_rate + ni.stuck_at_off_rate)
            g = torch.where(stuck_off, torch.full_like(g, self.g_off), g)
        if ni.drift_nu > 0 and ni.drift_time_s > ni.drift_t0_s:
            nu = ni.drift_nu + ni.drift_nu_sigma * torch.randn(g.shape, generator=gen)
            g = g * (ni.drift_time_s / ni.drift_t0_s) ** (-nu.clamp(min=0))
        return g.clamp(min=0)

    def _row_index(self) -> torch.Tensor:
        """Word line (0-based) each weight row sits on in its crossbar tile, shape ``(Cin_g, kh, kw)``."""
        kh, kw = self.kernel
        kk = kh * kw
        cin_g = self.in_channels // self.groups
        position = torch.arange(kk).view(1, kh, kw).expand(cin_g, kh, kw)
        if self.tiling.parts == 1:
            channel = torch.arange(cin_g).view(cin_g, 1, 1) % self.tiling.channels_per_tile
            return (channel * kk + position).to(torch.float32)
        return (position % self.rows).to(torch.float32)

    def _col_index(self) -> torch.Tensor:
        """Bit line (0-based) of each (output, column slice) in its crossbar, shape ``(Cout, columns)``."""
        out_g = self.out_channels // self.groups
        local = torch.arange(out_g).view(out_g, 1) * self.columns + torch.arange(self.columns).view(1, -1)
        return (local % self.cols).repeat(self.groups, 1).to(torch.float32)

    def _read_conductance(self) -> torch.Tensor:
        """Conductances as read: per-read noise (fresh every forward pass), then IR drop."""
        g = self.conductance
        if self.read_noise_sigma > 0:
            gen = torch.Generator(device=g.device).manual_seed(stable_seed(self.seed, self.name, "read", self.reads))
            self.reads += 1
            noise = torch.randn(g.shape, generator=gen, device=g.device)
            g = (g * (1 + self.read_noise_sigma * noise)).clamp(min=0)
        if self.wire_resistance_ratio > 0:
            # first-order IR drop: the cell's current flows through (col+1) word-line and (rows-row) bit-line
            # segments of resistance r = ratio * R_on in series with the cell (see analog.py)
            segments = (self.col_index + 1).view(*self.col_index.shape, 1, 1, 1) + (self.rows - self.row_index)
            g = g / (1 + self.wire_resistance_ratio * (g / self.g_on) * segments)
        return g

    def effective_weight(self) -> torch.Tensor:
        """The float weight the crossbars realize (no input or ADC quantization), in the layer's units."""
        g = self._read_conductance()
        analog = torch.einsum("os...,s->o...", g, self.column_weights) * self.drift_compensation
        return (analog - self.input_sum_correction) * self.weight_scale

    def _tile_weight(self, step: float) -> torch.Tensor:
        """Grouped-conv weight ``(groups*tiles*Cout_g*columns, channels_per_tile, kh', kw')`` divided by the step."""
        g = self._read_conductance() / step
        groups, til = self.groups, self.tiling
        out_g = self.out_channels // groups
        kh, kw = self.kernel
        cin_g = self.in_channels // groups
        g = g.view(groups, out_g, self.columns, cin_g, kh, kw)
        if til.parts > 1:  # virtual channel (c, p) keeps kernel positions [p*rows, (p+1)*rows)
            part = (torch.arange(kh * kw, device=g.device) // self.rows).view(1, kh, kw)
            mask = (part == torch.arange(til.parts, device=g.device).view(-1, 1, 1)).to(g.dtype)
            g = (g.unsqueeze(4) * mask).reshape(groups, out_g, self.columns, til.virtual_channels, kh, kw)
        pad = til.padded_channels - til.virtual_channels
        if pad:
            g = F.pad(g, (0, 0, 0, 0, 0, pad))
        g = g.view(groups, out_g, self.columns, til.tiles, til.channels_per_tile, kh, kw)
        g = g.permute(0, 3, 1, 2, 4, 5, 6)
        return g.reshape(groups * til.tiles * out_g * self.columns, til.channels_per_tile, kh, kw).contiguous()

    # -- ranges -------------------------------------------------------------------------------------
    def full_scale_adc_max(self) -> float:
        """Largest partial sum a crossbar of this layer can produce: rows x G_on x largest input slice."""
        return self.rows * self.g_on * (2 ** min(self.dac_bits, self.input_bits) - 1)

    def set_ranges(self, *, input_min: float, input_max: float, adc_max: float | None) -> None:
        self.input_signed.fill_(input_min < 0)
        self.input_max.fill_(max(abs(input_min), abs(input_max)))
        if adc_max is not None:
            self.adc_step.fill_(adc_step_for_range(adc_max, self.adc_bits))
        self._cached_weight = None

    # -- forward ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._forward(x)

    def _to_4d(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """The input as the ``(N, C, H, W)`` the layer's 2-D conv reads, padded and zero-inserted as its
        module type requires (:mod:`rnc.simulator.analog_geometry`); ``lead``: Linear's leading dims."""
        if not self.is_linear:
            want = 3 if self.is_1d else 4
            if x.dim() != want:
                layout = "(N, C, L)" if self.is_1d else "(N, C, H, W)"
                raise AnalogError(f"layer {self.name!r}: input must be {layout}, got shape {tuple(x.shape)}")
            if x.shape[1] != self.in_channels:
                raise AnalogError(f"layer {self.name!r}: expected {self.in_channels} input channels, got {x.shape[1]}")
            return prepare_input(self.geometry, x.unsqueeze(2) if self.is_1d else x), ()
        if x.shape[-1] != self.in_channels:
            raise AnalogError(f"layer {self.name!r}: expected {self.in_channels} input features, got {x.shape[-1]}")
        lead = tuple(x.shape[:-1])
        return x.reshape(-1, self.in_channels, 1, 1), lead

    def _conv_padding(self) -> tuple[int, int]:
        """Padding the convolution itself applies (explicit paddings were applied by :meth:`_to_4d`)."""
        return self.padding

    @property
    def weight(self) -> torch.Tensor:
        """A stand-in for the module's weight, for parents that compute with ``child.weight`` themselves
        (Swin's ``F.linear(x, self.qkv.weight, bias)``): ``F.linear`` with it runs through this layer's
        crossbars (the bias passed is added digitally); any other use raises :class:`AnalogError`."""
        return CrossbarWeight(self)

    def _forward(self, x_in: torch.Tensor) -> torch.Tensor:
        x, lead = self._to_4d(x_in)
        x = x.float()
        if self.mode == "observe_inputs":
            self.observed_min = min(self.observed_min, float(x.min()))
            self.observed_max = max(self.observed_max, float(x.max()))
            w = self.effective_weight()
            y = F.conv2d(x, w, None, self.stride, self._conv_padding(), self.dilation, self.groups)
        else:
            y = self._crossbar_forward(x)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1).to(y.dtype)
        if self.is_linear:
            y = y.reshape(*lead, self.out_channels)
        elif self.is_1d:
            y = y.squeeze(2)
        return y.to(x_in.dtype)

    def _input_quantization(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float, int, bool]:
        """Integer inputs, their scale, magnitude bits and signedness (calibrated, else per sample)."""
        if not math.isnan(float(self.input_max)):
            signed = bool(self.input_signed)
            magnitude_bits = self.input_bits - 1 if signed else self.input_bits
            scale: torch.Tensor | float = float(self.input_max) / (2**magnitude_bits - 1) or 1.0
            return quantize_inputs(x, scale, magnitude_bits, signed), scale, magnitude_bits, signed
        # no calibrated range: each sample (image, or vector for Linear) is scaled by its own abs-max
        flat = x.reshape(x.shape[0], -1)
        signed = bool((flat < 0).any())
        magnitude_bits = self.input_bits - 1 if signed else self.input_bits
        peak = flat.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny)
        scale = (peak / (2**magnitude_bits - 1)).view(-1, 1, 1, 1)
        return quantize_inputs(x, scale, magnitude_bits, signed), scale, magnitude_bits, signed

    def _crossbar_forward(self, x: torch.Tensor) -> torch.Tensor:
        x_q, x_scale, magnitude_bits, signed = self._input_quantization(x)
        if self.mode == "observe_adc":
            step = 1.0
        else:
            step = float(self.adc_step)
            if math.isnan(step):
                raise AnalogError(
                    f"layer {self.name!r}: the ADC range is not set; convert with calibration=<batches> or "
                    "adc_range='full'"
                )
        key = (step, x.device)
        if self.read_noise_sigma > 0 or self._cached_weight is None or self._cache_key != key:
            weight = self._tile_weight(step)
            if self.read_noise_sigma == 0:
                self._cached_weight, self._cache_key = weight, key
        else:
            weight = self._cached_weight
        planes, plane_weights = input_planes(x_q, magnitude_bits, self.dac_bits, signed)
        til = self.tiling
        if til.parts > 1:
            planes = planes.repeat_interleave(til.parts, dim=2)
        pad = til.padded_channels - til.virtual_channels
        if pad:
            n_planes, n, _, h, w = planes.shape
            planes = planes.view(n_planes, n, self.groups, til.virtual_channels, h, w)
            planes = F.pad(planes, (0, 0, 0, 0, 0, pad)).view(n_planes, n, -1, h, w)
        combined = torch.tensor(plane_weights, device=x.device).view(-1, 1) * self.column_weights.view(1, -1)
        # (N, Ho, Wo, Cout); global drift compensation scales what the crossbars read, not the digital terms
        digital = self._read_and_convert(planes, weight, combined * (step * self.drift_compensation))
        # digital corrections: the encoding offset and the off-state current, exactly, from the input sums
        if self.input_sum_correction:
            n, ho, wo, _ = digital.shape
            sums = self._input_sums(x_q).permute(0, 2, 3, 1).reshape(n, ho, wo, self.groups, 1)
            digital = digital.view(n, ho, wo, self.groups, -1).sub_(self.input_sum_correction * sums)
            digital = digital.view(n, ho, wo, self.out_channels)
        if isinstance(x_scale, torch.Tensor):  # per-sample scales (no calibrated range)
            digital.mul_(x_scale.view(-1, 1, 1, 1) * self.weight_scale)
        else:
            digital.mul_(x_scale * self.weight_scale)
        return digital.permute(0, 3, 1, 2)

    def _input_sums(self, x_q: torch.Tensor) -> torch.Tensor:
        """Sum of the integer inputs over each output's receptive field, per group: ``(N, groups, Ho, Wo)``."""
        n, _, h, w = x_q.shape
        per_group = x_q.reshape(n, self.groups, -1, h, w).sum(dim=2)
        if self._ones is None or self._ones.device != x_q.device:
            self._ones = torch.ones(self.groups, 1, *self.kernel, device=x_q.device)
        return F.conv2d(per_group, self._ones, None, self.stride, self._conv_padding(), self.dilation, self.groups)

    def _output_size(self, h: int, w: int) -> tuple[int, int]:
        pad = self._conv_padding()
        sizes = []
        for size, k, st, p, d in zip((h, w), self.kernel, self.stride, pad, self.dilation, strict=True):
            sizes.append((size + 2 * p - d * (k - 1) - 1) // st + 1)
        return sizes[0], sizes[1]

    def _read_and_convert(self, planes: torch.Tensor, weight: torch.Tensor, combined: torch.Tensor) -> torch.Tensor:
        """Read every (input plane, tile, column) partial sum, convert with the ADC, shift-and-add.

        ``planes``: ``(P, N, C_padded, H, W)``; ``combined[p, s]``: digital weight of plane p, column slice s,
        times the ADC step. Returns ``(N, Ho, Wo, Cout)`` in units of integer input x integer weight. The
        grouped convolution runs channels-last, so the partial sums of one output position are contiguous:
        the ADC, the sum over tiles and the shift-and-add over column slices read them once each.
        """
        n_planes, n, _, h, w = planes.shape
        groups, til = self.groups, self.tiling
        conv_groups = groups * til.tiles
        out_g = self.out_channels // groups
        ho, wo = self._output_size(h, w)
        per_sample_bytes = weight.shape[0] * ho * wo * 4
        budget = max(1, PARTIAL_SUM_CHUNK_BYTES // per_sample_bytes)
        planes_per_chunk = max(1, min(n_planes, budget // n))
        samples_per_chunk = n if planes_per_chunk * n <= budget else budget
        out = torch.empty(n, ho * wo, self.out_channels, device=planes.device)  # first plane chunk overwrites
        if planes.device.type == "cpu":  # the Numba kernel's shift-and-add weights (same values, converted once)
            combined = combined.to(torch.float64)
        weight = weight.contiguous(memory_format=torch.channels_last)
        for plane_start in range(0, n_planes, planes_per_chunk):
            p_end = min(n_planes, plane_start + planes_per_chunk)
            for sample_start in range(0, n, samples_per_chunk):
                s_end = min(n, sample_start + samples_per_chunk)
                chunk = planes[plane_start:p_end, sample_start:s_end]
                k, m = chunk.shape[:2]
                chunk = chunk.reshape(k * m, *chunk.shape[2:]).contiguous(memory_format=torch.channels_last)
                ps = F.conv2d(chunk, weight, None, self.stride, self._conv_padding(), self.dilation, conv_groups)
                ps = ps.permute(0, 2, 3, 1)  # (k*m, Ho, Wo, groups*tiles*Cout_g*columns), contiguous
                if self.mode == "observe_adc":
                    self.observed_max = max(self.observed_max, float(ps.max()))
                ps = ps.reshape(k, m * ho * wo, groups, til.tiles, out_g, self.columns)
                target = out[sample_start:s_end].view(m * ho * wo, groups, out_g)
                adc_shift_add_(ps, combined[plane_start:p_end], self.adc_bits, self.mode != "observe_adc", target,
                               accumulate=plane_start > 0)
        return out.view(n, ho, wo, self.out_channels)

    def extra_repr(self) -> str:
        til = self.tiling
        return (
            f"{self.name!r}, in={self.in_channels}, out={self.out_channels}, kernel={self.kernel}, "
            f"crossbar={self.rows}x{self.cols}, tiles={til.tiles}x{til.channels_per_tile}ch, "
            f"columns/weight={self.columns}, adc_bits={self.adc_bits}"
        )


class CrossbarWeight(torch.Tensor):
    """A shape-only weight whose ``F.linear`` runs through its :class:`AnalogLayer` (see ``AnalogLayer.weight``)."""

    layer: AnalogLayer

    @staticmethod
    def __new__(cls, layer: AnalogLayer) -> CrossbarWeight:
        shape = (layer.out_channels, layer.in_channels) if layer.is_linear else (
            layer.out_channels, layer.in_channels // layer.groups, *layer.kernel)
        tensor = torch.Tensor._make_subclass(cls, torch.empty(shape, device="meta"))
        tensor.layer = layer
        return tensor

    _SHAPE_ONLY = (torch.Tensor.size, torch.Tensor.dim, torch.Tensor.numel, torch.Tensor.shape.__get__,
                   torch.Tensor.ndim.__get__, torch.Tensor.dtype.__get__)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        weights = [a for a in (*args, *kwargs.values()) if isinstance(a, CrossbarWeight)]
        layer = weights[0].layer
        if func is F.linear and layer.is_linear and len(args) >= 2 and args[1] is weights[0]:
            x = args[0]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            y = layer(x)
            if layer.bias is not None:
                y = y - layer.bias.to(y.dtype)
            return y if bias is None else y + bias.to(y.dtype)
        if func in cls._SHAPE_ONLY:
            return super().__torch_function__(func, types, args, kwargs)
        raise AnalogError(
            f"layer {layer.name!r}: its weight is used by {getattr(func, '__name__', func)} outside the layer; "
            "only F.linear with it can run through the crossbars, so to_analog cannot map this use"
        )

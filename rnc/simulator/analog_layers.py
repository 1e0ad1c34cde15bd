"""One Conv2d or Linear layer as its crossbars compute it (:class:`AnalogLayer`).

The mapping, the cell model and the arithmetic are documented in :mod:`rnc.simulator.analog`. This module
holds the per-layer machinery: row tiling by whole input channels, the cell conductances with their static
non-idealities (sampled once), per-forward read noise, the grouped convolution that reads every crossbar
tile and weight slice at once, the ADC and the digital shift-and-add.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812

from rnc.simulator.analog_arith import (
    AnalogError,
    adc_scatter_add_,
    adc_shift_add_,
    adc_step_for_range,
    codes_exact_in_float32,
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


@dataclass(frozen=True)
class ReadPlan:
    """How one layer's crossbar reads are computed at one ADC step (built once per step, then cached).

    - ``lossless_weight``: ``(Cout, Cin_g, kh, kw)`` or ``None``: the columns whose ADC is lossless, folded
      with their shift-and-add weights, the drift compensation and the digital offset/off-current corrections
      into one convolution of the whole integer input (in digital units);
    - the other reads go through the ADC: ``reads_per_tile`` columns per (group, tile), each read once per
      input slice by one grouped convolution: float weights ``read_weight`` (conductance / step) or oneDNN's
      packed int8 levels ``packed_weight`` (exact int32 partial sums in levels: returned as uint8 ADC codes
      when float32 rounds them exactly, ``uint8_codes``, else as float32 sums that the ADC kernels convert
      exactly with ``adc_scale`` = level unit / step). ``output_index``/``slice_index``
      ``(groups, tiles, reads)`` say which output and weight slice each read is when only some columns are
      read (``None``: all of them, in (output, slice) order).
    """

    step: float
    lossless_weight: torch.Tensor | None
    read_weight: torch.Tensor | None
    packed_weight: torch.Tensor | None
    reads_per_tile: int
    output_index: torch.Tensor | None
    slice_index: torch.Tensor | None
    weight_scales: torch.Tensor | None = None
    weight_zero_points: torch.Tensor | None = None
    adc_scale: float = 1.0
    uint8_codes: bool = False


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
        self.level_unit = self._level_unit(hw)
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
        self.fast_paths = True  # False: every read through the ADC in float (the reference path)
        self._cached_plan: ReadPlan | None = None
        self._cache_key: tuple[object, ...] | None = None
        self._ones: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, object]:
        """Pickling and deep copies leave out the cached read plan (oneDNN's packed weights have no storage)."""
        state = dict(super().__getstate__())
        state["_cached_plan"], state["_cache_key"] = None, None
        return state

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

    def _level_unit(self, hw: HardwareConfig) -> float | None:
        """The lattice of the read conductances: every one an integer multiple of it, else ``None``.

        Ideal cells sit on whole levels (unit 1), and so do stuck cells when ``g_off`` is a whole number of
        levels; a drift with one exponent for all cells scales the lattice by ``(t/t0)**-nu``. Programming
        variation, a spread of drift exponents, read noise and IR drop take the conductances off it.
        """
        ni = hw.nonideal
        if ni.conductance_sigma > 0 or ni.read_noise_sigma > 0 or ni.wire_resistance_ratio > 0:
            return None
        if not float(self.g_off).is_integer():
            return None
        if ni.drift_nu > 0 and ni.drift_time_s > ni.drift_t0_s:
            return None if ni.drift_nu_sigma > 0 else (ni.drift_time_s / ni.drift_t0_s) ** (-ni.drift_nu)
        return 1.0

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
        return self._tile_layout(self._read_conductance() / step)

    def _tile_layout(self, g: torch.Tensor) -> torch.Tensor:
        """Per-cell values ``(Cout, columns, Cin_g, kh, kw)`` in the grouped-conv layout of the crossbar tiles:
        ``(groups*tiles*Cout_g*columns, channels_per_tile, kh, kw)``, zero on padded rows."""
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

    def _row_tiles(self) -> torch.Tensor:
        """Crossbar tile (0 .. tiles-1) of every weight row, shape ``(Cin_g, kh, kw)``."""
        kh, kw = self.kernel
        til = self.tiling
        cin_g = self.in_channels // self.groups
        part = (torch.arange(kh * kw) // self.rows).view(1, kh, kw) if til.parts > 1 else torch.zeros(1, kh, kw)
        virtual = torch.arange(cin_g).view(cin_g, 1, 1) * til.parts + part.long()
        return virtual // til.channels_per_tile

    def _untile(self, per_read: torch.Tensor) -> torch.Tensor:
        """A value per (group, tile, output, column) ``(G, T, Cout_g, columns)`` on every cell it reads:
        ``(Cout, columns, Cin_g, kh, kw)``."""
        tiles = self._row_tiles().to(per_read.device)
        cells = per_read.permute(0, 2, 3, 1)[..., tiles]  # (G, Cout_g, columns, Cin_g, kh, kw)
        return cells.reshape(self.out_channels, self.columns, *tiles.shape)

    # -- ranges -------------------------------------------------------------------------------------
    def full_scale_adc_max(self) -> float:
        """Largest partial sum a crossbar of this layer can produce: rows x G_on x largest input slice."""
        return self.rows * self.g_on * (2 ** min(self.dac_bits, self.input_bits) - 1)

    def set_ranges(self, *, input_min: float, input_max: float, adc_max: float | None) -> None:
        self.input_signed.fill_(input_min < 0)
        self.input_max.fill_(max(abs(input_min), abs(input_max)))
        if adc_max is not None:
            self.adc_step.fill_(adc_step_for_range(adc_max, self.adc_bits, self.level_unit))
        self._cached_plan = None

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
        plan = self._read_plan(step, x.device)
        digital = None  # (N, Ho, Wo, Cout)
        if plan.reads_per_tile:
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
            if plan.output_index is not None:  # compact reads: the last slice index is padding, weight 0
                combined = F.pad(combined, (0, 1))
            # global drift compensation scales what the crossbars read, not the digital terms
            digital = self._read_and_convert(planes, plan, combined * (step * self.drift_compensation))
        if plan.lossless_weight is not None:
            # lossless columns: the ADC is the identity on them, so their reads of every input slice sum to one
            # convolution of the whole integer input (digital corrections folded into the weight)
            exact = F.conv2d(x_q, plan.lossless_weight, None, self.stride, self._conv_padding(), self.dilation,
                             self.groups).permute(0, 2, 3, 1)
            digital = exact if digital is None else digital.add_(exact)
        elif self.input_sum_correction:
            # digital corrections: the encoding offset and the off-state current, exactly, from the input sums
            n, ho, wo, _ = digital.shape
            sums = self._input_sums(x_q).permute(0, 2, 3, 1).reshape(n, ho, wo, self.groups, 1)
            digital = digital.view(n, ho, wo, self.groups, -1).sub_(self.input_sum_correction * sums)
            digital = digital.view(n, ho, wo, self.out_channels)
        if isinstance(x_scale, torch.Tensor):  # per-sample scales (no calibrated range)
            digital.mul_(x_scale.view(-1, 1, 1, 1) * self.weight_scale)
        else:
            digital.mul_(x_scale * self.weight_scale)
        return digital.permute(0, 3, 1, 2)

    # -- read plans ---------------------------------------------------------------------------------
    def _read_plan(self, step: float, device: torch.device) -> ReadPlan:
        """The cached :class:`ReadPlan` for this step (rebuilt every pass under read noise, and when the
        conductances change in place, e.g. by ``load_state_dict``)."""
        key = (step, device, self.mode == "observe_adc", self.fast_paths, self.conductance._version)
        if self.read_noise_sigma > 0 or self._cached_plan is None or self._cache_key != key:
            plan = self._build_plan(step, device)
            if self.read_noise_sigma == 0:
                self._cached_plan, self._cache_key = plan, key
            return plan
        return self._cached_plan

    def _plane_max(self) -> int:
        """Largest input-slice value a DAC drives (``min(dac_bits, input_bits)`` bits, any input sign)."""
        return 2 ** min(self.dac_bits, self.input_bits) - 1

    def _build_plan(self, step: float, device: torch.device) -> ReadPlan:
        """Split the reads into lossless columns (one exact convolution) and reads through the ADC.

        A column of a tile is lossless when its conductances lie on the level lattice (unit ``u``), the step is
        one unit (so every partial sum is a whole number of steps) and its largest partial sum
        ``sum(levels) * u * largest input slice`` is within full scale: its codes then equal its partial sums
        divided by the step. The other reads keep the bit-sliced path: their partial sums are computed in
        integer arithmetic (8-bit inputs, 8-bit levels, 32-bit sums; oneDNN) on CPU when the cells are on the
        lattice, in float elsewhere.
        """
        g = self._read_conductance()
        out_g = self.out_channels // self.groups
        unit = self.level_unit
        if not self.fast_paths or self.mode == "observe_adc" or unit is None:
            return ReadPlan(step, None, self._tile_layout(g / step), None, out_g * self.columns, None, None)
        levels = torch.round(g / unit)  # exact: the cells are on the lattice
        tiled = self._tile_layout(levels)
        shape = (self.groups, self.tiling.tiles, out_g, self.columns)
        top = 2**self.adc_bits - 1
        if abs(step - unit) <= 1e-6 * unit:
            lossless = tiled.sum(dim=(1, 2, 3)).view(shape) * self._plane_max() <= top
        else:
            lossless = torch.zeros(shape, dtype=torch.bool, device=g.device)
        lossless_weight = None
        if bool(lossless.any()):
            kept = levels * self._untile(lossless).to(levels.dtype)
            realized = torch.einsum("os...,s->o...", kept, self.column_weights) * (unit * self.drift_compensation)
            lossless_weight = (realized - self.input_sum_correction).contiguous()
        int8 = self._integer_reads(levels, device)
        read_values = tiled if int8 else self._tile_layout(g / step)
        if bool(lossless.all()):
            return ReadPlan(step, lossless_weight, None, None, 0, None, None)
        if not bool(lossless.any()):
            return self._finish_plan(ReadPlan(step, None, read_values, None, out_g * self.columns,
                                              None, None), int8)
        # compact reads: per (group, tile) the lossy columns first, padded to the same count with zero columns
        lossy = (~lossless).view(shape[0] * shape[1], out_g * self.columns)
        counts = lossy.sum(dim=1)
        reads = int(counts.max())
        order = torch.argsort((~lossy).to(torch.int8), dim=1, stable=True)[:, :reads]
        valid = torch.arange(reads, device=g.device).view(1, -1) < counts.view(-1, 1)
        per_tile = read_values.view(shape[0] * shape[1], out_g * self.columns, *read_values.shape[1:])
        picked = per_tile[torch.arange(per_tile.shape[0], device=g.device).view(-1, 1), order]
        picked = picked * valid.view(*valid.shape, 1, 1, 1).to(picked.dtype)
        output_index = torch.where(valid, order // self.columns, 0).view(shape[0], shape[1], reads)
        slice_index = torch.where(valid, order % self.columns, self.columns).view(shape[0], shape[1], reads)
        plan = ReadPlan(step, lossless_weight, picked.reshape(-1, *read_values.shape[1:]), None, reads,
                        output_index, slice_index)
        return self._finish_plan(plan, int8)

    def _finish_plan(self, plan: ReadPlan, int8: bool) -> ReadPlan:
        """Channels-last read weights; on the integer path, oneDNN's packed int8 weights."""
        weight = plan.read_weight.contiguous(memory_format=torch.channels_last)
        if not int8:
            return dataclasses.replace(plan, read_weight=weight)
        # exact int32 sums in levels. Where float32 rounds them exactly (unit 1, see codes_exact_in_float32),
        # oneDNN scales them by 1 / step and requantizes to uint8: the ADC's round-half-to-even and clip to 255;
        # otherwise they come back as float32 (exact below 2**24) and the ADC kernels round them in float64
        in_float32 = self.adc_bits <= 8 and self.level_unit == 1.0 and codes_exact_in_float32(plan.step, self.adc_bits)
        scales = torch.full((weight.shape[0],), 1.0 / plan.step if in_float32 else 1.0)
        packed = torch.ops.onednn.qconv_prepack(
            weight.to(torch.int8), scales, 1.0, 0, list(self.stride), list(self._conv_padding()),
            list(self.dilation), self.groups * self.tiling.tiles, None,
        )
        return dataclasses.replace(plan, read_weight=None, packed_weight=packed, weight_scales=scales,
                                   weight_zero_points=torch.zeros(weight.shape[0], dtype=torch.int64),
                                   adc_scale=1.0 if in_float32 else self.level_unit / plan.step,
                                   uint8_codes=in_float32)

    def _integer_reads(self, levels: torch.Tensor, device: torch.device) -> bool:
        """Whether the reads can run as exact integer convolutions: CPU, oneDNN's int8 convolution, levels
        and input slices that fit 8 bits without saturating AVX2's 16-bit pair sums, 32-bit-exact sums. Every
        padding qualifies: string and non-zero-mode paddings are applied to the input first (:meth:`_to_4d`), so
        the convolution's own padding is always numeric."""
        if device.type != "cpu" or not self.fast_paths:
            return False
        if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv_pointwise")):
            return False
        level_max, plane_max = float(levels.max()), self._plane_max()
        return level_max <= 63 and plane_max <= 255 and self.rows * level_max * plane_max < 2**24

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

    def _read_and_convert(self, planes: torch.Tensor, plan: ReadPlan, combined: torch.Tensor) -> torch.Tensor:
        """Read every (input plane, tile, column) partial sum of the plan, convert with the ADC, shift-and-add.

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
        per_sample_bytes = conv_groups * plan.reads_per_tile * ho * wo * (1 if plan.uint8_codes else 4)
        budget = max(1, PARTIAL_SUM_CHUNK_BYTES // per_sample_bytes)
        planes_per_chunk = max(1, min(n_planes, budget // n))
        samples_per_chunk = n if planes_per_chunk * n <= budget else budget
        out = torch.empty(n, ho * wo, self.out_channels, device=planes.device)  # first plane chunk overwrites
        if planes.device.type == "cpu":  # the Numba kernel's shift-and-add weights (same values, converted once)
            combined = combined.to(torch.float64)
        if plan.packed_weight is not None:
            planes = planes.to(torch.uint8)  # exact: whole input slices of at most 8 bits
        quantize = self.mode != "observe_adc"
        for plane_start in range(0, n_planes, planes_per_chunk):
            p_end = min(n_planes, plane_start + planes_per_chunk)
            for sample_start in range(0, n, samples_per_chunk):
                s_end = min(n, sample_start + samples_per_chunk)
                chunk = planes[plane_start:p_end, sample_start:s_end]
                k, m = chunk.shape[:2]
                chunk = chunk.reshape(k * m, *chunk.shape[2:]).contiguous(memory_format=torch.channels_last)
                ps = self._read(chunk, plan, conv_groups).permute(0, 2, 3, 1)  # (k*m, Ho, Wo, reads), contiguous
                if self.mode == "observe_adc":
                    self.observed_max = max(self.observed_max, float(ps.max()))
                target = out[sample_start:s_end].view(m * ho * wo, groups, out_g)
                if plan.output_index is None:
                    ps = ps.reshape(k, m * ho * wo, groups, til.tiles, out_g, self.columns)
                    adc_shift_add_(ps, combined[plane_start:p_end], self.adc_bits, quantize, target,
                                   accumulate=plane_start > 0, scale=plan.adc_scale)
                else:
                    ps = ps.reshape(k, m * ho * wo, groups, til.tiles, plan.reads_per_tile)
                    adc_scatter_add_(ps, combined[plane_start:p_end], plan.output_index, plan.slice_index,
                                     self.adc_bits, target, accumulate=plane_start > 0,
                                     scale=plan.adc_scale)
        return out.view(n, ho, wo, self.out_channels)

    def _read(self, chunk: torch.Tensor, plan: ReadPlan, conv_groups: int) -> torch.Tensor:
        """Partial sums of one chunk of input slices ``(B, C_padded, H, W)``: ``(B, reads, Ho, Wo)``, channels-last;
        in ADC steps (float reads), or, with packed weights, an integer convolution's exact int32 sums: uint8
        ADC codes (``plan.uint8_codes``) or float32 sums in levels (``plan.adc_scale`` converts them)."""
        if plan.packed_weight is None:
            return F.conv2d(chunk, plan.read_weight, None, self.stride, self._conv_padding(), self.dilation,
                            conv_groups)
        return torch.ops.onednn.qconv_pointwise(
            chunk, 1.0, 0, plan.packed_weight, plan.weight_scales, plan.weight_zero_points, None,
            list(self.stride), list(self._conv_padding()), list(self.dilation), conv_groups, 1.0, 0,
            None if plan.uint8_codes else torch.float32, "none", [], "",
        )

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

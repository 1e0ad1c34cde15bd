"""Integer arithmetic of a crossbar layer: weight quantization and bit-slicing, input slicing, the ADC.

Pure tensor functions (no randomness, no modules), each exact on integers, so the crossbar arithmetic
can be checked by hand. Conventions are those of :mod:`rnc.simulator.analog`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from rnc.errors import UserError


class AnalogError(UserError, ValueError):
    """A model, hardware description or calibration that cannot be simulated; the message says what to do."""


@dataclass(frozen=True)
class SlicedWeights:
    """Weights as cell levels: ``levels[o, s, ...]`` is the level (0 .. 2**cell_bits - 1) of column slice
    ``s`` of output ``o``; ``column_weights[s]`` is that column's signed digital shift-and-add weight, and
    ``offset`` the integer subtracted per unit of input (offset encoding), so that exactly

        q[o, ...] == sum_s column_weights[s] * levels[o, s, ...] - offset.
    """

    levels: torch.Tensor
    column_weights: torch.Tensor
    offset: int


def quantize_weights(weight: torch.Tensor, weight_bits: int) -> tuple[torch.Tensor, float]:
    """Symmetric per-layer quantization: ``q = round(w / scale)`` in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``.

    ``scale = max|w| / (2**(b-1) - 1)`` (NeuroSim's and ISAAC's per-layer fixed point); returns ``(q, scale)``
    with ``q`` a float tensor of integers. An all-zero weight gets scale 1.
    """
    if weight_bits < 2:
        raise AnalogError(f"weight_bits={weight_bits}: signed weights need at least 2 bits; set weight_bits >= 2")
    q_max = 2 ** (weight_bits - 1) - 1
    w_max = float(weight.detach().abs().max()) if weight.numel() else 0.0
    scale = w_max / q_max if w_max > 0 else 1.0
    q = torch.clamp(torch.round(weight.detach().float() / scale), -q_max, q_max)
    return q, scale


def slice_weights(q: torch.Tensor, weight_bits: int, cell_bits: int, encoding: str) -> SlicedWeights:
    """Bit-slice integer weights ``q`` (any shape ``(out, ...)``) into cell levels.

    ``slices = ceil(weight_bits / cell_bits)``; slice ``s`` holds bits ``[s*cell_bits, (s+1)*cell_bits)``
    (least significant first) and has digital weight ``2**(s*cell_bits)`` (ISAAC Sec. 4).

    - ``offset``: the cells store ``u = q + 2**(weight_bits-1)`` (unsigned, ``weight_bits`` bits); the offset
      ``2**(weight_bits-1) * sum(x)`` is subtracted digitally (ISAAC's biased encoding).
    - ``differential``: ``max(q, 0)`` on ``slices`` positive columns and ``max(-q, 0)`` on ``slices``
      negative columns (weights ``-2**(s*cell_bits)``), as in NeuroSim's and aihwkit's conductance pairs.

    Returns levels of shape ``(out, columns, ...)`` with ``columns = slices`` (offset) or ``2*slices``.
    """
    if encoding not in ("offset", "differential"):
        raise AnalogError(f"signed_encoding={encoding!r}: expected 'offset' or 'differential'")
    slices = math.ceil(weight_bits / cell_bits)
    mask = 2**cell_bits - 1
    q_int = q.to(torch.int64)
    shifts = [s * cell_bits for s in range(slices)]
    if encoding == "offset":
        offset = 2 ** (weight_bits - 1)
        u = q_int + offset
        levels = torch.stack([(u >> sh) & mask for sh in shifts], dim=1)
        column_weights = torch.tensor([float(2**sh) for sh in shifts])
    else:
        offset = 0
        pos, neg = q_int.clamp(min=0), (-q_int).clamp(min=0)
        levels = torch.stack([(pos >> sh) & mask for sh in shifts] + [(neg >> sh) & mask for sh in shifts], dim=1)
        column_weights = torch.tensor([float(2**sh) for sh in shifts] + [-float(2**sh) for sh in shifts])
    return SlicedWeights(levels.to(torch.float32), column_weights, offset)


def quantize_inputs(x: torch.Tensor, scale: torch.Tensor | float, magnitude_bits: int, signed: bool) -> torch.Tensor:
    """Inputs to integers: ``round(x / scale)`` clipped to ``[0, 2**m - 1]`` (or ``[-(2**m - 1), 2**m - 1]``)."""
    top = 2**magnitude_bits - 1
    return (x / scale).round_().clamp_(-top if signed else 0, top)


def input_planes(
    x_q: torch.Tensor, magnitude_bits: int, dac_bits: int, signed: bool
) -> tuple[torch.Tensor, list[float]]:
    """Split integer inputs into the ``dac_bits`` slices streamed on the word lines, one read each.

    Magnitudes of ``magnitude_bits`` bits stream in ``ceil(magnitude_bits / dac_bits)`` slices, least
    significant first, with digital weight ``2**(b*dac_bits)`` (ISAAC's bit-serial inputs; NeuroSim).
    Signed inputs are applied as two non-negative phases (positive part, then negative part with negated
    digital weights), since a DAC drives one polarity. Returns ``(planes, plane_weights)``: planes stacked on
    a new leading dimension. The negative phase is omitted when no input is negative (it would read zeros).
    """
    slices = math.ceil(magnitude_bits / dac_bits)
    parts = [(x_q.clamp(min=0) if signed else x_q, 1.0)]
    if signed and bool((x_q < 0).any()):
        parts.append(((-x_q).clamp(min=0), -1.0))
    if slices == 1 and len(parts) == 1:
        return parts[0][0].unsqueeze(0), [1.0]
    planes, weights = [], []
    for part, sign in parts:
        if slices == 1:
            planes.append(part)
            weights.append(sign)
            continue
        for b in range(slices):
            radix = float(2 ** (b * dac_bits))
            planes.append(torch.remainder(torch.floor(part / radix), 2**dac_bits))
            weights.append(sign * radix)
    return torch.stack(planes), weights


def adc_codes_(partial_sums: torch.Tensor, adc_bits: int) -> torch.Tensor:
    """The ADC, in place: partial sums already divided by the step become codes ``clamp(round(.), 0, 2**b-1)``.

    A uniform unipolar ADC with ``2**adc_bits`` levels from 0 to ``(2**adc_bits - 1) * step``; values above
    full scale saturate (NeuroSim's linear ADC quantizer, with a calibrated or fixed range).
    """
    return partial_sums.round_().clamp_(0, 2**adc_bits - 1)


def adc_step_for_range(adc_max: float, adc_bits: int, level_unit: float | None = 1.0) -> float:
    """ADC step (in conductance-level x input-level units) that spreads ``2**adc_bits - 1`` steps over ``adc_max``.

    ``level_unit``: the lattice the partial sums lie on, when every read conductance is an integer multiple
    of it (ideal cells: 1; uniform drift ``(t/t0)**-nu`` with no spread in ``nu``: that factor); the step is
    then never finer than one unit, since a step of one unit already converts every partial sum exactly.
    ``None`` when the conductances are off the lattice (variation, drift spread, read noise, IR drop, a
    non-integer off-state conductance): the step is then ``adc_max / (2**adc_bits - 1)``, unfloored, since
    flooring it would round partial sums that are not multiples of it.
    """
    if adc_max <= 0:
        return 1.0 if level_unit is None else level_unit
    step = round_significant(adc_max / (2**adc_bits - 1), STEP_BITS)
    return step if level_unit is None else max(step, level_unit)


STEP_BITS = 12
"""Significant bits of an ADC step (the reference a DAC sets): few enough that an integer partial sum is either
exactly on a code boundary or clearly off it, so float32 arithmetic rounds it exactly
(see :func:`codes_exact_in_float32`)."""


def round_significant(value: float, bits: int) -> float:
    """``value`` rounded to ``bits`` significant bits (round half to even): ``23.6470588 -> 23.646484375`` at 12."""
    mantissa, exponent = math.frexp(value)
    return math.ldexp(round(mantissa * 2**bits), exponent - bits)


def codes_exact_in_float32(step: float, adc_bits: int) -> bool:
    """Whether ``rint(float32(P) * float32(1 / step))`` is the exact ADC code ``round_half_even(P / step)`` of
    every integer partial sum ``P`` that converts to at most ``2**adc_bits`` (``P < 2**24``).

    Write ``step = M * 2**E`` with ``M`` odd. A power of two divides exactly. Otherwise, when ``E <= 0`` no
    integer ``P`` lies exactly on a boundary (``2P = (2k+1) M 2**E`` has no integer solution), and every ``P``
    is at least ``1 / (2M)`` from one; with ``M <= 2**STEP_BITS`` that is ``1.2e-4``, above float32's error of
    at most ``2**adc_bits * 2**-23`` (``3e-5`` at 8 bits), so rounding in float32 is exact.
    """
    numerator, denominator = float(step).as_integer_ratio()
    if numerator & (numerator - 1) == 0:  # a power of two (denominator is one too)
        return True
    odd, exponent = numerator, -denominator.bit_length() + 1
    while odd % 2 == 0:
        odd, exponent = odd // 2, exponent + 1
    return exponent <= 0 and odd <= 2**STEP_BITS and adc_bits <= 8


KERNEL_DTYPES = (torch.float32, torch.uint8)
"""Partial sums the Numba kernels read: float32, or uint8 codes an integer read already rounded and clipped."""

TIE_WINDOW = 1e-9
"""Distance from half a step within which an exact partial sum times ``scale`` is a tie (see ``exact_codes``)."""


@numba.njit(cache=True, inline="always")
def _exact_code(partial_sum: np.float32, scale: float, top: float) -> float:  # pragma: no cover - compiled
    quotient = np.float64(partial_sum) * scale
    code = np.rint(quotient)
    if abs(abs(quotient - code) - 0.5) < TIE_WINDOW:  # an exact tie: half to even, as np.rint
        code = 2.0 * np.rint(quotient * 0.5)
    return min(max(code, 0.0), top)


def exact_codes(partial_sums: torch.Tensor, scale: float, adc_bits: int) -> torch.Tensor:
    """ADC codes ``clip(round_half_even(P / step), 0, 2**adc_bits - 1)`` of exact integer partial sums ``P``.

    ``scale`` is ``1 / step`` (times the level unit when sums count levels), in float64. For an integer
    ``P < 2**24`` and a float32 step ``s = M * 2**E`` (``M < 2**24``), ``P / s`` is either exactly half-integer
    or at least ``1 / (2M) > 3e-8`` away from one, while ``P * scale`` in float64 errs by under ``1e-13``: so
    rounding ``P * scale`` is exact, with quotients within ``TIE_WINDOW`` of a half-integer taken as ties.
    (Tensor form of the Numba kernels' rounding; used on GPU and by tests.)
    """
    quotient = partial_sums.double() * scale
    code = torch.round(quotient)
    tie = ((quotient - code).abs() - 0.5).abs() < TIE_WINDOW
    code = torch.where(tie, 2.0 * torch.round(quotient * 0.5), code)
    return code.clamp_(0, 2**adc_bits - 1)


@numba.njit(cache=True, nogil=True)
def _adc_shift_add_kernel(
    partial_sums: np.ndarray, digital_weights: np.ndarray, scale: float, top: np.float32, quantize: bool,
    accumulate: bool, out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    planes, positions, groups, tiles, outs, columns = partial_sums.shape
    width = outs * columns
    flat = partial_sums.reshape(planes, positions, groups, tiles, width)
    codes = np.empty(width, dtype=np.float32)
    zero = np.float32(0.0)
    exact = scale != 1.0
    top64 = np.float64(top)
    for p in range(planes):
        for r in range(positions):
            for g in range(groups):
                codes[:] = zero
                for t in range(tiles):  # contiguous inner loops: vectorized round, clip and sum over tiles
                    row = flat[p, r, g, t]
                    if quantize and exact:  # branch-free form of _exact_code, so that it vectorizes
                        for j in range(width):
                            quotient = np.float64(row[j]) * scale
                            code = np.rint(quotient)
                            tie = abs(abs(quotient - code) - 0.5) < TIE_WINDOW
                            even = 2.0 * np.rint(quotient * 0.5)
                            code = even if tie else code
                            codes[j] += np.float32(min(max(code, 0.0), top64))
                    elif quantize:
                        for j in range(width):
                            codes[j] += min(max(np.rint(np.float32(row[j])), zero), top)
                    else:
                        for j in range(width):
                            codes[j] += np.float32(row[j])
                for o in range(outs):
                    acc = 0.0
                    for s in range(columns):
                        acc += digital_weights[p, s] * codes[o * columns + s]
                    if accumulate or p > 0:
                        out[r, g, o] += acc
                    else:
                        out[r, g, o] = acc


@numba.njit(cache=True, nogil=True)
def _adc_scatter_kernel(
    partial_sums: np.ndarray, digital_weights: np.ndarray, output_index: np.ndarray, slice_index: np.ndarray,
    scale: float, top: np.float32, accumulate: bool, out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    planes, positions, groups, tiles, reads = partial_sums.shape
    outs = out.shape[2]
    acc = np.empty(outs, dtype=np.float64)
    zero = np.float32(0.0)
    exact = scale != 1.0
    top64 = np.float64(top)
    for r in range(positions):
        for g in range(groups):
            acc[:] = 0.0
            for p in range(planes):
                for t in range(tiles):
                    row = partial_sums[p, r, g, t]
                    for j in range(reads):
                        if exact:
                            code = np.float32(_exact_code(row[j], scale, top64))
                        else:
                            code = min(max(np.rint(np.float32(row[j])), zero), top)
                        acc[output_index[g, t, j]] += digital_weights[p, slice_index[g, t, j]] * code
            for o in range(outs):
                if accumulate:
                    out[r, g, o] += acc[o]
                else:
                    out[r, g, o] = acc[o]


def adc_shift_add_(partial_sums: torch.Tensor, digital_weights: torch.Tensor, adc_bits: int, quantize: bool,
                   out: torch.Tensor, *, accumulate: bool = True, scale: float = 1.0) -> None:
    """ADC every partial sum, sum the tiles, shift-and-add the planes and columns, into ``out`` (in place).

    ``partial_sums``: ``(planes, positions, groups, tiles, outs_per_group, columns)``, in ADC steps once
    multiplied by ``scale`` (``scale != 1``: exact integer sums, rounded exactly as :func:`exact_codes`);
    ``digital_weights[p, s]``: digital weight of input plane ``p`` and column slice ``s`` (times
    the step); ``out``: ``(positions, groups, outs_per_group)``, accumulated:
    ``out[r, g, o] += sum_{p,t,s} digital_weights[p, s] * adc(partial_sums[p, r, g, t, o, s])``
    with ``adc(v) = clip(round(v * scale), 0, 2**adc_bits - 1)`` (identity when ``quantize`` is false). With
    ``accumulate=False`` the result overwrites ``out`` instead (which may then start uninitialized). One fused
    pass on CPU (Numba, float64 shift-and-add weights: pass them as float64 to avoid a conversion per call);
    tensor operations elsewhere (GPU).
    """
    top = float(2**adc_bits - 1)
    if partial_sums.dtype == torch.uint8 and adc_bits >= 8:
        quantize = False  # uint8 codes: already rounded and clipped to 255
    if partial_sums.device.type == "cpu" and partial_sums.dtype in KERNEL_DTYPES and out.is_contiguous():
        _adc_shift_add_kernel(
            partial_sums.contiguous().numpy(), digital_weights.to(torch.float64).contiguous().numpy(),
            float(scale), np.float32(top), quantize, accumulate, out.numpy(),
        )
        return
    partial_sums = partial_sums.float() if partial_sums.dtype == torch.uint8 else partial_sums
    if quantize:
        codes = exact_codes(partial_sums, scale, adc_bits) if scale != 1.0 else partial_sums.round().clamp_(0, top)
    else:
        codes = partial_sums * scale if scale != 1.0 else partial_sums
    summed = codes.sum(dim=3)  # (planes, positions, groups, outs, columns)
    result = torch.einsum("prgos,ps->rgo", summed, digital_weights.to(summed.dtype))
    if accumulate:
        out += result
    else:
        out.copy_(result)


def adc_scatter_add_(partial_sums: torch.Tensor, digital_weights: torch.Tensor, output_index: torch.Tensor,
                     slice_index: torch.Tensor, adc_bits: int, out: torch.Tensor, *, accumulate: bool = True,
                     scale: float = 1.0) -> None:
    """The ADC and shift-and-add of a compact set of column reads, into ``out`` (in place).

    ``partial_sums``: ``(planes, positions, groups, tiles, reads)``, in ADC steps once multiplied by ``scale``
    (as in :func:`adc_shift_add_`): read ``j`` of tile ``t`` of
    group ``g`` is the column of output ``output_index[g, t, j]`` (within the group) and weight slice
    ``slice_index[g, t, j]``;
    ``digital_weights``: ``(planes, slices + 1)``, the last column 0 (the slice index of padding reads);
    ``out``: ``(positions, groups, outs_per_group)``:
    ``out[r, g, o] += sum_{p,t,j: output_index[g,t,j]=o} digital_weights[p, slice_index[g,t,j]] *
    clip(round(partial_sums[p, r, g, t, j] * scale), 0, 2**adc_bits - 1)``.
    Numba on CPU, tensor operations elsewhere.
    """
    top = float(2**adc_bits - 1)
    if partial_sums.device.type == "cpu" and partial_sums.dtype in KERNEL_DTYPES and out.is_contiguous():
        _adc_scatter_kernel(
            partial_sums.contiguous().numpy(), digital_weights.to(torch.float64).contiguous().numpy(),
            output_index.contiguous().numpy(), slice_index.contiguous().numpy(), float(scale), np.float32(top),
            accumulate, out.numpy(),
        )
        return
    partial_sums = partial_sums.float() if partial_sums.dtype == torch.uint8 else partial_sums
    codes = exact_codes(partial_sums, scale, adc_bits) if scale != 1.0 else partial_sums.round().clamp_(0, top)
    outs = out.shape[2]
    # (planes, groups, tiles, reads, outs): each read's digital weight on its output, 0 elsewhere
    one_hot = F.one_hot(output_index, outs).to(codes.dtype)
    read_weights = digital_weights.to(codes.dtype)[:, slice_index]
    result = torch.einsum("prgtj,pgtj,gtjo->rgo", codes, read_weights, one_hot)
    if accumulate:
        out += result
    else:
        out.copy_(result)

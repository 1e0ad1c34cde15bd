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


def adc_step_for_range(adc_max: float, adc_bits: int) -> float:
    """ADC step (in cell-level x input-level units) that spreads ``2**adc_bits - 1`` steps over ``adc_max``.

    Never finer than 1: partial sums of ideal cells are integers, so a step of 1 is already exact.
    """
    if adc_max <= 0:
        return 1.0
    return max(adc_max / (2**adc_bits - 1), 1.0)


@numba.njit(cache=True, nogil=True)
def _adc_shift_add_kernel(
    partial_sums: np.ndarray, digital_weights: np.ndarray, top: np.float32, quantize: bool, accumulate: bool,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    planes, positions, groups, tiles, outs, columns = partial_sums.shape
    width = outs * columns
    flat = partial_sums.reshape(planes, positions, groups, tiles, width)
    codes = np.empty(width, dtype=np.float32)
    zero = np.float32(0.0)
    for p in range(planes):
        for r in range(positions):
            for g in range(groups):
                codes[:] = zero
                for t in range(tiles):  # contiguous inner loops: vectorized round, clip and sum over tiles
                    row = flat[p, r, g, t]
                    if quantize:
                        for j in range(width):
                            codes[j] += min(max(np.rint(row[j]), zero), top)
                    else:
                        for j in range(width):
                            codes[j] += row[j]
                for o in range(outs):
                    acc = 0.0
                    for s in range(columns):
                        acc += digital_weights[p, s] * codes[o * columns + s]
                    if accumulate or p > 0:
                        out[r, g, o] += acc
                    else:
                        out[r, g, o] = acc


def adc_shift_add_(partial_sums: torch.Tensor, digital_weights: torch.Tensor, adc_bits: int, quantize: bool,
                   out: torch.Tensor, *, accumulate: bool = True) -> None:
    """ADC every partial sum, sum the tiles, shift-and-add the planes and columns, into ``out`` (in place).

    ``partial_sums``: ``(planes, positions, groups, tiles, outs_per_group, columns)`` in ADC steps;
    ``digital_weights[p, s]``: digital weight of input plane ``p`` and column slice ``s`` (times the step);
    ``out``: ``(positions, groups, outs_per_group)``, accumulated:
    ``out[r, g, o] += sum_{p,t,s} digital_weights[p, s] * adc(partial_sums[p, r, g, t, o, s])``
    with ``adc(v) = clip(round(v), 0, 2**adc_bits - 1)`` (identity when ``quantize`` is false). With
    ``accumulate=False`` the result overwrites ``out`` instead (which may then start uninitialized). One fused
    pass on CPU (Numba, float64 shift-and-add weights: pass them as float64 to avoid a conversion per call);
    tensor operations elsewhere (GPU).
    """
    top = float(2**adc_bits - 1)
    if partial_sums.device.type == "cpu" and partial_sums.dtype == torch.float32 and out.is_contiguous():
        _adc_shift_add_kernel(
            partial_sums.contiguous().numpy(), digital_weights.to(torch.float64).contiguous().numpy(),
            np.float32(top), quantize, accumulate, out.numpy(),
        )
        return
    codes = partial_sums.round().clamp_(0, top) if quantize else partial_sums
    summed = codes.sum(dim=3)  # (planes, positions, groups, outs, columns)
    result = torch.einsum("prgos,ps->rgo", summed, digital_weights.to(summed.dtype))
    if accumulate:
        out += result
    else:
        out.copy_(result)

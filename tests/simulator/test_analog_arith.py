"""Crossbar arithmetic on hand-computed small matrices: bit-slicing, input slices, ADC, shift-and-add."""

import pytest
import torch
import torch.nn as nn

from rnc.simulator import AnalogError, AnalogRange, HardwareConfig, NonIdealities, analog_ranges, to_analog
from rnc.simulator.analog_arith import (
    adc_codes_,
    adc_shift_add_,
    adc_step_for_range,
    codes_exact_in_float32,
    input_planes,
    quantize_weights,
    round_significant,
    slice_weights,
)


def test_offset_slicing_by_hand():
    q = torch.tensor([[3.0, -2.0], [-7.0, 0.0]])
    sliced = slice_weights(q, weight_bits=4, cell_bits=2, encoding="offset")
    # u = q + 8 = [[11, 6], [1, 8]] = [[0b1011, 0b0110], [0b0001, 0b1000]]
    assert sliced.levels.tolist() == [[[3, 2], [2, 1]], [[1, 0], [0, 2]]]
    assert sliced.column_weights.tolist() == [1.0, 4.0]
    assert sliced.offset == 8
    rebuilt = torch.einsum("os...,s->o...", sliced.levels, sliced.column_weights) - sliced.offset
    assert torch.equal(rebuilt, q)


def test_differential_slicing_by_hand():
    q = torch.tensor([[5.0, -6.0]])
    sliced = slice_weights(q, weight_bits=4, cell_bits=2, encoding="differential")
    # columns: +s0, +s1, -s0, -s1; 5 = 0b0101, 6 = 0b0110
    assert sliced.levels.tolist() == [[[1, 0], [1, 0], [0, 2], [0, 1]]]
    assert sliced.column_weights.tolist() == [1.0, 4.0, -1.0, -4.0]
    assert sliced.offset == 0
    assert torch.equal(torch.einsum("os...,s->o...", sliced.levels, sliced.column_weights), q)


def test_uneven_top_slice_and_weight_quantization():
    w = torch.tensor([0.6, -1.0, 0.2])
    q, scale = quantize_weights(w, 5)  # q_max = 15
    assert scale == pytest.approx(1 / 15)
    assert q.tolist() == [9.0, -15.0, 3.0]
    sliced = slice_weights(q.view(3, 1), weight_bits=5, cell_bits=2, encoding="offset")  # 3 slices: 2+2+1 bits
    assert sliced.levels.shape == (3, 3, 1)
    assert sliced.levels[:, 2].max() <= 1  # the top slice holds one bit
    with pytest.raises(AnalogError, match="weight_bits"):
        quantize_weights(w, 1)


def test_input_planes_by_hand():
    x = torch.tensor([5.0, 3.0, -6.0])
    planes, weights = input_planes(x, magnitude_bits=3, dac_bits=2, signed=True)
    # +: [5, 3, 0] -> slices (lsb 2 bits, then 1 bit): [1, 3, 0], [1, 0, 0]; -: [0, 0, 6] -> [0, 0, 2], [0, 0, 1]
    assert planes.tolist() == [[1, 3, 0], [1, 0, 0], [0, 0, 2], [0, 0, 1]]
    assert weights == [1.0, 4.0, -1.0, -4.0]
    assert torch.equal((planes * torch.tensor(weights).view(-1, 1)).sum(0), x)
    planes, weights = input_planes(torch.tensor([7.0, 2.0]), magnitude_bits=3, dac_bits=3, signed=True)
    assert planes.tolist() == [[7.0, 2.0]] and weights == [1.0]  # no negative input: no negative phase


def test_adc_codes_and_step():
    ps = torch.tensor([0.0, 0.4, 2.6, 7.0, 9.0])
    assert adc_codes_(ps, 3).tolist() == [0, 0, 3, 7, 7]  # saturates at 2**3 - 1
    assert adc_step_for_range(255.0, 8) == 1.0
    assert adc_step_for_range(510.0, 8) == 2.0
    assert adc_step_for_range(10.0, 8) == 1.0  # never finer than one level
    assert adc_step_for_range(0.0, 8) == 1.0


def test_fused_adc_shift_add_matches_tensor_ops():
    gen = torch.Generator().manual_seed(0)
    ps = torch.rand(2, 5, 3, 2, 4, 3, generator=gen) * 20
    weights = torch.tensor([[1.0, 4.0, 16.0], [2.0, 8.0, 32.0]])
    fused = torch.zeros(5, 3, 4)
    adc_shift_add_(ps, weights, 4, True, fused)
    codes = ps.round().clamp(0, 15)
    expected = torch.einsum("prgtos,ps->rgo", codes, weights)
    assert torch.allclose(fused, expected)


def _linear(weight: list[float]) -> nn.Sequential:
    layer = nn.Linear(len(weight), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
    return nn.Sequential(layer)


HAND = dict(crossbar_rows=2, crossbar_cols=8, cell_bits=2, weight_bits=4, input_bits=2, dac_bits=1)


@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_linear_exact_by_hand(encoding):
    # W = [7, -3, 1] (scale 1 at 4 bits), x = [3, 1, 2] (scale 1 at 2 bits): 21 - 3 + 2 = 20
    hw = HardwareConfig(**HAND, adc_bits=8, signed_encoding=encoding)
    analog = to_analog(_linear([7.0, -3.0, 1.0]), hw, seed=0, calibration={"0": AnalogRange(0.0, 3.0, 255.0)})
    assert analog(torch.tensor([[3.0, 1.0, 2.0]])).item() == 20.0


def test_linear_adc_saturation_by_hand():
    # offset encoding: u = W + 8 = [15, 5, 9] -> slices s0 = [3, 1, 1], s1 = [3, 1, 2]; input bits b0 = [1, 1, 0],
    # b1 = [1, 0, 1]; tiles of 2 rows: {x0, x1}, {x2}. Partial sums (tile, bit, slice):
    # tile0: b0 -> 4, 4; b1 -> 3, 3.  tile1: b0 -> 0, 0; b1 -> 1, 2.
    # a 2-bit ADC (step 1) clips 4 to 3: b0: 3 + 4*3 = 15; b1: (3 + 4*3) + (1 + 4*2) = 24, times 2 = 48
    # sum = 63, minus the offset 8 * (3 + 1 + 2) = 48 -> 15 (exact arithmetic would give 20)
    hw = HardwareConfig(**HAND, adc_bits=2)
    analog = to_analog(_linear([7.0, -3.0, 1.0]), hw, seed=0, calibration={"0": AnalogRange(0.0, 3.0, 3.0)})
    assert analog(torch.tensor([[3.0, 1.0, 2.0]])).item() == 15.0
    full = to_analog(_linear([7.0, -3.0, 1.0]), hw, seed=0, calibration={"0": AnalogRange(0.0, 3.0)},
                     adc_range="full")
    # full scale = 2 rows x G_on 3 x input slice 1 = 6 over 3 steps: step 2; codes round(ps / 2), half to even:
    # tile0 b0: 2, 2; b1: 2, 2; tile1 b1: 0, 1 -> 2*(2 + 4*2) + 2*2*(2 + 4*2) + 2*2*(0 + 4*1) = 20 + 40 + 16 = 76
    # 76 - 48 = 28
    assert full(torch.tensor([[3.0, 1.0, 2.0]])).item() == 28.0


def test_fixed_ranges_errors_and_round_trip():
    model = _linear([7.0, -3.0, 1.0])
    hw = HardwareConfig(**HAND, adc_bits=4)
    with pytest.raises(AnalogError, match="missing"):
        to_analog(model, hw, seed=0, calibration={"x": AnalogRange(0.0, 3.0, 3.0)})
    with pytest.raises(AnalogError, match="adc_max"):
        to_analog(model, hw, seed=0, calibration={"0": AnalogRange(0.0, 3.0)})
    data = [torch.rand(8, 3) * 3]
    calibrated = to_analog(model, hw, seed=0, calibration=data)
    fixed = to_analog(model, hw, seed=0, calibration=analog_ranges(calibrated))
    x = torch.rand(16, 3) * 3
    assert torch.equal(calibrated(x), fixed(x))


def test_adc_step_follows_the_level_lattice():
    # off the lattice: no floor; 10/255 = 0.62745.. * 2**-4 to 12 significant bits: 2570/4096 * 2**-4
    assert adc_step_for_range(10.0, 8, level_unit=None) == 2570 / 65536
    assert adc_step_for_range(10.0, 8, level_unit=0.25) == 0.25  # never finer than one (drifted) level
    assert adc_step_for_range(510.0, 8, level_unit=0.25) == 2.0
    assert adc_step_for_range(0.0, 8, level_unit=None) == 1.0


@pytest.mark.parametrize("dac_bits", [1, 8])
def test_compensated_drift_without_spread_costs_nothing(dac_bits):
    # one drift exponent for every cell scales all conductances by (1e4)**-0.1; the ADC step follows the drifted
    # level and the global compensation undoes the scale: the outputs are the undrifted chip's (before: the step
    # stayed floored at one undrifted level and rounded every partial sum, 6.9% error at 1-bit DACs)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 8)).eval()
    x = torch.rand(64, 128)
    base = dict(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=dac_bits, adc_bits=16)
    ref = to_analog(model, HardwareConfig(**base), seed=0, calibration=[x])(x)
    drift = NonIdealities(drift_nu=0.1, drift_time_s=1e4, drift_t0_s=1.0)
    drifted = to_analog(model, HardwareConfig(**base, nonideal=drift), seed=0, calibration=[x])
    assert drifted.get_submodule("0").level_unit == pytest.approx(1e4**-0.1)
    out = drifted(x)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    # a non-integer off-state conductance (3/9 of a level) is off the lattice: the step is not floored, so a
    # 16-bit ADC costs well under 0.1% (before: 2.4% at 1-bit DACs)
    off = to_analog(model, HardwareConfig(**base, nonideal=NonIdealities(on_off_ratio=10.0)), seed=0, calibration=[x])
    assert off.get_submodule("0").level_unit is None
    assert (off(x) - ref).abs().max() < 1e-3 * ref.abs().max()
    whole = to_analog(model, HardwareConfig(**base, nonideal=NonIdealities(on_off_ratio=4.0)), seed=0, adc_range="full")
    assert whole.get_submodule("0").level_unit == 1.0  # g_off = 3/3 = one whole level


def test_step_significant_bits_and_exact_float32_rounding():
    assert round_significant(6030 / 255, 12) == 23.6484375  # 23.647.. = 0.7389.. * 2**5 -> 3027/4096 * 2**5
    assert round_significant(2.0, 12) == 2.0
    # float32 rounds integer sums exactly: powers of two; odd mantissa with no positive exponent (no exact tie)
    assert codes_exact_in_float32(2.0, 8) and codes_exact_in_float32(0.25, 8)
    assert codes_exact_in_float32(3.0, 8) and codes_exact_in_float32(23.6484375, 8)  # 3027 / 2**7
    # 6 = 3 * 2: the sum 9 is exactly 1.5 steps, and float32's 9 * (1/6) need not be; 24 significant bits: too close
    assert not codes_exact_in_float32(6.0, 8)
    assert not codes_exact_in_float32(6030 / 255, 8)

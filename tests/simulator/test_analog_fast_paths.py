"""The fast paths of to_analog give the reference path's results: lossless columns skip the ADC, integer reads.

The reference is the same layer with ``fast_paths = False``: every (input slice, tile, column) partial sum is
computed in float and converted by the ADC. Where the ADC step is a power of two (fixed ranges below), the
reference's float partial sums are exact, so the two paths must agree to float rounding of the final
shift-and-add; with calibrated (arbitrary) steps the integer path may flip a code whose partial sum lies within
float rounding of half a step, so those cases are compared layer by layer on the lossless path only.
"""

import copy
import itertools
import math
import pickle
from fractions import Fraction

import pytest
import torch
import torch.nn as nn

from rnc.simulator import AnalogRange, HardwareConfig, NonIdealities, analog_ranges, to_analog
from rnc.simulator.analog import analog_layers
from rnc.simulator.analog_arith import adc_scatter_add_


class Convs(nn.Module):
    """A signed-input conv, a strided conv, a grouped reflect-padded conv, a large kernel and a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 12, 3, padding=1)
        self.c2 = nn.Conv2d(12, 16, 3, stride=2, padding=1, bias=False)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1, groups=2, padding_mode="reflect")
        self.c4 = nn.Conv2d(16, 8, 5, padding=2)  # 25 rows per channel: split on 16-row crossbars
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.relu(self.c4(torch.relu(self.c3(x)))).flatten(1))


def _both_paths(analog: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fast = analog(x)
    for layer in analog_layers(analog):
        layer.fast_paths = False
    slow = analog(x)
    for layer in analog_layers(analog):
        layer.fast_paths = True
    return fast, slow


def _plans(analog: nn.Module) -> list:
    return [layer._read_plan(float(layer.adc_step), torch.device("cpu")) for layer in analog_layers(analog)]


def _fixed(analog: nn.Module, adc_max: float) -> dict[str, AnalogRange]:
    """Each layer's calibrated input range with a fixed ADC full scale."""
    ranges = {}
    for layer in analog_layers(analog):
        peak = float(layer.input_max)
        ranges[layer.name] = AnalogRange(-peak if bool(layer.input_signed) else 0.0, peak, adc_max)
    return ranges


@pytest.mark.parametrize(("rows", "encoding"), [(16, "offset"), (64, "offset"), (64, "differential")])
def test_lossless_and_mixed_columns_equal_the_adc_path(rows, encoding):
    torch.manual_seed(0)
    model = Convs().eval()
    x = torch.randn(6, 3, 12, 12)
    # 1-bit DACs, 2-bit cells: a column's partial sum is at most 3 x its rows; a 6-bit ADC with step 1 (full
    # scale 63) converts the columns with sum(levels) <= 63 losslessly and clips the others
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=6, dac_bits=1, adc_bits=6, crossbar_rows=rows,
                        crossbar_cols=rows, signed_encoding=encoding)
    calibrated = to_analog(model, hw, seed=0, calibration=[x])
    analog = to_analog(model, hw, seed=0, calibration=_fixed(calibrated, 63.0))
    plans = _plans(analog)
    assert all(plan.lossless_weight is not None for plan in plans)
    if rows == 64:  # some columns of 64 rows exceed 63 levels: lossless and compact ADC reads mixed
        assert any(plan.output_index is not None and plan.reads_per_tile > 0 for plan in plans)
    else:  # 16 rows x 3 levels = 48 <= 63: every column lossless, no read through the ADC
        assert all(plan.reads_per_tile == 0 for plan in plans)
    fast, slow = _both_paths(analog, x)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6 * float(slow.abs().max()))


def test_calibrated_bit_serial_resnet_block_is_lossless_and_bit_equal():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1)).eval()
    x = torch.rand(8, 16, 10, 10)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=8)  # ISAAC's bit-serial
    analog = to_analog(model, hw, seed=0, calibration=[x])
    assert all(plan.reads_per_tile == 0 for plan in _plans(analog))  # 72 rows x 3 levels <= 255 at step 1
    fast, slow = _both_paths(analog, x)
    assert torch.allclose(fast, slow, rtol=1e-6, atol=1e-6 * float(slow.abs().max()))


@pytest.mark.parametrize(("dac_bits", "encoding"), [(8, "offset"), (4, "offset"), (4, "differential")])
def test_integer_reads_equal_float_reads_at_power_of_two_steps(dac_bits, encoding):
    torch.manual_seed(0)
    model = Convs().eval()
    x = torch.randn(6, 3, 12, 12)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=dac_bits, adc_bits=8, crossbar_rows=64,
                        crossbar_cols=64, signed_encoding=encoding)
    calibrated = to_analog(model, hw, seed=0, calibration=[x])
    analog = to_analog(model, hw, seed=0, calibration=_fixed(calibrated, 255.0 * 16))  # step 16: lossy
    plans = _plans(analog)
    assert all(plan.lossless_weight is None for plan in plans)
    assert all(plan.packed_weight is not None for plan in plans)  # oneDNN int8 reads on CPU
    fast, slow = _both_paths(analog, x)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6 * float(slow.abs().max()))


class Padded(nn.Module):
    """Paddings applied to the input before the crossbars: 'same' with an even kernel (asymmetric), a circular
    Conv1d, and a transposed conv (zero-inserted, pre-padded)."""

    def __init__(self) -> None:
        super().__init__()
        self.same = nn.Conv2d(3, 8, 4, padding="same", dilation=2)
        self.line = nn.Conv1d(8, 8, 3, padding=1, padding_mode="circular")
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.same(x))
        n, c, h, w = x.shape
        x = torch.relu(self.line(x.reshape(n, c, h * w))).reshape(n, c, h, w)
        return self.up(x)


def test_integer_reads_apply_after_explicit_padding():
    # string and non-zero-mode paddings are applied to the input first, so the convolution's own padding is
    # numeric and oneDNN's integer reads apply (i13b disabled them for padding='same')
    torch.manual_seed(0)
    model = Padded().eval()
    x = torch.randn(3, 3, 9, 10)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=4, adc_bits=8, crossbar_rows=64,
                        crossbar_cols=64)
    calibrated = to_analog(model, hw, seed=0, calibration=[x])
    analog = to_analog(model, hw, seed=0, calibration=_fixed(calibrated, 255.0 * 16))
    assert all(isinstance(layer._conv_padding()[0], int) for layer in analog_layers(analog))
    assert all(plan.packed_weight is not None for plan in _plans(analog))
    fast, slow = _both_paths(analog, x)
    assert fast.shape == model(x).shape
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-6 * float(slow.abs().max()))


def test_off_lattice_cells_keep_the_float_reads():
    torch.manual_seed(0)
    model = Convs().eval()
    x = torch.randn(4, 3, 12, 12)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=8,
                        nonideal=NonIdealities(conductance_sigma=0.05))
    analog = to_analog(model, hw, seed=0, calibration=[x])
    assert all(layer.level_unit is None for layer in analog_layers(analog))
    plans = _plans(analog)
    assert all(plan.lossless_weight is None and plan.packed_weight is None for plan in plans)
    fast, slow = _both_paths(analog, x)
    assert torch.equal(fast, slow)


def test_scatter_kernel_matches_tensor_ops_and_hand_sum():
    gen = torch.Generator().manual_seed(3)
    ps = torch.rand(2, 5, 1, 2, 3, generator=gen) * 12  # (planes, positions, groups, tiles, reads)
    weights = torch.tensor([[1.0, 4.0, 0.0], [2.0, 8.0, 0.0]])  # 2 slices and the padding column
    output_index = torch.tensor([[[0, 1, 0], [1, 1, 0]]])
    slice_index = torch.tensor([[[0, 1, 2], [0, 1, 2]]])  # the third read of each tile is padding
    kernel, fallback = torch.zeros(5, 1, 2), torch.zeros(5, 1, 2, dtype=torch.float64)
    adc_scatter_add_(ps, weights, output_index, slice_index, 3, kernel)  # Numba
    adc_scatter_add_(ps.double(), weights, output_index, slice_index, 3, fallback)  # tensor operations
    codes = ps.round().clamp(0, 7)
    by_hand = torch.zeros(5, 2)
    for p in range(2):
        by_hand[:, 0] += weights[p, 0] * codes[p, :, 0, 0, 0]
        by_hand[:, 1] += weights[p, 1] * codes[p, :, 0, 0, 1] + weights[p, 0] * codes[p, :, 0, 1, 0]
        by_hand[:, 1] += weights[p, 1] * codes[p, :, 0, 1, 1]
    assert torch.allclose(kernel[:, 0], by_hand)
    assert torch.allclose(fallback[:, 0].float(), by_hand)


def test_copies_and_pickles_after_integer_reads():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)).eval()
    x = torch.rand(2, 3, 8, 8)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=8, adc_bits=8)
    analog = to_analog(model, hw, seed=0, calibration=[x])
    y = analog(x)
    assert analog[0]._cached_plan.packed_weight is not None  # oneDNN's packed weights: no storage to pickle
    assert torch.equal(copy.deepcopy(analog)(x), y)
    assert torch.equal(pickle.loads(pickle.dumps(analog))(x), y)


def _round_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
        quotient += 1
    return quotient


# 2: ties at odd sums, exact in float32; 6030/255: a calibrated step (max 6030), many sums near half a step;
# 6 = 3 * 2: ties at odd multiples of 3, which float32 can misround (float64 kernel path); 23.6: arbitrary
# a 10-bit ADC: codes above 255, so never uint8
@pytest.mark.parametrize(("step", "adc_bits", "uint8_codes"),
                         [(2.0, 8, True), (6030.0 / 255, 8, True), (6.0, 8, False), (23.6, 8, True), (2.0, 10, False)])
def test_integer_reads_round_exactly(step, adc_bits, uint8_codes):
    # an independent exact computation: integer partial sums of each (tile, weight slice, input slice), each code
    # rounded half to even from the rational P / step (step as stored, float32), then shift-and-add
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 8)).eval()
    x = torch.rand(64, 96) * 3
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=4, adc_bits=adc_bits, crossbar_rows=64,
                        crossbar_cols=64)
    top = 2**adc_bits - 1
    analog = to_analog(model, hw, seed=0, calibration={"0": AnalogRange(0.0, 3.0, step * top)})
    layer = analog.get_submodule("0")
    plan = _plans(analog)[0]
    assert plan.packed_weight is not None and layer.tiling.tiles == 2  # rows 0-47 and 48-95
    assert plan.uint8_codes == uint8_codes
    stored = Fraction(float(layer.adc_step))
    x_q, x_scale, _, _ = layer._input_quantization(x)
    x_int = x_q.to(torch.int64)
    levels = layer.conductance.view(8, 4, 96).to(torch.int64)
    planes = [x_int % 16, x_int // 16]
    expected = torch.zeros(64, 8, dtype=torch.float64)
    for b, plane in enumerate(planes):
        for t in range(2):
            rows = slice(48 * t, 48 * (t + 1))
            sums = torch.einsum("nr,osr->nos", plane[:, rows], levels[:, :, rows])  # exact int64
            indices = itertools.product(range(64), range(8), range(4))
            for (n, o, s), total in zip(indices, sums.flatten().tolist(), strict=True):
                ratio = Fraction(total) / stored
                code = min(_round_half_even(ratio.numerator, ratio.denominator), top)
                expected[n, o] += float(code * stored) * 4**s * 16**b
    expected -= 128 * x_int.sum(dim=1, keepdim=True).double()
    expected = expected * x_scale * layer.weight_scale + layer.bias.double()
    out = analog(x).double()
    assert math.isclose(float(stored), float(layer.adc_step))
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))


def test_loading_another_chip_rebuilds_the_read_plan():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 4)).eval()
    x = torch.rand(8, 32)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=8, adc_bits=8,
                        nonideal=NonIdealities(stuck_at_on_rate=0.2))
    first = to_analog(model, hw, seed=0, calibration=[x])
    second = to_analog(model, hw, seed=1, calibration=analog_ranges(first))  # same ranges, another chip
    expected = second(x)
    first(x)  # caches the first chip's read plan
    first.load_state_dict(second.state_dict())
    assert torch.equal(first(x), expected)

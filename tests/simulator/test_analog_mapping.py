"""to_analog on real layer shapes: ideal settings match float, tiling, seeds, non-idealities, bad input."""

import pytest
import torch
import torch.nn as nn

from rnc.simulator import AnalogError, HardwareConfig, NonIdealities, to_analog
from rnc.simulator.analog import analog_layers
from rnc.simulator.models import resnet20

FINE = dict(cell_bits=2, weight_bits=12, input_bits=12, dac_bits=4, adc_bits=16)


class Mixed(nn.Module):
    """Grouped, depthwise, strided, dilated, reflect-padded, large-kernel convs and a Linear on 3-D input."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 5, padding=2)  # 25 rows per channel: split when crossbars have 16 rows
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, padding_mode="reflect")
        self.c3 = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=8, bias=False)
        self.c4 = nn.Conv2d(8, 20, 1)
        self.fc = nn.Linear(20, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c4(torch.relu(self.c3(torch.relu(self.c2(self.c1(x))))))
        return self.fc(x.flatten(2).transpose(1, 2))  # (N, positions, 20) -> (N, positions, 5)


@pytest.mark.parametrize("rows", [16, 128])
@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_ideal_settings_reproduce_float(rows, encoding):
    torch.manual_seed(0)
    model = Mixed().eval()
    x = torch.randn(6, 3, 12, 12)
    hw = HardwareConfig(**FINE, crossbar_rows=rows, crossbar_cols=rows, signed_encoding=encoding)
    analog = to_analog(model, hw, seed=0, calibration=[x])
    with torch.no_grad():
        ref = model(x)
    out = analog(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max()


@pytest.mark.slow
def test_ideal_resnet20_and_per_layer_crossbar_sizes():
    torch.manual_seed(0)
    model = resnet20().eval()
    x = torch.randn(4, 3, 32, 32)
    sizes = {"conv1": (32, 32), "layer3.2.conv2": (512, 512), "fc": (16, 64)}
    hw = HardwareConfig(**FINE, layer_crossbar_sizes=sizes)
    analog = to_analog(model, hw, seed=0, calibration=[x])
    layers = {layer.name: layer for layer in analog_layers(analog)}
    assert len(layers) == 22
    assert (layers["conv1"].rows, layers["fc"].rows, layers["layer1.0.conv1"].rows) == (32, 16, 128)
    assert layers["layer3.2.conv2"].tiling.tiles == 2  # 64 channels, 56 per 512-row crossbar
    assert layers["layer3.0.conv2"].tiling.tiles == 5  # 64 channels, 14 per 128-row crossbar
    with torch.no_grad():
        ref = model(x)
    assert (analog(x) - ref).abs().max() <= 0.01 * ref.abs().max()
    assert not any(p.requires_grad for p in analog.parameters())
    assert isinstance(model.conv1, nn.Conv2d)  # the original is untouched


def test_same_seed_same_chip_and_read_noise_sequence():
    torch.manual_seed(0)
    model = Mixed().eval()
    x = torch.randn(4, 3, 12, 12)
    noisy = NonIdealities(conductance_sigma=0.1, stuck_at_on_rate=0.01, stuck_at_off_rate=0.01, read_noise_sigma=0.05)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=2, adc_bits=6, nonideal=noisy)
    first = to_analog(model, hw, seed=7, calibration=[x])
    second = to_analog(model, hw, seed=7, calibration=[x])
    other = to_analog(model, hw, seed=8, calibration=[x])
    a1, a2 = first(x), first(x)
    assert not torch.equal(a1, a2)  # read noise is redrawn every pass ...
    assert torch.equal(a1, second(x)) and torch.equal(a2, second(x))  # ... in the same sequence for the seed
    assert torch.equal(first.c1.conductance, second.c1.conductance)
    assert not torch.equal(first.c1.conductance, other.c1.conductance)


def test_cell_non_idealities_and_drift():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32)).eval()
    base = dict(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=8, adc_bits=8)
    ideal = to_analog(model, HardwareConfig(**base), seed=0, adc_range="full").get_submodule("0")
    levels = ideal.conductance
    assert levels.min() == 0 and levels.max() == 3 and torch.equal(levels, levels.round())

    def cells(**ni: float) -> torch.Tensor:
        hw = HardwareConfig(**base, nonideal=NonIdealities(**ni))
        return to_analog(model, hw, seed=0, adc_range="full").get_submodule("0").conductance

    stuck_on = cells(stuck_at_on_rate=0.2)
    assert 0.15 < (stuck_on != levels).float().mean() / (levels != 3).float().mean() < 0.25
    assert torch.all(stuck_on[stuck_on != levels] == 3)
    stuck_off = cells(stuck_at_off_rate=0.2)
    assert torch.all(stuck_off[stuck_off != levels] == 0)
    varied = cells(conductance_sigma=0.1)
    relative = (varied[levels > 0] / levels[levels > 0] - 1).std()
    assert 0.08 < relative < 0.12
    off = cells(on_off_ratio=10.0)
    assert torch.allclose(off - levels, torch.full_like(levels, 3 / 9))
    # drift with one exponent is compensated globally; a spread of exponents is not
    x = torch.rand(16, 64)
    drift = dict(drift_nu=0.1, drift_time_s=1e4, drift_t0_s=1.0)
    same = to_analog(model, HardwareConfig(**base, nonideal=NonIdealities(**drift)), seed=0, calibration=[x])
    ref = to_analog(model, HardwareConfig(**base), seed=0, calibration=[x])
    assert torch.allclose(same(x), ref(x), atol=0.02 * ref(x).abs().max())
    spread = NonIdealities(**drift, drift_nu_sigma=0.05)
    drifted = to_analog(model, HardwareConfig(**base, nonideal=spread), seed=0, calibration=[x])
    assert (drifted(x) - ref(x)).abs().mean() > 2 * (same(x) - ref(x)).abs().mean()


def test_ir_drop_grows_with_crossbar_size():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 64)).eval()
    x = torch.rand(32, 512)
    errors = []
    for size in (32, 128, 512):
        hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=8, adc_bits=16, crossbar_rows=size,
                            crossbar_cols=size, nonideal=NonIdealities(wire_resistance_ratio=2e-4))
        ref = to_analog(model, hw.with_updates(nonideal=NonIdealities()), seed=0, calibration=[x])
        errors.append(float((to_analog(model, hw, seed=0, calibration=[x])(x) - ref(x)).abs().mean()))
    assert errors[0] < errors[1] < errors[2]


def test_bad_input_errors():
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=8)
    with pytest.raises(AnalogError, match=r"'0' \(Conv3d\): 3-D convolutions"):
        to_analog(nn.Sequential(nn.Conv3d(2, 2, 3), nn.Flatten(), nn.Linear(2, 2)), hw, seed=0, adc_range="full")
    with pytest.raises(AnalogError, match="calibration is None"):
        to_analog(nn.Linear(4, 2), hw, seed=0)
    with pytest.raises(AnalogError, match="no batch"):
        to_analog(nn.Linear(4, 2), hw, seed=0, calibration=[])
    with pytest.raises(AnalogError, match="expected a tensor"):
        to_analog(nn.Linear(4, 2), hw, seed=0, calibration=["not a tensor"])
    with pytest.raises(AnalogError, match="no Conv2d or Linear"):
        to_analog(nn.Sequential(nn.ReLU()), hw, seed=0, adc_range="full")
    with pytest.raises(AnalogError, match="adc_range"):
        to_analog(nn.Linear(4, 2), hw, seed=0, adc_range="auto")  # type: ignore[arg-type]
    with pytest.raises(AnalogError, match="not initialized"):
        to_analog(nn.Sequential(nn.LazyLinear(2)), hw, seed=0, adc_range="full")
    analog = to_analog(nn.Linear(4, 2), hw, seed=0, adc_range="full")
    with pytest.raises(AnalogError, match="expected 4 input features"):
        analog(torch.zeros(3, 5))


def test_without_calibration_inputs_scale_per_sample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 4)).eval()
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=12)
    analog = to_analog(model, hw, seed=0, adc_range="full")
    x = torch.randn(5, 16)
    full = analog(x)
    assert torch.equal(full[2:3], analog(x[2:3]))  # one sample's output does not depend on the batch
    assert torch.allclose(full, model(x), atol=0.02 * model(x).abs().max().item())


@pytest.mark.parametrize("chunk_bytes", [4096, 200_000])
def test_chunked_reads_equal_one_read(monkeypatch, chunk_bytes):
    import rnc.simulator.analog_layers as layers_module

    torch.manual_seed(0)
    model = Mixed().eval()
    x = torch.randn(5, 3, 12, 12)
    hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=2, adc_bits=6, crossbar_rows=32)
    analog = to_analog(model, hw, seed=0, calibration=[x])
    whole = analog(x)
    monkeypatch.setattr(layers_module, "PARTIAL_SUM_CHUNK_BYTES", chunk_bytes)
    assert torch.allclose(analog(x), whole, rtol=1e-5, atol=1e-5)


def test_tensor_fallback_of_fused_adc_matches_kernel():
    from rnc.simulator.analog_arith import adc_shift_add_

    gen = torch.Generator().manual_seed(1)
    ps = torch.rand(3, 7, 2, 3, 5, 4, generator=gen) * 40
    weights = torch.randn(3, 4, generator=gen)
    fused, fallback = torch.zeros(7, 2, 5), torch.zeros(7, 2, 5, dtype=torch.float64)
    adc_shift_add_(ps, weights, 5, True, fused)  # Numba kernel (float32 on CPU)
    adc_shift_add_(ps.double(), weights, 5, True, fallback)  # tensor operations (the GPU path)
    assert torch.allclose(fused.double(), fallback, atol=1e-4)

"""Any vision model onto the crossbars: what goes where, hand-counted crossbars, to_analog's module types."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812
import torchvision

from rnc.simulator import AnalogError, HardwareConfig, WorkloadError, compile_workload, to_analog, trace_workload
from rnc.simulator import kernels as K  # noqa: N812
from rnc.simulator.analog import analog_layers
from rnc.simulator.digital import digital_unit
from rnc.simulator.hardware import HardwareConfigError
from rnc.simulator.zoo import classification_models, torchvision_workload

FINE = dict(cell_bits=2, weight_bits=12, input_bits=12, dac_bits=4, adc_bits=16)
RNC = HardwareConfig.preset("rnc")  # 128x128 crossbars, one 8-bit weight per cell: ceil(r/128) * ceil(c/128)


def crossbars(name: str) -> int:
    return compile_workload(torchvision_workload(name), RNC, "isaac").crossbars_used


# -- crossbar counts by hand (isaac strategy: every layer and group on its own crossbars) -----------------------

def test_alexnet_crossbars_by_hand():
    # conv1 3*11*11=363 rows -> 3 x 1 (64 cols); conv2 64*25=1600 -> 13 x 2 (192) = 26; conv3 192*9=1728 -> 14 x 3
    # (384) = 42; conv4 384*9=3456 -> 27 x 2 (256) = 54; conv5 256*9=2304 -> 18 x 2 = 36; fc 9216 -> 72 x 32
    # (4096) = 2304; fc 4096 -> 32 x 32 = 1024; fc 4096 -> 32 x 8 (1000) = 256
    assert crossbars("alexnet") == 3 + 26 + 42 + 54 + 36 + 2304 + 1024 + 256


def test_vgg16_crossbars_by_hand():
    # 3->64: 27 rows, 1; 64->64: 576 -> 5; 64->128: 5; 128->128: 1152 -> 9; 128->256: 9 x 2 = 18;
    # 256->256 (x2): 2304 -> 18 x 2 = 36 each; 256->512: 18 x 4 = 72; 512->512 (x2 + 3): 4608 -> 36 x 4 = 144 each;
    # fc 25088 -> 196 x 32 = 6272; 4096 -> 32 x 32 = 1024; 4096 -> 32 x 8 = 256
    convs = 1 + 5 + 5 + 9 + 18 + 2 * 36 + 72 + 5 * 144
    assert crossbars("vgg16") == convs + 6272 + 1024 + 256


def test_resnet18_crossbars_by_hand():
    # conv1 147 rows -> 2; layer1 4 x (576 -> 5); layer2: 64->128 s2 5, three 128->128 9 each, 1x1 shortcut 1;
    # layer3: 128->256 9 x 2 = 18, three 256->256 18 x 2 = 36, shortcut 1 x 2 = 2; layer4: 256->512 18 x 4 = 72,
    # three 512->512 36 x 4 = 144, shortcut 2 x 4 = 8; fc 512 -> 4 x 8 = 32
    assert crossbars("resnet18") == 2 + 4 * 5 + (5 + 27 + 1) + (18 + 108 + 2) + (72 + 432 + 8) + 32


def test_convnext_tiny_crossbars_by_hand():
    # stem 3*4*4=48 rows x 96 -> 1. A block of width C: 7x7 depthwise (C groups of 49 rows x 1 column: C crossbars),
    # Linear C->4C and 4C->C: 2 * ceil(C/128) * ceil(4C/128). Downsamples 2x2 conv C->2C: ceil(4C/128) * ceil(2C/128).
    def block(c):
        return c + 2 * math.ceil(c / 128) * math.ceil(4 * c / 128)

    stages = 3 * block(96) + 3 * block(192) + 9 * block(384) + 3 * block(768)
    downsamples = 3 * 2 + 6 * 3 + 12 * 6  # 384 rows x 192, 768 x 384, 1536 x 768
    assert stages == 306 + 648 + 4104 + 3168
    assert crossbars("convnext_tiny") == 1 + stages + downsamples + 6 * 8  # head 768 -> 1000


def test_vit_b_16_crossbars_and_digital_ops_by_hand():
    # patch conv 3*16*16=768 rows x 768 -> 6 x 6 = 36; per block in_proj 768 -> 2304: 6 x 18 = 108, out_proj 6 x 6 = 36,
    # MLP 768 -> 3072 and back: 2 x 6 x 24 = 288; 12 blocks; head 768 -> 1000: 6 x 8 = 48
    assert crossbars("vit_b_16") == 36 + 12 * (108 + 36 + 288) + 48
    work = torchvision_workload("vit_b_16")
    tokens, dim, heads = 197, 768, 12
    attention = 2 * heads * tokens * tokens * (dim // heads) + 5 * heads * tokens * tokens  # QK^T, AV, softmax
    norms = 2 * 7 * tokens * dim
    total = 12 * (attention + norms) + 7 * tokens * dim + tokens * dim + dim  # final LN, position add, class token
    assert work.digital_ops == total == 769_898_832
    kinds = {op.kind for op in work.digital}
    assert kinds == {"matmul", "softmax", "norm", "add_parameter", "concat_parameter"}
    names = {lay.name for lay in work.layers}
    assert {"encoder.layers.encoder_layer_0.self_attention.in_proj",
            "encoder.layers.encoder_layer_0.self_attention.out_proj", "conv_proj", "heads.head"} <= names


def test_digital_unit_costs_in_the_plan():
    # the rnc preset inherits ISAAC's table: its digital unit is ISAAC's sigmoid unit (Table 6), 2 per tile,
    # 0.26 pJ per op (0.26 mW at one op per 1 ns cycle), 0.0003 mm^2 each
    unit = digital_unit(RNC)
    assert (unit.level, unit.instances, unit.ops_per_ns) == ("tile", 2, 1.0)
    assert (unit.energy_pj_per_op, unit.area_mm2) == pytest.approx((0.26, 0.0003))
    result = compile_workload(torchvision_workload("vit_b_16"), RNC, "isaac")
    summary = result.summary()
    # 5,268 crossbars (test_vit_b_16_...), 8 per IMA, 12 IMAs per tile: ceil(5268 / 8) = 659 IMAs, 55 tiles,
    # 110 digital units at 1 op/ns each working on the 769,898,832 ops
    assert result.crossbars_used == 5268
    assert summary["digital_latency_ns"] == pytest.approx(769_898_832 / 110)
    assert summary["energy_by_component_pj"]["digital"] == pytest.approx(769_898_832 * 0.26)
    assert summary["digital_energy_pj"] == pytest.approx(769_898_832 * 0.26)
    assert summary["digital_area_mm2"] == pytest.approx(110 * 0.0003)  # already inside area_mm2, not added
    assert result.area_mm2 == pytest.approx(float(result._totals[K.T_AREA_MM2]))
    assert result.latency_ns == pytest.approx(float(result._totals[K.T_LATENCY_NS]) + 769_898_832 / 110)
    assert 1e9 / result.throughput_ips >= 769_898_832 / 110  # the units' busy time bounds the period
    assert len(result.to_dict()["digital"]["operations"]) == len(result.workload.digital)
    cnn = compile_workload(torchvision_workload("resnet18"), RNC, "rnc").summary()
    assert (cnn["digital_ops"], cnn["digital_energy_pj"], cnn["digital_area_mm2"]) == (0, 0.0, 0.0)
    assert cnn["energy_by_component_pj"]["digital"] == 0.0


def test_a_table_without_a_digital_unit_is_an_error_not_a_default():
    comps = {k: v for k, v in RNC.components.items() if k != "digital_unit"}
    bare = RNC.model_copy(update={"components": comps})  # model_copy skips validation
    with pytest.raises(HardwareConfigError, match="digital_unit: missing"):
        digital_unit(bare)


def test_convnext_layer_scale_and_conv1d_transposed_in_the_workload():
    work = torchvision_workload("convnext_tiny")
    scales = [op for op in work.digital if op.kind == "scale"]
    assert len(scales) == 18 and scales[0].ops == 96 * 56 * 56  # one multiply per element of each block's output
    model = nn.Sequential(nn.Conv1d(4, 8, 5, stride=2, padding=2), nn.ReLU(), nn.Unflatten(1, (8, 1)),
                          nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1, groups=2))
    c1, ct = trace_workload(model, (4, 20)).layers
    assert (c1.kernel_h, c1.kernel_w, c1.rows, c1.out_w, c1.positions) == (1, 5, 20, 10, 10)
    # transposed: the direct conv over the zero-inserted input, (Cin/g)*kh*kw rows, one position per output pixel
    assert ct.transposed and (ct.rows, ct.cols_per_group, ct.out_h, ct.out_w, ct.preds) == (64, 3, 2, 20, (0,))


# -- sharing, fallback and refusal ------------------------------------------------------------------------------

class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(200, 200)
        self.tied = nn.Linear(200, 200)
        self.tied.weight = self.fc.weight  # one weight, two modules

    def forward(self, x):
        return self.tied(torch.relu(self.fc(torch.relu(self.fc(x)))))


def test_shared_weights_stored_once_or_duplicated():
    serial = trace_workload(Twice(), (200,))
    assert len(serial) == 1 and serial.layers[0].uses == 3 and serial.layers[0].positions == 3
    dup = trace_workload(Twice(), (200,), shared="duplicate")
    assert [lay.name for lay in dup.layers] == ["fc", "fc@2", "fc@3"]
    assert [lay.preds for lay in dup.layers] == [(), (0,), (1,)]
    # 200x200 weights on 128x128 crossbars: 2 x 2 = 4 crossbars per copy
    assert compile_workload(serial, RNC, "isaac").crossbars_used == 4
    assert compile_workload(dup, RNC, "isaac").crossbars_used == 12


def test_module_called_twice_is_one_analog_layer():
    torch.manual_seed(0)
    model = Twice().eval()
    x = torch.randn(4, 200)
    analog = to_analog(model, HardwareConfig(**FINE), seed=0, calibration=[x])
    assert analog.fc is analog.get_submodule("fc") and len(list(analog_layers(analog))) == 2  # fc, tied
    with torch.no_grad():
        ref = model(x)
    assert (analog(x) - ref).abs().max() <= 0.01 * ref.abs().max()


class Branchy(nn.Module):
    """Data-dependent control flow (torch.fx cannot trace it) and a weight used functionally by its parent."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.lin = nn.Linear(8, 4)
        self.gain = nn.Parameter(torch.ones(8))

    def forward(self, x):
        y = self.conv(x)
        if float(y.mean()) > -1e9:  # needs real values: meta fails, the zeros fallback runs it
            y = y * self.gain.view(1, -1, 1, 1)
        return F.linear(y.mean((2, 3)), self.lin.weight, self.lin.bias)


def test_untraceable_model_mapped_completely_and_functional_weight_through_crossbars():
    with pytest.raises(Exception):  # noqa: B017 - torch.fx really cannot trace it
        torch.fx.symbolic_trace(Branchy())
    work = trace_workload(Branchy(), (3, 8, 8))
    assert [lay.name for lay in work.layers] == ["conv", "lin"] and work.layers[1].preds == (0,)
    assert [op.kind for op in work.digital] == ["scale"]
    torch.manual_seed(0)
    model = Branchy().eval()
    x = torch.randn(4, 3, 8, 8)
    analog = to_analog(model, HardwareConfig(**FINE), seed=0, calibration=[x])
    with torch.no_grad():
        ref = model(x)
    assert (analog(x) - ref).abs().max() <= 0.01 * ref.abs().max()  # F.linear(y, lin.weight) ran on crossbars

    class Transposed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return x @ self.lin.weight.t()

    with pytest.raises(AnalogError, match=r"layer 'lin': its weight is used by t outside the layer"):
        to_analog(Transposed(), HardwareConfig(**FINE), seed=0, adc_range="full")(torch.randn(2, 4))


def test_refusals_name_module_class_and_reason():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.floor = nn.Parameter(torch.zeros(4))

        def forward(self, x):
            return torch.maximum(x, self.floor)

    with pytest.raises(WorkloadError, match=r"module '1' \(Odd\), parameter '1.floor'.*maximum.*not mapped in part"):
        trace_workload(nn.Sequential(nn.Linear(4, 4), Odd()), (4,), name="net")
    class Buffered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.ones(4, 4))

        def forward(self, x):
            return F.linear(x, self.w)

    with pytest.raises(WorkloadError, match=r"module '0' \(Buffered\): linear with a weight that is not a parameter"):
        trace_workload(nn.Sequential(Buffered(), nn.Linear(4, 2)), (4,))
    with pytest.raises(WorkloadError, match=r"module '1' \(Embedding\): an embedding is a table lookup"):
        trace_workload(nn.Sequential(nn.Flatten(), nn.Embedding(10, 4)), (3,))


# -- to_analog: padding, module types, attention ----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", ["same", 3, (1, 2)])
def test_every_padding_mode_and_same(mode, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 7, padding=padding, padding_mode=mode).eval()  # the failing case among them
    x = torch.randn(3, 2, 12, 13)
    analog = to_analog(conv, HardwareConfig(**FINE), seed=0, calibration=[x])
    with torch.no_grad():
        ref = conv(x)
    out = analog(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max()


@pytest.mark.parametrize("module, shape", [
    (nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 21)),
    (nn.Conv1d(3, 5, 4, padding="same", padding_mode="reflect"), (2, 3, 20)),
    (nn.Conv2d(2, 4, 4, padding="same", dilation=2), (2, 2, 12, 13)),
    (nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2), (2, 4, 7, 8)),
    (nn.ConvTranspose2d(4, 6, 3, stride=3, padding=2, output_padding=1, dilation=2), (2, 4, 5, 6)),
    (nn.ConvTranspose1d(4, 6, 5, stride=2, padding=1), (2, 4, 9)),
])
def test_conv1d_and_transposed_convs_through_crossbars(module, shape):
    torch.manual_seed(0)
    module.eval()
    x = torch.randn(*shape)
    analog = to_analog(module, HardwareConfig(**FINE, crossbar_rows=16), seed=0, calibration=[x])
    with torch.no_grad():
        ref = module(x)
    out = analog(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max()


class CrossAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, kdim=8, vdim=12, add_bias_kv=True, add_zero_attn=True)
        self.register_buffer("memory_k", torch.randn(7, 2, 8, generator=torch.Generator().manual_seed(1)))
        self.register_buffer("memory_v", torch.randn(7, 2, 12, generator=torch.Generator().manual_seed(2)))

    def forward(self, q):
        padding = torch.tensor([[False] * 6 + [True]] * 2)
        mask = torch.ones(q.shape[0], 7, dtype=torch.bool).triu(3)
        return self.attn(q, self.memory_k, self.memory_v, key_padding_mask=padding, attn_mask=mask,
                         average_attn_weights=False)


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x)


@pytest.mark.parametrize("model, shape", [(SelfAttention, (2, 5, 16)), (CrossAttention, (4, 2, 16))])
def test_attention_projections_on_crossbars_attention_exact(model, shape):
    torch.manual_seed(0)
    net = model().eval()
    x = torch.randn(*shape)
    analog = to_analog(net, HardwareConfig(**FINE), seed=0, calibration=[x])
    names = sorted(layer.name for layer in analog_layers(analog))
    separate = ["attn.k_proj", "attn.out_proj", "attn.q_proj", "attn.v_proj"]  # kdim, vdim != embed_dim
    assert names == (["attn.in_proj", "attn.out_proj"] if model is SelfAttention else separate)
    with torch.no_grad():
        ref_out, ref_w = net(x)
    out, weights = analog(x)
    assert (out - ref_out).abs().max() <= 0.01 * ref_out.abs().max()
    assert weights.shape == ref_w.shape and (weights - ref_w).abs().max() <= 0.01


# -- whole models -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_every_torchvision_classifier_compiles_with_both_strategies():
    names = classification_models()
    assert len(names) >= 80
    for name in names:
        work = torchvision_workload(name)
        for strategy in ("isaac", "rnc"):
            result = compile_workload(work, RNC, strategy, restarts=0)  # fixed packing orders only: CPU time
            assert result.feasible and result.crossbars_used > 0 and result.latency_ns > 0, (name, strategy)
        attention = name.startswith(("vit", "swin", "maxvit"))
        assert (work.digital_ops > 0) == (attention or name.startswith("convnext")), name


def _relative_error(model, x, hw):
    analog = to_analog(model, hw, seed=0, calibration=[x])
    with torch.no_grad():
        ref = model(x)
    out = analog(x)
    assert torch.equal(out.argmax(1), ref.argmax(1))
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnext_tiny", "vit_b_16", "swin_t"])
def test_convnext_vit_swin_through_to_analog_equal_float_within_quantization(name):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if name == "vit_b_16":
        model = torchvision.models.vit_b_16(image_size=32).eval()  # ViT-B/16 itself, 2x2 patches + class token
        nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision zero-initializes the head
    elif name == "swin_t":  # its attention calls F.linear with its modules' weights: routed through the crossbars
        model = torchvision.models.swin_t().eval()
        nn.init.normal_(model.head.weight, std=0.02)
    else:
        model = torchvision.models.convnext_tiny().eval()
        for block in model.modules():
            if hasattr(block, "layer_scale"):  # 1e-6 at init would hide the blocks; make them count
                block.layer_scale.data.uniform_(0.2, 0.6)
    x = torch.randn(2, 3, 64 if name == "swin_t" else 32, 64 if name == "swin_t" else 32)
    # ideal: 8-bit cells hold whole 8-bit weights; 16-bit ADC resolves 128 rows x 255 levels x 1-bit inputs exactly
    ideal = HardwareConfig(cell_bits=8, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=16)
    error_8 = _relative_error(model, x, ideal)
    error_6 = _relative_error(model, x, ideal.with_updates(cell_bits=6, weight_bits=6, input_bits=6))
    # the only error left is quantization: small at 8 bits and shrinking with the step (4x per 2 bits, roughly)
    assert error_8 < 0.06
    assert error_8 < 0.5 * error_6


def test_activation_products_count_their_multiply_adds():
    class Attend(nn.Module):  # MaxViT-style einsum attention and a @ product, 2 heads of 4 over 6 tokens
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(8, 24)

        def forward(self, x):
            q, k, v = self.qkv(x).view(1, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
            scores = torch.einsum("b h i d, b h j d -> b h i j", q, k).softmax(-1)
            return scores @ v

    class Fused(Attend):
        def forward(self, x):
            q, k, v = self.qkv(x).view(1, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(query=q, key=k, value=v)

    # QK^T and AV: 2 heads x 6 x 6 scores x 4 multiply-adds each; softmax 5 ops x 72 scores
    for model in (Attend(), Fused()):
        work = trace_workload(model, (6, 8))
        assert [(op.kind, op.ops) for op in work.digital] == [("matmul", 288), ("softmax", 360), ("matmul", 288)]

"""compile_workload on the issue's reference networks: crossbar counts, utilization, strategies, feasibility."""

import math

import pytest
import torchvision

from rnc.simulator import CompileError, HardwareConfig, compile_many, compile_workload, trace_workload
from rnc.simulator.models import vgg8


@pytest.fixture(scope="module")
def vgg():
    return trace_workload(vgg8(), (3, 32, 32))


@pytest.fixture(scope="module")
def squeezenet():
    return trace_workload(torchvision.models.squeezenet1_1(num_classes=10), (3, 64, 64))


@pytest.fixture(scope="module")
def mobilenet():
    return trace_workload(torchvision.models.mobilenet_v3_small(num_classes=10), (3, 64, 64))


@pytest.mark.parametrize(("cell_bits", "crossbars"), [(1, 6344), (2, 3176), (4, 1592)])
def test_vgg8_isaac_crossbars_match_neurosim(vgg, cell_bits, crossbars):
    hw = HardwareConfig.preset("isaac").with_updates(weight_bits=8, cell_bits=cell_bits)
    result = compile_workload(vgg, hw, strategy="isaac")
    assert result.feasible
    assert result.crossbars_used == result.min_crossbars == crossbars
    assert sum(row["cells"] for row in result.layers) == vgg.total_weights * math.ceil(8 / cell_bits)


def test_squeezenet_isaac_baseline(squeezenet):
    result = compile_workload(squeezenet, HardwareConfig.preset("rnc"), strategy="isaac")
    summary = result.summary()
    assert summary["crossbars_used"] == 80
    assert summary["used_cells"] == 724_672
    assert round(summary["utilization"], 3) == 0.553
    # isaac shares nothing: every crossbar holds boxes of one layer only
    owners = {}
    for p in result.placements:
        assert owners.setdefault(p.crossbar, p.layer) == p.layer


def test_rnc_packing_beats_isaac_and_reaches_90_percent(squeezenet, mobilenet):
    hw = HardwareConfig.preset("rnc")
    for workload in (squeezenet, mobilenet):
        packed = compile_workload(workload, hw, strategy="rnc", duplicate=False)
        isaac = compile_workload(workload, hw, strategy="isaac")
        assert packed.crossbars_used < isaac.crossbars_used
        assert packed.utilization >= 0.90
        assert packed.energy_pj == pytest.approx(isaac.energy_pj - isaac.energy_by_component_pj["leakage"]
                                                 + packed.energy_by_component_pj["leakage"], rel=1e-9)


def test_rnc_duplication_speeds_up_within_budget(squeezenet):
    hw = HardwareConfig.preset("rnc")
    isaac = compile_workload(squeezenet, hw, strategy="isaac")
    previous = None
    for budget in (48, 96, 128, 256):
        result = compile_workload(squeezenet, hw.with_updates(crossbars=budget), strategy="rnc")
        assert result.feasible and result.crossbars_used <= budget
        assert result.utilization <= 1.0
        if previous is not None:
            assert result.latency_ns <= previous.latency_ns * 1.05
        previous = result
    assert isaac.latency_ns / previous.latency_ns >= 6
    assert previous.throughput_ips > isaac.throughput_ips


def test_squeezenet_256x256_packs_where_the_public_code_fails(squeezenet):
    hw = HardwareConfig.preset("rnc").with_updates(crossbar_rows=256, crossbar_cols=256)
    base = compile_workload(squeezenet, hw, strategy="rnc", duplicate=False)
    assert base.min_crossbars <= 16
    for budget in range(16, 41):
        result = compile_workload(squeezenet, hw, strategy="rnc", crossbars=budget)
        assert result.feasible, budget
        assert result.crossbars_used <= budget
        assert result.min_crossbars == base.min_crossbars


def test_infeasible_budget_reports_minimum_without_raising(mobilenet):
    hw = HardwareConfig.preset("rnc").with_updates(crossbars=10)
    for strategy in ("rnc", "isaac"):
        result = compile_workload(mobilenet, hw, strategy=strategy)
        assert not result.feasible
        assert result.min_crossbars > 10
        data = result.to_dict()
        assert data["feasible"] is False and data["min_crossbars"] == result.min_crossbars


def test_depthwise_rnc_mapping_and_split(mobilenet):
    hw = HardwareConfig.preset("rnc")
    base = compile_workload(mobilenet, hw, strategy="rnc", duplicate=False, pack=False)
    split = compile_workload(mobilenet, hw, strategy="rnc", duplicate=False, pack=False, depthwise_split=4)
    isaac = compile_workload(mobilenet, hw, strategy="isaac")
    dw = [i for i, lay in enumerate(mobilenet.layers) if lay.is_depthwise]
    for i in dw:
        layer = mobilenet.layers[i]
        row = base.layers[i]
        # K*K rows x C columns, one channel at a time (C <= 128 fits one crossbar)
        channels_per_chunk = math.ceil(layer.out_channels / math.ceil(layer.out_channels / 128))
        assert row["sequential_channels"] == channels_per_chunk
        assert row["stage_ns"] == pytest.approx(layer.positions * channels_per_chunk * hw.reads_per_input * hw.read_ns)
        if math.ceil(layer.out_channels / 128) < 4:
            assert split.layers[i]["stage_ns"] < row["stage_ns"]
        else:  # already split into >= 4 chunks to fit the crossbar width
            assert split.layers[i]["stage_ns"] == row["stage_ns"]
        assert isaac.layers[i]["crossbars"] == layer.groups  # isaac: every group on its own crossbar
    assert split.latency_ns < base.latency_ns


def test_heterogeneous_crossbar_sizes(squeezenet):
    names = [lay.name for lay in squeezenet.layers]
    sizes = {names[0]: (64, 64), names[-1]: (256, 256)}
    hw = HardwareConfig.preset("rnc").with_updates(layer_crossbar_sizes=sizes)
    for strategy in ("rnc", "isaac"):
        result = compile_workload(squeezenet, hw, strategy=strategy, duplicate=False)
        by_xbar: dict[int, set] = {}
        for p in result.placements:
            by_xbar.setdefault(p.crossbar, set()).add(tuple(hw.crossbar_size_for(p.layer)))
            rows, cols = hw.crossbar_size_for(p.layer)
            assert p.row + p.rows <= rows and p.col + p.cols <= cols
        assert all(len(s) == 1 for s in by_xbar.values())  # different sizes never share a crossbar
        counts = result.crossbars_by_size
        assert set(counts) == {"64x64", "128x128", "256x256"}
        assert sum(counts.values()) == result.crossbars_used
        assert result.layers[0]["crossbar_size"] == [64, 64]


def test_result_api_and_batch_agree(squeezenet, mobilenet):
    hw = HardwareConfig.preset("isaac").model_copy(update={"cell_bits": 2})
    result = compile_workload(squeezenet, hw, strategy="rnc")
    for key in ("feasible", "crossbars_used", "utilization", "latency_ns", "energy_pj", "area_mm2", "edap",
                "layers", "placements", "throughput_ips", "tops", "tops_per_w", "energy_by_component_pj"):
        assert key in result.to_dict()
    assert set(result.energy_by_component_pj) == {"adc", "dac", "crossbar", "buffer", "shift_add", "leakage", "digital"}
    assert result.energy_pj == pytest.approx(sum(result.energy_by_component_pj.values()))
    assert result.edap == pytest.approx(result.energy_pj * result.latency_ns * result.area_mm2)
    assert result.tops_per_w == pytest.approx(2 * squeezenet.total_macs / result.energy_pj)
    hw_budget = HardwareConfig.preset("rnc").with_updates(crossbars=128)
    pairs = [(squeezenet, hw_budget), (mobilenet, hw_budget), (squeezenet, hw)]
    batch = compile_many(pairs, strategy="rnc", seed=3)
    assert batch == [compile_workload(w, h, strategy="rnc", seed=3).summary() for w, h in pairs]


def test_deterministic_for_a_seed(mobilenet):
    hw = HardwareConfig.preset("rnc").with_updates(crossbars=160)
    a = compile_workload(mobilenet, hw, seed=7).to_dict()
    b = compile_workload(mobilenet, hw, seed=7).to_dict()
    assert a == b


def test_bad_arguments_raise_clear_errors(squeezenet):
    hw = HardwareConfig.preset("rnc")
    with pytest.raises(CompileError, match="unknown strategy"):
        compile_workload(squeezenet, hw, strategy="greedy")
    with pytest.raises(CompileError, match="never packs"):
        compile_workload(squeezenet, hw, strategy="isaac", pack=True)
    with pytest.raises(CompileError, match="depthwise_split"):
        compile_workload(squeezenet, hw, depthwise_split=0)
    with pytest.raises(CompileError, match="Workload"):
        compile_workload("squeezenet", hw)
    with pytest.raises(CompileError, match="pair 0"):
        compile_many([(squeezenet,)])


def _plan_arrays(result):
    return (result._totals.tobytes(), result._layer_table.tobytes(), result._placements.tobytes(),
            result._boxes.tobytes(), result._crossbar_class.tobytes())


def test_base_packing_cache_never_changes_results(mobilenet):
    """Cold compiles (cache cleared), warm ones (base reused across budgets) and the uncached one-call kernel
    give bit-identical plans and PPA."""
    from rnc.simulator import compiler
    from rnc.simulator import kernels as K  # noqa: N812
    from rnc.simulator.ppa import ppa_parameters

    hw = HardwareConfig.preset("rnc")
    budgets = (0, 96, 128, 200, 256)
    cold = {}
    for split in (1, 3):
        for budget in budgets:
            compiler.clear_compile_cache()
            cold[split, budget] = _plan_arrays(compile_workload(mobilenet, hw, crossbars=budget, depthwise_split=split))
    for split in (1, 3):
        for budget in reversed(budgets):  # warm: every budget after the first reuses the cached base
            warm = compile_workload(mobilenet, hw, crossbars=budget, depthwise_split=split)
            assert _plan_arrays(warm) == cold[split, budget]
    a = compiler.workload_arrays(mobilenet)
    xr, xc, cls, cls_r, cls_c = compiler.crossbar_classes(mobilenet, hw)
    one_call = K.compile_kernel(
        a["rows"], a["cols_per_group"], a["groups"], a["in_channels"], a["out_channels"], a["kernel_area"],
        a["positions"], a["pred_ptr"], a["pred_idx"], xr, xc, cls, cls_r, cls_c, 1, ppa_parameters(hw),
        True, True, True, 200, 1, 4, 0,
    )
    assert tuple(x.tobytes() for x in one_call) == cold[1, 200]


def test_base_cache_keyed_by_what_the_packing_depends_on(squeezenet):
    """Different seeds, restarts, crossbar sizes and cell bits never share a cached base; timing-only changes do."""
    from rnc.simulator import compiler

    hw = HardwareConfig.preset("rnc").with_updates(crossbars=128)
    variants = [
        {}, {"seed": 5}, {"restarts": 0},
    ]
    hws = [hw, hw.with_updates(crossbar_rows=64, crossbar_cols=64), hw.with_updates(cell_bits=4),
           hw.with_updates(read_ns=50.0)]
    warm = {(i, j): _plan_arrays(compile_workload(squeezenet, h, **v))
            for i, h in enumerate(hws) for j, v in enumerate(variants)}
    for (i, j), plan in warm.items():
        compiler.clear_compile_cache()
        assert _plan_arrays(compile_workload(squeezenet, hws[i], **variants[j])) == plan
    assert warm[0, 0][3] == warm[3, 0][3]  # read_ns changes timing (and so duplication), not the boxes
    assert warm[0, 0][0] != warm[3, 0][0]
    assert warm[0, 0][3] != warm[1, 0][3]


@pytest.mark.parametrize("strategy", ["rnc", "isaac"])
def test_compile_many_equals_compile_workload_pair_by_pair(squeezenet, mobilenet, strategy):
    base = HardwareConfig.preset("rnc")
    hws = [base.with_updates(crossbars=b) for b in (0, 64, 128, 256)]
    hws += [base.with_updates(crossbar_rows=256, crossbar_cols=256, cell_bits=4, crossbars=48)]
    pairs = [(w, h) for h in hws for w in (squeezenet, mobilenet)]
    pairs += pairs[:3]  # repeated objects reuse cached parameters and classes
    options = {"duplicate": True} if strategy == "isaac" else {"depthwise_split": 2}
    batch = compile_many(pairs, strategy, seed=3, **options)
    assert len(batch) == len(pairs)
    for (w, h), summary in zip(pairs, batch, strict=True):
        assert summary == compile_workload(w, h, strategy, seed=3, **options).summary()


def test_depthwise_with_channel_multiplier_maps_every_weight():
    """A depthwise conv with Cout = 2 x Cin (groups = Cin) keeps all its columns in the rnc mapping."""
    from rnc.simulator import Layer, Workload

    layer = Layer("dw", "conv", 6, 12, kernel_h=3, kernel_w=3, groups=6, in_h=4, in_w=4, out_h=4, out_w=4)
    workload = Workload("dw_multiplier", (6, 4, 4), (layer,))
    for cell_bits in (8, 2):
        hw = HardwareConfig.preset("rnc").with_updates(crossbar_rows=16, crossbar_cols=16, cell_bits=cell_bits)
        for split in (1, 3):
            result = compile_workload(workload, hw, crossbars=0, depthwise_split=split)
            assert result.layers[0]["cells"] == layer.weights * hw.slices_per_weight
            assert sum(p.rows * p.cols for p in result.placements) == layer.weights * hw.slices_per_weight

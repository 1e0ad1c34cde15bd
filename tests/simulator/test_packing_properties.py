"""Property tests of the packer and compiler on random layer tables and hardware (hypothesis)."""

import math
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnc.simulator import HardwareConfig, Layer, Workload, compile_workload


@st.composite
def layer_tables(draw):
    n = draw(st.integers(1, 7))
    layers = []
    for i in range(n):
        kind = draw(st.sampled_from(["conv", "conv", "depthwise", "grouped", "linear"]))
        preds = (i - 1,) if i else ()
        if i >= 2 and draw(st.booleans()):
            preds = (i - 2, i - 1)
        if kind == "linear":
            layers.append(Layer(f"fc{i}", "linear", draw(st.integers(1, 700)), draw(st.integers(1, 300)),
                                preds=preds))
            continue
        size = draw(st.integers(1, 12))
        k = draw(st.sampled_from([1, 3, 5]))
        if kind == "depthwise":
            c = draw(st.integers(2, 300))
            cin, cout, groups = c, c, c
        elif kind == "grouped":
            groups = draw(st.integers(2, 4))
            cin, cout = groups * draw(st.integers(1, 40)), groups * draw(st.integers(1, 40))
        else:
            cin, cout, groups = draw(st.integers(1, 200)), draw(st.integers(1, 300)), 1
        layers.append(Layer(f"conv{i}", "conv", cin, cout, kernel_h=k, kernel_w=k, groups=groups,
                            in_h=size, in_w=size, out_h=size, out_w=size, preds=preds))
    return Workload("random", (3, 8, 8), tuple(layers))


@st.composite
def hardware(draw):
    weight_bits = draw(st.sampled_from([4, 8]))
    return HardwareConfig(
        crossbar_rows=draw(st.sampled_from([16, 32, 64, 128])),
        crossbar_cols=draw(st.sampled_from([16, 32, 64, 128, 256])),
        weight_bits=weight_bits,
        cell_bits=draw(st.sampled_from([b for b in (1, 2, 4, 8) if b <= weight_bits])),
        input_bits=8,
        signed_encoding=draw(st.sampled_from(["offset", "differential"])),
    )


def check_plan(result, workload, hw):
    cells_by_layer = Counter()
    seen = set()
    per_xbar: dict[int, list] = {}
    for p in result.placements:
        key = (p.layer_index, p.group, p.copy, p.matrix_row, p.matrix_col)
        assert key not in seen  # every box placed once
        seen.add(key)
        assert p.row >= 0 and p.row + p.rows <= hw.crossbar_rows
        assert p.col >= 0 and p.col + p.cols <= hw.crossbar_cols
        per_xbar.setdefault(p.crossbar, []).append(p)
        assert p.cells * p.block == p.rows * p.cols  # a block-diagonal box holds zeros off its diagonal
        cells_by_layer[p.layer_index] += p.cells
    for boxes in per_xbar.values():  # no overlapping boxes on a crossbar
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert (a.row + a.rows <= b.row or b.row + b.rows <= a.row
                        or a.col + a.cols <= b.col or b.col + b.cols <= a.col)
    assert sorted(per_xbar) == list(range(result.crossbars_used))
    for i, layer in enumerate(workload.layers):  # every copy holds the whole weight matrix
        copies = result.layers[i]["copies"]
        assert cells_by_layer[i] == copies * layer.weights * hw.slices_per_weight
    used = sum(cells_by_layer.values())
    assert result.crossbars_used >= math.ceil(used / (hw.crossbar_rows * hw.crossbar_cols))
    assert 0 < result.utilization <= 1.0
    assert result.latency_ns > 0 and result.energy_pj > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=layer_tables(), hw=hardware(), strategy=st.sampled_from(["rnc", "isaac"]),
       budget=st.integers(0, 300), split=st.integers(1, 8),
       mapping=st.sampled_from(["auto", "channel-serial", "block-diagonal", "parallel"]))
def test_plans_are_valid(workload, hw, strategy, budget, split, mapping):
    opts = {"depthwise_split": split, "depthwise_mapping": mapping} if strategy == "rnc" else {"duplicate": True}
    result = compile_workload(workload, hw, strategy=strategy, crossbars=budget, restarts=2, **opts)
    check_plan(result, workload, hw)
    if result.feasible and budget:
        assert result.crossbars_used <= budget
    assert result.feasible == (budget == 0 or result.min_crossbars <= budget)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=layer_tables(), hw=hardware(), strategy=st.sampled_from(["rnc", "isaac"]),
       budgets=st.lists(st.integers(1, 200), min_size=2, max_size=4))
def test_feasibility_is_monotone_in_the_budget(workload, hw, strategy, budgets):
    results = [compile_workload(workload, hw, strategy=strategy, crossbars=b, restarts=2) for b in sorted(budgets)]
    assert len({r.min_crossbars for r in results}) == 1
    flags = [r.feasible for r in results]
    assert flags == sorted(flags)  # once feasible, feasible for every larger budget


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=layer_tables(), hw=hardware(), strategy=st.sampled_from(["rnc", "isaac"]),
       budgets=st.lists(st.integers(0, 200), min_size=2, max_size=4), seed=st.integers(0, 3))
def test_cached_base_packing_gives_the_same_plans(workload, hw, strategy, budgets, seed):
    """Compiles that reuse the cached base packing equal compiles from an empty cache, budget by budget."""
    from rnc.simulator.compiler import clear_compile_cache

    def plan(result):
        return (result._totals.tobytes(), result._layer_table.tobytes(), result._placements.tobytes())

    warm = [plan(compile_workload(workload, hw, strategy=strategy, crossbars=b, restarts=2, seed=seed))
            for b in budgets]
    for b, expected in zip(budgets, warm, strict=True):
        clear_compile_cache()
        assert plan(compile_workload(workload, hw, strategy=strategy, crossbars=b, restarts=2, seed=seed)) == expected

"""The compiler's fast paths equal the exhaustive computations they replace.

Packing: an ordering stops once it needs more crossbars than the best so far; ``base_kernel(..., prune=False)``
packs every ordering to the end and must keep the same packing.

Duplication: the latency-driven duplication's cached steps equal the full recomputation.

``finish_kernel`` keeps each layer's stage time and next-step values (:func:`_step_values`) and updates only the
duplicated layer; the reference is the full recomputation (:func:`_critical_path` + :func:`_next_copy`), which
recomputes every stage and every step from the copies at every step. Both must choose the same layer and
estimate the same latency on every state, here random DAGs driven through whole duplication runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torchvision

from rnc.simulator import HardwareConfig, trace_workload
from rnc.simulator import compiler as C  # noqa: N812
from rnc.simulator import kernels as K  # noqa: N812


def _random_dag(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR predecessors of a random DAG in topological order (layer i reads from 1-2 earlier layers)."""
    ptr = [0]
    idx: list[int] = []
    for layer in range(n):
        if layer:
            preds = sorted(set(rng.integers(0, layer, size=int(rng.integers(1, 3))).tolist()))
            idx.extend(preds)
        ptr.append(len(idx))
    return np.array(ptr, np.int64), np.array(idx, np.int64)


@pytest.mark.parametrize("seed", range(8))
def test_cached_steps_choose_the_same_layers_as_the_full_recomputation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    pred_ptr, pred_idx = _random_dag(rng, n)
    positions = rng.integers(1, 1100, size=n).astype(np.int64)
    unit_ns = rng.choice([100.0, 200.0, 1600.0, 3200.0], size=n)
    cost = rng.integers(9, 16384, size=n).astype(np.float64)
    min_gain = float(rng.choice([0.0, 0.005, 0.02]))
    copies = np.ones(n, np.int64)
    sat_ref = positions <= 1
    sat_new = sat_ref.copy()
    stage_ref, finish_ref, tail_ref = np.empty(n), np.empty(n), np.empty(n)
    stage, finish, tail = np.empty(n), np.empty(n), np.empty(n)
    per_copy, gain, ratio = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    for layer in range(n):
        stage[layer] = K._ceil_div(positions[layer], copies[layer]) * unit_ns[layer]
        K._step_values(layer, copies, positions, unit_ns, cost, per_copy, gain, ratio)
    steps = 0
    while True:
        lat_ref = K._critical_path(copies, positions, unit_ns, pred_ptr, pred_idx, stage_ref, finish_ref, tail_ref)
        best_ref = K._next_copy(copies, positions, unit_ns, cost, sat_ref, stage_ref, finish_ref, tail_ref, lat_ref,
                                min_gain)
        lat = K._longest_path(stage, pred_ptr, pred_idx, finish, tail)
        best = K._next_copy_cached(per_copy, gain, ratio, sat_new, stage, finish, tail, lat, min_gain)
        assert lat == lat_ref and best == best_ref
        np.testing.assert_array_equal(sat_new, sat_ref)
        if best < 0:
            break
        # a step as the kernel makes it: the fewest copies that shorten the stage, sometimes cut short (no room)
        target = K._ceil_div(positions[best], K._ceil_div(positions[best], copies[best]) - 1)
        if rng.random() < 0.1:
            sat_ref[best] = sat_new[best] = True
        else:
            copies[best] = target
        stage[best] = K._ceil_div(positions[best], copies[best]) * unit_ns[best]
        K._step_values(best, copies, positions, unit_ns, cost, per_copy, gain, ratio)
        steps += 1
    assert steps > 0


@pytest.mark.parametrize("seed", range(6))
def test_incremental_longest_path_equals_the_full_pass(seed: int) -> None:
    """After one layer's stage changes, :func:`_update_path` recomputes only the finishes after it and the tails
    before it; finish, tail and length must equal the full pass bit for bit, step after step."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 40))
    pred_ptr, pred_idx = _random_dag(rng, n)
    succ_ptr, succ_idx = K._successors(pred_ptr, pred_idx)
    succ_edges = zip(succ_idx.tolist(), np.repeat(np.arange(n), np.diff(succ_ptr)).tolist(), strict=True)
    pred_edges = zip(np.repeat(np.arange(n), np.diff(pred_ptr)).tolist(), pred_idx.tolist(), strict=True)
    assert sorted(succ_edges) == sorted(pred_edges)  # the same edges (layer, predecessor), reversed
    stage = rng.choice([100.0, 200.0, 1600.0, 3200.0], size=n) * rng.integers(1, 60, size=n)
    finish_ref, tail_ref = np.empty(n), np.empty(n)
    finish, tail, peak = np.empty(n), np.empty(n), np.empty(n)
    length = K._update_path(0, n - 1, stage, pred_ptr, pred_idx, succ_ptr, succ_idx, finish, tail, peak)
    for _ in range(40):
        length_ref = K._longest_path(stage, pred_ptr, pred_idx, finish_ref, tail_ref)
        assert length == length_ref
        np.testing.assert_array_equal(finish, finish_ref)
        np.testing.assert_array_equal(tail, tail_ref)
        layer = int(rng.integers(0, n))
        stage[layer] = K._ceil_div(int(rng.integers(1, 1100)), int(rng.integers(1, 9))) * 100.0
        length = K._update_path(layer, layer, stage, pred_ptr, pred_idx, succ_ptr, succ_idx, finish, tail, peak)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small"])
def test_pruned_packing_keeps_the_plan_of_packing_every_ordering_to_the_end(name: str) -> None:
    """An ordering stops once it needs more crossbars than the best so far; every ordering packed to the end
    (``prune=False``) keeps the same packing, for RNC's mapping (with random restarts) and spread candidates."""

    w = trace_workload(getattr(torchvision.models, name)(num_classes=10), (3, 64, 64), name=name)
    hw = HardwareConfig.preset("rnc")
    a = C.workload_arrays(w)
    xr, xc, cls, cls_r, cls_c = C.crossbar_classes(w, hw)
    mappings = [(C.depthwise_arrays(w, "channel-serial", 1), False, 4)]
    mappings += [(C.depthwise_spread(w, xr, 1 << 20, chunks), True, 0) for chunks in (16, 64)]
    for (chunks, blk), spread, restarts in mappings:
        args = (a["rows"], a["cols_per_group"], a["groups"], a["in_channels"], xr, xc, cls, cls_r, cls_c,
                np.int64(hw.slices_per_weight), True, True, chunks, blk, np.int64(restarts), np.int64(7), spread)
        fast = K.base_kernel(*args)
        full = K.base_kernel(*args, False)
        assert len(fast) == len(full)
        for x, y in zip(fast, full, strict=True):
            np.testing.assert_array_equal(x, y)

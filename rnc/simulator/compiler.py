"""Compile a workload onto RRAM crossbars (``isaac`` or ``rnc`` strategy) and evaluate its PPA.

Conventions (full text with sources in ``docs/simulator.md``):

- **Partitioning** (im2col; ISAAC, NeuroSim): a layer's weight matrix per group is ``(Cin/g)*kh*kw`` rows by
  ``(Cout/g) * slices_per_weight`` columns, cut into boxes of at most ``rows x cols`` of the layer's
  crossbar size (``hw.crossbar_size_for(name)``: heterogeneous tiles, NAX). Boxes of different crossbar
  sizes never share a crossbar.
- **isaac**: every box on its own crossbar (every layer and every group on its own crossbars, nothing
  shared); optional replication (``duplicate=True``) of the bottleneck layer while whole copies fit the
  budget.
- **rnc** (RNC, arXiv 2409.18841): the same boxes, except depthwise layers, which have three mappings
  (``depthwise_mapping``): ``channel-serial`` (RNC's: ``K*K`` rows x ``C`` columns, one channel per read,
  ``depthwise_split`` column chunks in parallel), ``block-diagonal`` (``b`` channels' ``K*K`` kernels on
  disjoint rows and columns of one box, read together; zeros elsewhere in the box) and ``parallel`` (ISAAC's:
  one box per channel). Full-size boxes take a crossbar each; the remainder boxes of all layers are packed
  into shared crossbars (MaxRects, best short side fit) by a deterministic seeded packer that tries four
  fixed orderings and ``restarts`` seeded random ones and keeps the fewest crossbars. The no-duplication
  packing with RNC's mapping does not depend on the budget: it gives ``min_crossbars``, a property of the
  network and hardware, so more budget never turns a feasible compile infeasible.
- **Duplication** within the budget: RNC's pipeline balancing (``balance``: copies of the longest stage,
  until the budget is full) or latency-driven (``latency``: copies of the critical-path layer that shortens
  the latency most per cell, with the **stop rule**: a step is made only when it gains at least ``min_gain``
  of the latency, then only copies that fit on the crossbars already used). ``duplication="auto"`` keeps
  RNC's balanced plan unless the latency-driven one is no worse in latency and utilization, or uses fewer
  crossbars that were not worth ``min_gain`` each (:func:`plan_score`). Copies never share a crossbar with
  another box of the same layer (they would serialize).
- **Mapping choice** (``depthwise_mapping="auto"``): RNC's channel-serial plan against block-diagonal
  mappings spread over distinct crossbars (a few spreads x blocks, each duplicated for latency); the lowest
  ``ln(latency) + min_gain x crossbars`` wins. Deterministic for a seed.
- **Contention**: everything mapped on one crossbar serializes on it. A layer's stage time is the largest,
  over its crossbars, of the summed time of its boxes there; a box's time is ``positions_of_its_copy x
  reads_per_position x reads_per_input x read_cycle``.
- **Latency** (single image): the critical path of the dataflow graph. Layers are scheduled in topological
  order; a layer starts when all its predecessors have finished and all its crossbars are free, so branches
  on disjoint crossbars overlap and layers sharing a crossbar serialize; ``latency_ns`` is the last finish.
  **Throughput** (pipelined over images): one image per ``max over crossbars of its busy time per image``.
- **Utilization** = weight cells (copies included; not the zeros of block-diagonal boxes) / (crossbars
  actually used x their rows x cols).
- **Energy** by the categories the component table names (ISAAC: ``adc``, ``dac``, ``crossbar``, ``buffer``,
  ``shift_add``, plus ``leakage``), charged on the kernel's event counts by data, **area**
  of the occupied IMAs and tiles, EDAP = energy_pj x latency_ns x area_mm2, TOPS = 2 x MACs x throughput,
  TOPS/W = 2 x MACs / energy: see :mod:`rnc.simulator.ppa`.

An infeasible compile (``min_crossbars > budget``) never raises: it returns ``feasible=False`` with
``min_crossbars`` and the PPA of that minimum plan.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np

from rnc.errors import UserError, check_names
from rnc.simulator import kernels as K  # noqa: N812
from rnc.simulator.digital import NO_DIGITAL, DigitalCost, digital_cost
from rnc.simulator.hardware import HardwareConfig
from rnc.simulator.ppa import EnergyTable, energy_by_category, energy_table, ppa_parameters
from rnc.simulator.workload import Workload

Strategy = Literal["rnc", "isaac"]
STRATEGIES = ("rnc", "isaac")


class CompileError(UserError, ValueError):
    """Arguments the compiler cannot use (unknown strategy, bad option); infeasibility is not an error."""


# --------------------------------------------------------------------------------------------------------
# Workload and hardware -> kernel arrays
# --------------------------------------------------------------------------------------------------------

_WORKLOAD_ARRAYS: dict[int, tuple[weakref.ref, dict[str, np.ndarray]]] = {}


def workload_arrays(workload: Workload) -> dict[str, np.ndarray]:
    """The int64 column arrays of ``workload`` the kernels read (cached per workload object)."""
    key = id(workload)
    hit = _WORKLOAD_ARRAYS.get(key)
    if hit is not None and hit[0]() is workload:
        return hit[1]
    arrays = workload.to_arrays()
    arrays["kernel_area"] = arrays["kernel_h"] * arrays["kernel_w"]
    arrays["macs"] = np.array([lay.macs for lay in workload.layers], np.int64)
    try:
        ref = weakref.ref(workload, lambda _r, k=key: _WORKLOAD_ARRAYS.pop(k, None))
    except TypeError:  # objects without weak references are simply not cached
        return arrays
    _WORKLOAD_ARRAYS[key] = (ref, arrays)
    return arrays


def crossbar_classes(workload: Workload, hw: HardwareConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      np.ndarray, np.ndarray]:
    """Per-layer crossbar sizes and the class (distinct size) of each layer: ``xr, xc, cls, cls_r, cls_c``."""
    n = len(workload.layers)
    default = (hw.crossbar_rows, hw.crossbar_cols)
    if not hw.layer_crossbar_sizes:
        xr = np.full(n, default[0], np.int64)
        xc = np.full(n, default[1], np.int64)
        return xr, xc, np.zeros(n, np.int64), xr[:1].copy(), xc[:1].copy()
    sizes = [tuple(hw.crossbar_size_for(layer.name)) for layer in workload.layers]
    classes: dict[tuple[int, int], int] = {}
    cls = np.empty(n, np.int64)
    for i, size in enumerate(sizes):
        cls[i] = classes.setdefault(size, len(classes))
    xr = np.array([s[0] for s in sizes], np.int64)
    xc = np.array([s[1] for s in sizes], np.int64)
    cls_r = np.array([s[0] for s in classes], np.int64)
    cls_c = np.array([s[1] for s in classes], np.int64)
    return xr, xc, cls, cls_r, cls_c


DEPTHWISE_MAPPINGS = ("auto", "channel-serial", "block-diagonal", "parallel")
DUPLICATIONS = ("auto", "balance", "latency")
POLICY_BALANCE, POLICY_LATENCY = 0, 1  # duplication policies of the kernel
MIN_GAIN = 0.005  # default stop rule: a copy must shorten the estimated latency by >= 0.5%


@dataclass(frozen=True)
class CompileOptions:
    """Resolved options of one compile (defaults depend on the strategy)."""

    strategy: Strategy
    share: bool
    duplicate: bool
    depthwise_split: int
    restarts: int
    seed: int
    budget: int
    depthwise_mapping: str = "auto"
    min_gain: float = MIN_GAIN
    duplication: str = "auto"


def resolve_options(strategy: str, hw: HardwareConfig, *, seed: int = 0, duplicate: bool | None = None,
                    pack: bool | None = None, depthwise_split: int = 1, restarts: int = 4,
                    crossbars: int | None = None, depthwise_mapping: str = "auto",
                    min_gain: float = MIN_GAIN, duplication: str = "auto") -> CompileOptions:
    if strategy not in STRATEGIES:
        raise CompileError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if depthwise_split < 1:
        raise CompileError(f"depthwise_split must be >= 1, got {depthwise_split}")
    if restarts < 0:
        raise CompileError(f"restarts must be >= 0, got {restarts}")
    if depthwise_mapping not in DEPTHWISE_MAPPINGS:
        raise CompileError(f"unknown depthwise_mapping {depthwise_mapping!r}; choose one of: "
                           f"{', '.join(DEPTHWISE_MAPPINGS)}")
    if duplication not in DUPLICATIONS:
        raise CompileError(f"unknown duplication {duplication!r}; choose one of: {', '.join(DUPLICATIONS)}")
    if not 0.0 <= float(min_gain) < 1.0:
        raise CompileError(f"min_gain must be in [0, 1) (0 = duplicate until the budget is full), got {min_gain}")
    budget = hw.crossbars if crossbars is None else int(crossbars)
    if budget < 0:
        raise CompileError(f"crossbar budget must be >= 0 (0 = unlimited), got {budget}")
    if strategy == "isaac":
        if pack:
            raise CompileError("strategy 'isaac' never packs boxes of several layers; use strategy 'rnc'")
        return CompileOptions("isaac", False, bool(duplicate), 1, 0, int(seed), budget, "parallel", float(min_gain),
                              "balance")
    return CompileOptions(
        "rnc", True if pack is None else bool(pack), True if duplicate is None else bool(duplicate),
        int(depthwise_split), int(restarts), int(seed), budget, depthwise_mapping, float(min_gain), duplication,
    )


def depthwise_arrays(workload: Workload, mapping: str, split: int, spread: int = 0,
                     block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer ``(chunks, block)`` of the depthwise mapping (see :func:`rnc.simulator.kernels.partition_boxes`).

    ``channel-serial`` (RNC): ``split`` chunks, one channel per read; ``block-diagonal``: ``split`` chunks
    (or ``spread`` when larger), as many channels per read as the crossbar rows hold (at most ``block``);
    ``parallel`` (ISAAC): one chunk per channel. Non-depthwise layers ignore both values.
    """
    a = workload_arrays(workload)
    n = len(workload.layers)
    if mapping == "parallel":
        return a["groups"].copy(), np.ones(n, np.int64)
    chunks = np.full(n, max(split, spread), np.int64)
    if mapping == "block-diagonal":
        return chunks, np.full(n, block, np.int64)
    return chunks, np.ones(n, np.int64)


def depthwise_spread(workload: Workload, xr: np.ndarray, block: int, max_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """A block-diagonal mapping spread over distinct crossbars: per depthwise layer of ``C`` channels and
    ``K*K`` rows, ``b = min(block, rows // (K*K))`` channels per read and ``min(max_chunks, ceil(C / b))``
    chunks, so ``ceil(C / (chunks * b))`` reads per output position."""
    a = workload_arrays(workload)
    blk = np.maximum(1, np.minimum(block, xr // np.maximum(a["rows"], 1)))
    chunks = np.minimum(max_chunks, -(-a["groups"] // blk))
    return np.maximum(chunks, 1).astype(np.int64), blk.astype(np.int64)


_BASE_CACHE: dict[int, tuple[weakref.ref, OrderedDict]] = {}
BASE_CACHE_ENTRIES = 64  # cached base packings kept per workload (least recently used dropped first)


def clear_compile_cache() -> None:
    """Forget every cached base packing (the next compile of each workload recomputes it)."""
    _BASE_CACHE.clear()


def base_plan(workload: Workload, hw: HardwareConfig, opts: CompileOptions, classes=None,
              dw: tuple[np.ndarray, np.ndarray] | None = None, spread: bool = False) -> tuple:
    """The budget-independent part of a compile (partitioning + no-duplication packing), cached.

    It depends only on the workload, the crossbar sizes of its layers, ``slices_per_weight``, the depthwise
    mapping ``dw`` (:func:`depthwise_arrays`; default: channel-serial with ``depthwise_split`` chunks) and the
    options ``strategy, pack, restarts, seed`` (``restarts`` and ``seed`` only when packing), never on the
    budget or the PPA parameters, so every budget and every hardware variant that differs only in timing,
    energy or area reuses it. The cache lives as long as the workload object (weak reference) and keeps
    :data:`BASE_CACHE_ENTRIES` entries per workload; cached and fresh results are identical.
    """
    a = workload_arrays(workload)
    xr, xc, cls, cls_r, cls_c = crossbar_classes(workload, hw) if classes is None else classes
    rnc_mapping = opts.strategy == "rnc"
    restarts, seed = (opts.restarts, opts.seed) if opts.share else (0, 0)
    if dw is None:
        dw = depthwise_arrays(workload, "channel-serial", opts.depthwise_split)
    key = (xr.tobytes(), xc.tobytes(), int(hw.slices_per_weight), rnc_mapping, opts.share,
           dw[0].tobytes(), dw[1].tobytes(), spread, restarts, seed)
    wid = id(workload)
    hit = _BASE_CACHE.get(wid)
    if hit is not None and hit[0]() is workload:
        entries = hit[1]
        base = entries.get(key)
        if base is not None:
            entries.move_to_end(key)
            return base
    else:
        entries = OrderedDict()
        try:
            ref = weakref.ref(workload, lambda _r, k=wid: _BASE_CACHE.pop(k, None))
        except TypeError:
            ref = None
        if ref is not None:
            _BASE_CACHE[wid] = (ref, entries)
    base = K.base_kernel(
        a["rows"], a["cols_per_group"], a["groups"], a["in_channels"], xr, xc, cls, cls_r, cls_c,
        np.int64(hw.slices_per_weight), rnc_mapping, opts.share, dw[0], dw[1], np.int64(restarts), np.int64(seed),
        spread,
    )
    entries[key] = base
    if len(entries) > BASE_CACHE_ENTRIES:
        entries.popitem(last=False)
    return base


def _finish(workload: Workload, base: tuple, opts: CompileOptions, params: np.ndarray, classes: tuple,
            min_crossbars: int, policy: int):
    a = workload_arrays(workload)
    _xr, _xc, cls, cls_r, cls_c = classes
    return K.finish_kernel(
        base, a["in_channels"], a["out_channels"], a["rows"], a["kernel_area"], a["positions"], a["pred_ptr"],
        a["pred_idx"], cls, cls_r, cls_c, params, opts.share, opts.duplicate, np.int64(opts.budget),
        float(opts.min_gain), np.int64(min_crossbars), np.int64(policy),
    )


def _utilization(totals: np.ndarray) -> float:
    capacity = float(totals[K.T_CAPACITY_CELLS])
    return float(totals[K.T_USED_CELLS]) / capacity if capacity > 0 else 0.0


def plan_score(totals: np.ndarray, min_gain: float) -> float:
    """The stop rule's order of plans: ``ln(latency_ns) + min_gain x crossbars_used`` (lower is better): a
    crossbar is worth using when it shortens the latency by at least the fraction ``min_gain``."""
    return math.log(max(float(totals[K.T_LATENCY_NS]), 1e-30)) + min_gain * float(totals[K.T_CROSSBARS_USED])


def _replaces(new: np.ndarray, old: np.ndarray, min_gain: float) -> bool:
    """Does plan ``new`` replace RNC's balanced plan ``old``? When it is no worse in latency and utilization, or
    when it uses fewer crossbars and the stop rule says they were not worth their latency."""
    if new[K.T_LATENCY_NS] <= old[K.T_LATENCY_NS] and _utilization(new) >= _utilization(old):
        return True
    return bool(new[K.T_CROSSBARS_USED] < old[K.T_CROSSBARS_USED]
                and plan_score(new, min_gain) <= plan_score(old, min_gain))


def run_kernel(workload: Workload, hw: HardwareConfig, opts: CompileOptions, params: np.ndarray | None = None,
               classes: tuple | None = None):
    """Compile (cached base packing, then mapping choice, duplication and PPA); returns the kernel's arrays and
    the classes.

    ``params`` (:func:`ppa_parameters`) and ``classes`` (:func:`crossbar_classes`) may be passed when the
    caller already has them for this hardware (and workload)."""
    if classes is None:
        classes = crossbar_classes(workload, hw)
    if params is None:
        params = ppa_parameters(hw)
    _xr, _xc, _cls, cls_r, cls_c = classes
    mapping = opts.depthwise_mapping if opts.depthwise_mapping != "auto" else "channel-serial"
    compact = base_plan(workload, hw, opts, classes, depthwise_arrays(workload, mapping, opts.depthwise_split))
    min_crossbars = int(compact[12])
    duplicating = opts.duplicate and 0 < min_crossbars <= opts.budget
    if not duplicating or opts.strategy == "isaac" or opts.duplication == "balance":
        out = _finish(workload, compact, opts, params, classes, min_crossbars, POLICY_BALANCE)
    elif opts.duplication == "latency":
        out = _finish(workload, compact, opts, params, classes, min_crossbars, POLICY_LATENCY)
    else:
        out = _finish(workload, compact, opts, params, classes, min_crossbars, POLICY_BALANCE)
        fast = _finish(workload, compact, opts, params, classes, min_crossbars, POLICY_LATENCY)
        if _replaces(fast[0], out[0], opts.min_gain):
            out = fast
    if (duplicating and opts.depthwise_mapping == "auto" and opts.strategy == "rnc"
            and any(lay.is_depthwise for lay in workload.layers)):
        out = _choose_depthwise(workload, hw, opts, params, classes, min_crossbars, out)
    return out, cls_r, cls_c


DEPTHWISE_SPREADS = (1 / 3, 2 / 3, 1.0, 4 / 3)  # chunks per depthwise layer, x the compact plan's crossbars
DEPTHWISE_BLOCKS = (1 << 20,)  # channels read together: as many as the rows hold (b = 3 never won)


def _choose_depthwise(workload, hw, opts, params, classes, min_crossbars, best):
    """The depthwise mapping of the ``auto`` choice: the plan ``best`` (RNC's channel-serial mapping) against
    block-diagonal mappings spread over distinct crossbars (:data:`DEPTHWISE_SPREADS` x the compact plan's
    crossbars, :data:`DEPTHWISE_BLOCKS`), each duplicated for latency; the lowest :func:`plan_score` wins
    (deterministic; candidates whose no-duplication plan does not fit the budget are skipped)."""
    policy = POLICY_BALANCE if opts.duplication == "balance" else POLICY_LATENCY
    fixed_orders = replace(opts, restarts=0)  # candidates are packed with the four fixed orderings only
    best_score = plan_score(best[0], opts.min_gain)
    seen: set[tuple[bytes, bytes]] = set()  # spreads capped at a layer's channels give the same mapping: one try
    for spread in DEPTHWISE_SPREADS:
        chunks = max(1, round(spread * min_crossbars), opts.depthwise_split)
        for block in DEPTHWISE_BLOCKS:
            dw = depthwise_spread(workload, classes[0], block, chunks)
            key = (dw[0].tobytes(), dw[1].tobytes())
            if key in seen:  # the same plan again: its score is not below the best any more
                continue
            seen.add(key)
            base = base_plan(workload, hw, fixed_orders, classes, dw, spread=True)
            if int(base[12]) > opts.budget:
                continue
            out = _finish(workload, base, opts, params, classes, min_crossbars, policy)
            score = plan_score(out[0], opts.min_gain)
            if score < best_score:
                best, best_score = out, score
    return best


def summarize(totals: np.ndarray, budget: int, table: EnergyTable,
              digital: DigitalCost = NO_DIGITAL) -> dict[str, float | int | bool | dict[str, float]]:
    """Scalar metrics from the kernel's totals array (the keys of :meth:`CompileResult.summary`); ``table``
    (:func:`rnc.simulator.ppa.energy_table` of the hardware) turns the event counts into energy by category.
    ``digital`` (:mod:`rnc.simulator.digital`) is the digital units' share: its ops are counted as
    ``digital_op`` events (so the table charges them, category ``digital``), its busy time adds to the latency
    (and so to the leakage) and bounds the period; its area is already in the kernel's area."""
    latency = float(totals[K.T_LATENCY_NS]) + digital.latency_ns
    counts = totals[list(K.T_EVENTS)].copy()
    counts[K.T_EVENTS.index(K.T_N_DIGITAL_OPS)] += digital.ops
    energy_by = energy_by_category(table, counts, totals[K.T_LEAKAGE_MW] * latency)
    energy = sum(energy_by.values())
    period = max(float(totals[K.T_PERIOD_NS]), digital.latency_ns)
    area = float(totals[K.T_AREA_MM2])
    capacity = float(totals[K.T_CAPACITY_CELLS])
    ops = 2.0 * float(totals[K.T_MACS])
    throughput = 1e9 / period if period > 0 else 0.0
    return {
        "feasible": bool(totals[K.T_FEASIBLE] > 0),
        "budget": int(budget),
        "min_crossbars": int(totals[K.T_MIN_CROSSBARS]),
        "crossbars_used": int(totals[K.T_CROSSBARS_USED]),
        "used_cells": int(totals[K.T_USED_CELLS]),
        "utilization": float(totals[K.T_USED_CELLS]) / capacity if capacity > 0 else 0.0,
        "latency_ns": latency,
        "throughput_ips": throughput,
        "energy_pj": energy,
        "energy_by_component_pj": energy_by,
        "area_mm2": area,
        "edap": energy * latency * area,
        "tops": ops * throughput / 1e12,
        "tops_per_w": ops / energy if energy > 0 else 0.0,
        "macs": int(totals[K.T_MACS]),
        "digital_ops": digital.ops,
        "digital_latency_ns": digital.latency_ns,
        "digital_energy_pj": digital.energy_pj,
        "digital_area_mm2": digital.area_mm2,
    }


# --------------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    """One box on one crossbar: ``rows x cols`` cells of ``layer``'s matrix ``group`` (a group of a grouped
    conv, or a channel chunk of a depthwise layer in ``rnc``), copy ``copy``, at ``(row, col)`` of crossbar
    ``crossbar``; ``matrix_row``/``matrix_col`` locate the box inside the layer's weight matrix. ``block``
    channels of a block-diagonal depthwise box are read together; ``cells = rows x cols / block`` hold weights,
    the rest of the box zeros."""

    layer: str
    layer_index: int
    group: int
    copy: int
    crossbar: int
    row: int
    col: int
    rows: int
    cols: int
    matrix_row: int
    matrix_col: int
    block: int = 1
    cells: int = 0

    def to_dict(self) -> dict[str, int | str]:
        return dict(self.__dict__)


@dataclass(eq=False)
class CompileResult:
    """A compiled mapping plan and its PPA. Scalars are computed eagerly; the per-layer table and the
    placements are materialized on first access (the hot summary path never builds Python objects)."""

    workload: Workload
    hardware: HardwareConfig
    options: CompileOptions
    _totals: np.ndarray = field(repr=False)
    _layer_table: np.ndarray = field(repr=False)
    _placements: np.ndarray = field(repr=False)
    _boxes: np.ndarray = field(repr=False)
    _crossbar_class: np.ndarray = field(repr=False)
    _cls_r: np.ndarray = field(repr=False)
    _cls_c: np.ndarray = field(repr=False)

    @cached_property
    def _table(self) -> EnergyTable:
        return energy_table(self.hardware)

    @cached_property
    def digital(self) -> DigitalCost:
        """The digital units' work, latency, energy and area for one image (:mod:`rnc.simulator.digital`)."""
        return digital_cost(self.workload, self.hardware, self._table, int(self._totals[K.T_IMAS]),
                            int(self._totals[K.T_TILES]))

    @cached_property
    def _summary(self) -> dict:
        return summarize(self._totals, self.options.budget, self._table, self.digital)

    # scalar metrics ----------------------------------------------------------------------------------
    @property
    def strategy(self) -> str:
        return self.options.strategy

    @property
    def feasible(self) -> bool:
        return self._summary["feasible"]

    @property
    def min_crossbars(self) -> int:
        return self._summary["min_crossbars"]

    @property
    def crossbars_used(self) -> int:
        return self._summary["crossbars_used"]

    @property
    def utilization(self) -> float:
        return self._summary["utilization"]

    @property
    def latency_ns(self) -> float:
        return self._summary["latency_ns"]

    @property
    def throughput_ips(self) -> float:
        return self._summary["throughput_ips"]

    @property
    def energy_pj(self) -> float:
        return self._summary["energy_pj"]

    @property
    def energy_by_component_pj(self) -> dict[str, float]:
        return dict(self._summary["energy_by_component_pj"])

    @property
    def area_mm2(self) -> float:
        return self._summary["area_mm2"]

    @property
    def edap(self) -> float:
        """Energy x delay x area of one image, in pJ x ns x mm^2."""
        return self._summary["edap"]

    @property
    def tops(self) -> float:
        return self._summary["tops"]

    @property
    def tops_per_w(self) -> float:
        return self._summary["tops_per_w"]

    @property
    def crossbars_by_size(self) -> dict[str, int]:
        """Occupied crossbars per size, ``"ROWSxCOLS" -> count``."""
        counts = np.bincount(self._crossbar_class, minlength=len(self._cls_r))
        return {f"{int(r)}x{int(c)}": int(n) for r, c, n in zip(self._cls_r, self._cls_c, counts, strict=True)}

    def summary(self) -> dict:
        """Scalar metrics (the same keys :func:`rnc.simulator.compile_many` returns)."""
        return {**self._summary, "energy_by_component_pj": dict(self._summary["energy_by_component_pj"])}

    # tables ------------------------------------------------------------------------------------------
    @cached_property
    def layers(self) -> list[dict]:
        """One row per layer: shapes, crossbar size, copies, crossbars, cells, stage/start/finish times."""
        tab = self._layer_table
        rows = []
        for i, layer in enumerate(self.workload.layers):
            cls = int(tab[i, K.L_CLASS])
            occupied = int(tab[i, K.L_CROSSBARS])
            cap = occupied * int(self._cls_r[cls]) * int(self._cls_c[cls])
            rows.append({
                "index": i,
                "name": layer.name,
                "kind": "depthwise" if layer.is_depthwise else layer.kind,
                "in_channels": layer.in_channels,
                "out_channels": layer.out_channels,
                "kernel": [layer.kernel_h, layer.kernel_w],
                "groups": layer.groups,
                "positions": layer.positions,
                "matrix_rows": layer.rows,
                "macs": layer.macs,
                "crossbar_size": [int(self._cls_r[cls]), int(self._cls_c[cls])],
                "copies": int(tab[i, K.L_COPIES]),
                "boxes": int(tab[i, K.L_BOXES]),
                "crossbars": occupied,
                "cells": int(tab[i, K.L_CELLS]),
                "sequential_channels": int(tab[i, K.L_SEQ]),
                "stage_ns": float(tab[i, K.L_STAGE_NS]),
                "start_ns": float(tab[i, K.L_START_NS]),
                "finish_ns": float(tab[i, K.L_FINISH_NS]),
                "energy_pj": float(tab[i, K.L_ENERGY_PJ]),
                "crossbar_share": float(tab[i, K.L_CELLS]) / cap if cap else 0.0,
            })
        return rows

    @cached_property
    def placements(self) -> list[Placement]:
        """Every box of every copy with its crossbar and offset."""
        names = [layer.name for layer in self.workload.layers]
        out = []
        boxes = self._boxes
        for box, copy, xbar, row, col in self._placements.tolist():
            layer, group, h, w, _act, row0, col0, block = boxes[box].tolist()
            out.append(Placement(names[layer], layer, group, copy, xbar, row, col, h, w, row0, col0, block,
                                 h * w // block))
        return out

    def to_dict(self) -> dict:
        """Plan + PPA as plain JSON-ready data; top-level ``feasible, crossbars_used, utilization, latency_ns,
        energy_pj, area_mm2, edap, layers, placements`` and the other scalar metrics."""
        return {
            **self.summary(),
            "strategy": self.strategy,
            "workload": self.workload.name,
            "input_shape": list(self.workload.input_shape),
            "hardware": self.hardware.model_dump(mode="json"),
            "options": dict(self.options.__dict__),
            "crossbars_by_size": self.crossbars_by_size,
            "layers": self.layers,
            "digital": self.digital.to_dict(),
            "placements": [p.to_dict() for p in self.placements],
        }


def compile_workload(workload: Workload, hw: HardwareConfig, strategy: Strategy = "rnc", *, seed: int = 0,
                     duplicate: bool | None = None, pack: bool | None = None, depthwise_split: int = 1,
                     restarts: int = 4, crossbars: int | None = None, depthwise_mapping: str = "auto",
                     min_gain: float = MIN_GAIN, duplication: str = "auto",
                     check_layer_names: bool = True) -> CompileResult:
    """Compile ``workload`` onto ``hw``'s crossbars with ``strategy`` and evaluate its PPA.

    ``duplicate`` (default: on for ``rnc``, off for ``isaac``) replicates bottleneck layers within the budget
    ``hw.crossbars`` (or ``crossbars``, which overrides it; 0 = unlimited, then nothing is duplicated);
    ``pack`` (``rnc`` only, default on) shares crossbars between boxes of several layers;
    ``depthwise_split`` splits each depthwise layer into that many channel chunks on separate crossbars
    (``rnc``); ``restarts`` seeded random packing orders are tried after the four fixed ones, the fewest
    crossbars kept. ``depthwise_mapping`` (``rnc``): ``auto`` (default: chosen per budget), ``channel-serial``
    (RNC), ``block-diagonal`` or ``parallel`` (ISAAC); ``duplication`` (``rnc``): ``auto``, ``balance`` (RNC's
    pipeline balancing, fills the budget) or ``latency`` (critical path); ``min_gain`` (in [0, 1), default
    0.005): the stop rule's fraction of the latency a duplication step must gain (0 = fill the budget).
    Never raises for a network that does not fit: see ``feasible`` and ``min_crossbars``; raises
    :class:`CompileError` for unknown options.

    Raises :class:`CompileError` when ``hw.layer_crossbar_sizes`` names a layer the workload does not have (with
    the close matches), unless ``check_layer_names`` is off (a search space whose subnets drop layers).
    """
    if not isinstance(workload, Workload):
        raise CompileError(f"expected a Workload (see rnc.simulator.trace_workload), got {type(workload).__name__}")
    if not isinstance(hw, HardwareConfig):
        raise CompileError(f"expected a HardwareConfig, got {type(hw).__name__}")
    if check_layer_names and hw.layer_crossbar_sizes:
        check_names("layer", list(hw.layer_crossbar_sizes), [layer.name for layer in workload.layers],
                    where=f"layer_crossbar_sizes of {workload.name or 'the workload'}", error=CompileError)
    opts = resolve_options(strategy, hw, seed=seed, duplicate=duplicate, pack=pack,
                           depthwise_split=depthwise_split, restarts=restarts, crossbars=crossbars,
                           depthwise_mapping=depthwise_mapping, min_gain=min_gain, duplication=duplication)
    (totals, layer_tab, placements, boxes, xbar_cls), cls_r, cls_c = run_kernel(workload, hw, opts)
    return CompileResult(workload, hw, opts, totals, layer_tab, placements, boxes, xbar_cls, cls_r, cls_c)


def lower_bound_crossbars(workload: Workload, hw: HardwareConfig) -> int:
    """``ceil(weight cells / crossbar cells)`` -- no plan can use fewer crossbars (single crossbar size)."""
    cells = sum(layer.weights for layer in workload.layers) * hw.slices_per_weight
    return math.ceil(cells / (hw.crossbar_rows * hw.crossbar_cols))


__all__ = ["CompileError", "CompileResult", "Placement", "clear_compile_cache", "compile_workload"]

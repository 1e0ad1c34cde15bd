"""Batched evaluation: compile + PPA of many (workload, hardware) pairs in one call, summaries only.

Each pair goes straight to the Numba kernel (no per-layer tables or placement objects are built). The PPA
parameters, resolved options and per-layer crossbar classes are computed once per distinct hardware object
(and workload), and the budget-independent base packing is shared through the compiler's cache
(:func:`rnc.simulator.compiler.base_plan`), so pairs that differ only in budget or in timing/energy/area
parameters pay only for duplication and PPA; a pair of the same two objects seen again in one call reuses its
summary (compiles are deterministic). Results equal ``compile_workload(...).summary()`` pair by pair.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rnc.simulator import kernels as K  # noqa: N812
from rnc.simulator.compiler import (
    CompileError,
    CompileOptions,
    Strategy,
    crossbar_classes,
    resolve_options,
    run_kernel,
    summarize,
)
from rnc.simulator.digital import digital_cost
from rnc.simulator.hardware import HardwareConfig
from rnc.simulator.ppa import EnergyTable, energy_table, ppa_parameters
from rnc.simulator.workload import Workload


def compile_many(pairs: Iterable[tuple[Workload, HardwareConfig]], strategy: Strategy = "rnc", *, seed: int = 0,
                 **options) -> list[dict]:
    """Summaries (the keys of :meth:`CompileResult.summary`) of every ``(workload, hardware)`` pair, in order.

    ``options`` are those of :func:`rnc.simulator.compile_workload` (``duplicate``, ``pack``,
    ``depthwise_split``, ``restarts``, ``crossbars``, ``depthwise_mapping``, ``min_gain``, ``duplication``);
    results equal ``compile_workload(...).summary()``.
    """
    out: list[dict] = []
    # per distinct hardware object: (hw, PPA parameters, resolved options); per (hardware, workload): classes
    per_hw: dict[int, tuple[HardwareConfig, np.ndarray, CompileOptions, EnergyTable]] = {}
    # per (hardware, workload) pair of objects: crossbar classes and the summary; objects held, so ids stay unique
    per_pair: dict[tuple[int, int], tuple[Workload, tuple, dict | None]] = {}
    for index, pair in enumerate(pairs):
        try:
            workload, hw = pair
        except (TypeError, ValueError):
            raise CompileError(f"pair {index}: expected a (workload, hardware) tuple") from None
        if not isinstance(workload, Workload) or not isinstance(hw, HardwareConfig):
            raise CompileError(
                f"pair {index}: expected (Workload, HardwareConfig), got "
                f"({type(workload).__name__}, {type(hw).__name__})"
            )
        cached = per_hw.get(id(hw))
        if cached is None or cached[0] is not hw:
            cached = (hw, ppa_parameters(hw), resolve_options(strategy, hw, seed=seed, **options), energy_table(hw))
            per_hw[id(hw)] = cached
        _hw, params, opts, table = cached
        pair_hit = per_pair.get((id(hw), id(workload)))
        if pair_hit is None or pair_hit[0] is not workload:
            pair_hit = (workload, crossbar_classes(workload, hw), None)
        if pair_hit[2] is None:  # the same objects again give the same summary (compiles are deterministic)
            (totals, *_), _cls_r, _cls_c = run_kernel(workload, hw, opts, params, pair_hit[1])
            digital = digital_cost(workload, hw, table, int(totals[K.T_IMAS]), int(totals[K.T_TILES]))
            pair_hit = (workload, pair_hit[1], summarize(totals, opts.budget, table, digital))
            per_pair[(id(hw), id(workload))] = pair_hit
        summary = pair_hit[2]
        out.append({**summary, "energy_by_component_pj": dict(summary["energy_by_component_pj"])})
    return out

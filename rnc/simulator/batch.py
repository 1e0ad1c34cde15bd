"""Batched evaluation: compile + PPA of many (workload, hardware) pairs in one call, summaries only.

Each pair goes straight to the Numba kernel (no per-layer tables or placement objects are built); the PPA
parameters of a hardware configuration are computed once per distinct configuration object.
"""

from __future__ import annotations

from collections.abc import Iterable

from rnc.simulator.compiler import CompileError, Strategy, resolve_options, run_kernel, summarize
from rnc.simulator.hardware import HardwareConfig
from rnc.simulator.ppa import ppa_parameters
from rnc.simulator.workload import Workload


def compile_many(pairs: Iterable[tuple[Workload, HardwareConfig]], strategy: Strategy = "rnc", *, seed: int = 0,
                 **options) -> list[dict]:
    """Summaries (the keys of :meth:`CompileResult.summary`) of every ``(workload, hardware)`` pair, in order.

    ``options`` are those of :func:`rnc.simulator.compile_workload` (``duplicate``, ``pack``,
    ``depthwise_split``, ``restarts``, ``crossbars``); results equal ``compile_workload(...).summary()``.
    """
    out: list[dict] = []
    params_by_hw: dict[int, tuple[HardwareConfig, object]] = {}
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
        cached = params_by_hw.get(id(hw))
        if cached is None or cached[0] is not hw:
            cached = (hw, ppa_parameters(hw))
            params_by_hw[id(hw)] = cached
        opts = resolve_options(strategy, hw, seed=seed, **options)
        (totals, *_), _cls_r, _cls_c = run_kernel(workload, hw, opts, cached[1])
        out.append(summarize(totals, opts.budget))
    return out

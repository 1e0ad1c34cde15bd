"""The one table of candidate metrics: name, unit, goal, display, scale and meaning.

Config validation (objective names and their default goals), the searchers' objective rows, tracking (which
metrics a candidate run carries, rounded), the candidates table, front tables, plots and the CLI all read
:data:`METRICS`; nothing else lists metric names.

Names carry their storage unit (``latency_ns``, ``energy_uj``, ``area_mm2``, ``throughput_ips``); fractions
(accuracy, utilization) are stored as 0..1 and shown in percent. ``display_scale`` converts the stored value to
``display_unit`` for people (``latency_ns`` is shown in µs, as ``rnc-platform compile`` shows it). EDAP follows
the compiler's convention (``rnc.simulator.compiler``): energy (pJ) x latency (ns) x area (mm²).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Goal = Literal["min", "max"]


@dataclass(frozen=True)
class Metric:
    """One candidate metric.

    Attributes:
        name: stored name, unit in the name where it has one (candidates table column, MLflow metric).
        objective: the objective name a config uses for it (``latency`` for ``latency_ns``), or ``None``.
        label: short human name (axis labels, table headers).
        goal: the natural direction (``min``/``max``), used when a config leaves ``goal`` out.
        display_unit: unit shown to people; ``display_scale`` converts a stored value to it.
        fmt: ``format`` spec of a displayed value.
        log_scale: plot axes in log scale (values span orders of magnitude).
        source: ``simulator`` (compile + PPA) or ``supernet`` (accuracy evaluation).
        summary_key: the simulator summary key it is read from (``None``: not from the simulator).
        digits: significant digits kept when logged to MLflow.
        description: what it measures.
        short: a narrow header for terminal tables (``label`` when empty).
    """

    name: str
    objective: str | None
    label: str
    goal: Goal
    display_unit: str
    display_scale: float
    fmt: str
    log_scale: bool
    source: Literal["simulator", "supernet"]
    summary_key: str | None
    digits: int
    description: str
    short: str = ""  # narrow table header; ``label`` when empty

    def display(self, value: float | None) -> str:
        """``value`` (stored unit) formatted in the display unit, without the unit; ``-`` when missing."""
        if value is None or not math.isfinite(float(value)):
            return "-"
        return format(float(value) * self.display_scale, self.fmt)

    @property
    def axis_label(self) -> str:
        """``latency (µs)``, ``accuracy (%)``; unitless counts show the label alone."""
        return f"{self.label} ({self.display_unit})" if self.display_unit else self.label

    def rounded(self, value: float) -> float:
        """``value`` rounded to :attr:`digits` significant digits (what MLflow shows)."""
        if value == 0 or not math.isfinite(value):
            return value
        return round(value, self.digits - 1 - math.floor(math.log10(abs(value))))


METRICS: tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", "accuracy", "max", "%", 100.0, ".1f", False, "supernet", None, 4,
           "top-1 accuracy of the subnet (inherited supernet weights, batch-norm recalibrated), 0..1", "acc"),
    Metric("hw_accuracy", "hw_accuracy", "accuracy on crossbars", "max", "%", 100.0, ".1f", False, "supernet", None,
           4, "top-1 accuracy under the crossbar non-idealities of the candidate's hardware, 0..1", "hw acc"),
    Metric("latency_ns", "latency", "latency", "min", "µs", 1e-3, ".4g", True, "simulator", "latency_ns", 4,
           "single-image latency through the compiled layer pipeline (ns)"),
    Metric("throughput_ips", "throughput", "throughput", "max", "images/s", 1.0, ".4g", True, "simulator",
           "throughput_ips", 4, "pipelined throughput (images per second)", "thrpt"),
    Metric("energy_uj", "energy", "energy", "min", "µJ", 1.0, ".4g", True, "simulator", "energy_uj", 4,
           "energy per image, every component (µJ)"),
    Metric("area_mm2", "area", "area", "min", "mm²", 1.0, ".4g", False, "simulator", "area_mm2", 4,
           "area of the occupied crossbars and their periphery (mm²)"),
    Metric("edap", "edap", "EDAP", "min", "pJ·ns·mm²", 1.0, ".3g", True, "simulator", "edap", 3,
           "energy x delay x area product (pJ x ns x mm²)"),
    Metric("utilization", "utilization", "crossbar utilization", "max", "%", 100.0, ".1f", False, "simulator",
           "utilization", 4, "used cells / cells of the occupied crossbars, 0..1", "util"),
    Metric("crossbars_used", "crossbars_used", "crossbars", "min", "", 1.0, ".0f", False, "simulator",
           "crossbars_used", 6, "distinct crossbars the compiled plan occupies", "xbars"),
    Metric("min_crossbars", None, "minimum crossbars", "min", "", 1.0, ".0f", False, "simulator", "min_crossbars",
           6, "fewest crossbars that hold every weight once (no duplication)", "min xb"),
)

METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
METRIC_BY_OBJECTIVE: dict[str, Metric] = {m.objective: m for m in METRICS if m.objective is not None}
#: Metric names in display order (the candidates table's metric columns).
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
#: Objective names a config may use.
OBJECTIVE_NAMES: tuple[str, ...] = tuple(METRIC_BY_OBJECTIVE)
#: Objectives that need the supernet (accuracy evaluation); the others come from the simulator alone.
ACCURACY_OBJECTIVES = frozenset(m.objective for m in METRICS if m.source == "supernet" and m.objective)
#: Simulator-derived metric names (read from a compile summary).
SIMULATOR_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.source == "simulator")


def metric(name: str) -> Metric:
    """The metric stored as ``name``; ``KeyError`` names the valid ones."""
    try:
        return METRIC_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; valid metrics: {', '.join(METRIC_NAMES)}") from None


def simulator_metrics(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The simulator metrics of a compile summary (``SimulatorService.simulate``), ``None`` where absent."""
    out: dict[str, float | None] = {}
    for m in SIMULATOR_METRICS:
        value = summary.get(m.summary_key) if m.summary_key else None
        out[m.name] = None if value is None else float(value)
    return out

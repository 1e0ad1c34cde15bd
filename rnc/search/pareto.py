"""Pareto tools: non-dominated masks, Pareto ranks, hypervolume, reference points, objective matrices.

Conventions:

- Every objective is **minimized** (rows are candidates, columns objectives). Maximized metrics such as accuracy
  are negated first (:func:`minimization_matrix` does it from metric records and ``(name, "min"|"max")`` pairs).
- Feasibility: an optional ``violations`` array ``(n, k)`` marks a row feasible when all its values are ``<= 0``
  (the pymoo/Optuna convention). Infeasible rows and rows with a non-finite objective are never on a front,
  have no Pareto rank (``-1``) and add no hypervolume.
- Dominance is weak Pareto dominance: ``a`` dominates ``b`` when ``a <= b`` everywhere and ``a < b`` somewhere.
  Rows with identical objective vectors do not dominate each other, so duplicates are all on the front.
- Non-dominated sorting and hypervolume come from ``moocore`` (the library behind pymoo's ``HV`` indicator):
  ``moocore.is_nondominated(..., keep_weakly=True)``, ``moocore.pareto_rank`` and ``moocore.hypervolume``.
  Hypervolume (Zitzler & Thiele 1998) is the Lebesgue measure of the region dominated by the front and bounded
  by the reference point; points that do not strictly dominate the reference point contribute nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np

SENSES = ("min", "max")


def _as_matrix(F: Sequence[Sequence[float]] | np.ndarray, what: str = "F") -> np.ndarray:
    arr = np.asarray(F, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1) if arr.size else arr.reshape(0, 1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (candidates x objectives), got shape {arr.shape}")
    return arr


def feasible_mask(
    F: Sequence[Sequence[float]] | np.ndarray,
    violations: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> np.ndarray:
    """Rows that count: all objectives finite and, when ``violations`` are given, all violations ``<= 0``."""
    arr = _as_matrix(F)
    mask = np.all(np.isfinite(arr), axis=1)
    if violations is not None:
        g = np.asarray(violations, dtype=float)
        if g.ndim == 1:
            g = g.reshape(-1, 1)
        if g.shape[0] != arr.shape[0]:
            raise ValueError(f"violations has {g.shape[0]} rows but F has {arr.shape[0]}; pass one row per candidate")
        mask &= np.all(np.nan_to_num(g, nan=np.inf) <= 0.0, axis=1)
    return mask


def non_dominated(
    F: Sequence[Sequence[float]] | np.ndarray,
    violations: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of the Pareto front (minimization) among the feasible rows; infeasible rows are ``False``."""
    arr = _as_matrix(F)
    ok = feasible_mask(arr, violations)
    mask = np.zeros(arr.shape[0], dtype=bool)
    if ok.any():
        mask[np.flatnonzero(ok)] = moocore.is_nondominated(arr[ok], keep_weakly=True)
    return mask


def pareto_ranks(
    F: Sequence[Sequence[float]] | np.ndarray,
    violations: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> np.ndarray:
    """Non-dominated sorting rank of every row: 0 for the front, 1 for the front once 0 is removed, ...;
    ``-1`` for infeasible rows and rows with a non-finite objective."""
    arr = _as_matrix(F)
    ok = feasible_mask(arr, violations)
    ranks = np.full(arr.shape[0], -1, dtype=np.int64)
    if ok.any():
        ranks[np.flatnonzero(ok)] = moocore.pareto_rank(arr[ok])
    return ranks


def hypervolume(
    F: Sequence[Sequence[float]] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
    violations: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> float:
    """Hypervolume dominated by the feasible rows of ``F`` and bounded by ``ref`` (minimization); 0 when empty."""
    arr = _as_matrix(F)
    ref_arr = np.asarray(ref, dtype=float).reshape(-1)
    if ref_arr.shape[0] != arr.shape[1]:
        raise ValueError(f"reference point has {ref_arr.shape[0]} values but F has {arr.shape[1]} objectives")
    if not np.all(np.isfinite(ref_arr)):
        raise ValueError(f"reference point must be finite, got {ref_arr.tolist()}")
    ok = feasible_mask(arr, violations)
    pts = arr[ok]
    pts = pts[np.all(pts < ref_arr, axis=1)]
    if len(pts) == 0:
        return 0.0
    return float(moocore.hypervolume(pts, ref=ref_arr))


def hypervolume_curve(
    F: Sequence[Sequence[float]] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
    violations: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> np.ndarray:
    """Hypervolume of the first ``i`` rows for ``i = 1 .. n`` (rows in evaluation order): the search-quality curve
    "hypervolume against evaluations". Recomputed only when a row joins the front."""
    arr = _as_matrix(F)
    ok = feasible_mask(arr, violations)
    ref_arr = np.asarray(ref, dtype=float).reshape(-1)
    curve = np.zeros(arr.shape[0])
    front = np.zeros((0, arr.shape[1]))
    value = 0.0
    for i in range(arr.shape[0]):
        row = arr[i]
        if ok[i] and np.all(row < ref_arr) and not _weakly_dominated(row, front):
            keep = ~np.all(row <= front, axis=1) if len(front) else np.zeros(0, dtype=bool)
            front = np.vstack([front[keep], row])
            value = float(moocore.hypervolume(front, ref=ref_arr))
        curve[i] = value
    return curve


def _weakly_dominated(row: np.ndarray, front: np.ndarray) -> bool:
    return bool(len(front)) and bool(np.any(np.all(front <= row, axis=1)))


def reference_point(
    F: Sequence[Sequence[float]] | np.ndarray,
    violations: Sequence[Sequence[float]] | np.ndarray | None = None,
    *,
    margin: float = 0.1,
) -> np.ndarray:
    """A reference point for hypervolume: the nadir (worst value per objective) of the feasible rows pushed out by
    ``margin`` times the objective's range (or ``margin * max(1, |nadir|)`` where the range is 0).

    Compare searchers with one reference point computed from the union of everything they found (or from known
    bounds), never with one per searcher."""
    arr = _as_matrix(F)
    ok = feasible_mask(arr, violations)
    if not ok.any():
        raise ValueError("no feasible row with finite objectives: a reference point cannot be derived; pass one")
    pts = arr[ok]
    nadir, ideal = pts.max(axis=0), pts.min(axis=0)
    span = nadir - ideal
    span = np.where(span > 0, span, np.maximum(1.0, np.abs(nadir)))
    return nadir + margin * span


def normalize(
    F: Sequence[Sequence[float]] | np.ndarray,
    ideal: Sequence[float] | np.ndarray,
    nadir: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Scale objectives so that ``ideal`` maps to 0 and ``nadir`` to 1 (objectives with ``nadir == ideal`` are
    only shifted). Hypervolumes of normalized fronts with reference ``[1.1] * m`` compare across problems."""
    arr = _as_matrix(F)
    lo, hi = np.asarray(ideal, dtype=float), np.asarray(nadir, dtype=float)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (arr - lo) / span


def minimization_matrix(
    records: Sequence[Mapping[str, float | None]],
    objectives: Sequence[tuple[str, str]],
) -> np.ndarray:
    """``(n, m)`` matrix to minimize from metric records: ``objectives`` are ``(metric, "min"|"max")`` pairs and
    ``"max"`` columns are negated. Missing or ``None`` metrics become ``NaN`` (never on a front)."""
    for name, sense in objectives:
        if sense not in SENSES:
            raise ValueError(f"objective {name!r}: sense must be one of {list(SENSES)}, got {sense!r}")
    out = np.full((len(records), len(objectives)), np.nan)
    for i, record in enumerate(records):
        for j, (name, sense) in enumerate(objectives):
            value = record.get(name)
            if value is not None:
                out[i, j] = -float(value) if sense == "max" else float(value)
    return out


__all__ = [
    "feasible_mask",
    "hypervolume",
    "hypervolume_curve",
    "minimization_matrix",
    "non_dominated",
    "normalize",
    "pareto_ranks",
    "reference_point",
]

"""Pareto fronts of a launch: computed from its candidates, printed as rich tables, plotted (PNG and HTML), and
read back from MLflow for ``rnc-platform report``.

Fronts (``rnc.search.pareto.non_dominated``: weak dominance over the minimized objectives, infeasible candidates
excluded, equal objective vectors all kept):

- per budget: over every feasible candidate of that crossbar budget, all searchers together (column
  ``pareto_budget``);
- across budgets: over every feasible candidate of the launch (column ``pareto_global``) -- which budget buys
  which trade-off.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from rnc.errors import UserError


class ReportError(UserError, LookupError):
    """A launch that cannot be found or read back from the tracking store; the message says what to do."""


#: Metric columns of the candidates table, in display order.
METRIC_COLUMNS = (
    "accuracy",
    "hw_accuracy",
    "latency_ns",
    "throughput_ips",
    "energy_uj",
    "area_mm2",
    "edap",
    "utilization",
    "crossbars_used",
)

ObjectiveSpec = tuple[str, str]  # (metric, "min" | "max")


def candidates_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per candidate: identity, genes (``gene.<name>``), metrics, feasibility, violations."""
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "candidate_id": r["candidate_id"],
            "trial": r["trial"],
            "searcher": r["searcher"],
            "budget": int(r["budget"]),
            "generation": int(r["generation"]),
            "index": int(r["index"]),
            "genome_key": r["genome_key"],
            "genome": json.dumps(r["genome"]),
            "feasible": bool(r["feasible"]),
        }
        for metric in METRIC_COLUMNS:
            value = r.get(metric)
            row[metric] = float(value) if value is not None else math.nan
        for name, value in r.get("violations", {}).items():
            row[f"violation.{name}"] = float(value)
        for name, value in r.get("genes", {}).items():
            row[f"gene.{name}"] = value if isinstance(value, int | float | str | bool) else json.dumps(value)
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["budget", "searcher", "index"], kind="stable").reset_index(drop=True)
    return df


def objective_matrix(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec]) -> np.ndarray:
    """The minimized objective matrix of ``df`` (maximized metrics negated)."""
    cols = []
    for metric, goal in objectives:
        values = df[metric].to_numpy(dtype=float)
        cols.append(-values if goal == "max" else values)
    return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def compute_fronts(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec]) -> pd.DataFrame:
    """``df`` with boolean columns ``pareto_budget`` and ``pareto_global``."""
    from rnc.search.pareto import non_dominated

    out = df.copy()
    out["pareto_budget"] = False
    out["pareto_global"] = False
    if out.empty:
        return out
    F = objective_matrix(out, objectives)
    feasible = out["feasible"].to_numpy(dtype=bool)
    violations = np.where(feasible, 0.0, 1.0).reshape(-1, 1)
    out["pareto_global"] = non_dominated(F, violations)
    for _budget, idx in out.groupby("budget").groups.items():
        rows = np.asarray(list(idx))
        out.loc[rows, "pareto_budget"] = non_dominated(F[rows], violations[rows])
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def front_tables(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], *, max_rows: int = 20) -> list[Table]:
    """Rich tables: the front of every budget, then the front across budgets (sorted by the first objective).

    One row per network and budget: a searcher may evaluate one network more than once (a Bayesian sampler
    re-proposing it, genomes differing only in genes of absent stages share one ``genome_key``); every
    evaluation stays in ``candidates.csv`` and MLflow, the title counts both."""
    metrics = [m for m, _ in objectives]
    extra = [m for m in ("crossbars_used", "utilization") if m not in metrics]
    tables = []
    groups = [
        (f"Pareto front, budget {b if b else 'unlimited'} crossbars", df[(df.budget == b) & df.pareto_budget])
        for b in sorted(df.budget.unique())
    ]
    groups.append(("Pareto front across budgets", df[df.pareto_global]))
    first_metric, first_goal = objectives[0]
    for title, front in groups:
        front = front.sort_values(first_metric, ascending=first_goal == "min", kind="stable")
        evaluations = len(front)
        front = front.drop_duplicates(["budget", "genome_key"])
        count = f"{len(front)} networks" + (f", {evaluations} candidates" if evaluations != len(front) else "")
        table = Table(title=f"{title} ({count})", title_justify="left")
        table.add_column("candidate", no_wrap=True, min_width=14)
        table.add_column("budget", justify="right", no_wrap=True, min_width=6)
        for m, g in objectives:
            table.add_column(f"{m} {'↓' if g == 'min' else '↑'}", justify="right", no_wrap=True, min_width=9)
        for m in extra:
            table.add_column(m, justify="right", no_wrap=True, min_width=6)
        table.add_column("genome", overflow="ellipsis", no_wrap=True, max_width=24)
        for _, row in front.head(max_rows).iterrows():
            table.add_row(
                row.candidate_id,
                str(row.budget),
                *[_fmt(float(row[m])) for m in metrics],
                *[_fmt(float(row[m])) for m in extra],
                _short(row.genome_key),
            )
        if len(front) > max_rows:
            table.caption = f"{len(front) - max_rows} more in candidates.csv"
        tables.append(table)
    return tables


def plot_fronts(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec]) -> dict[str, bytes]:
    """Front plots as ``{artifact path: content}``: ``plots/front_budget_<b>.png/.html`` per budget and
    ``plots/front_all_budgets.png/.html`` (matplotlib PNG, plotly interactive HTML with the genes on hover)."""
    files: dict[str, bytes] = {}
    for budget in sorted(df.budget.unique()):
        sub = df[df.budget == budget]
        name = f"front_budget_{budget if budget else 'unlimited'}"
        title = f"Budget {budget if budget else 'unlimited'} crossbars"
        files[f"plots/{name}.png"] = _png(sub, objectives, "pareto_budget", "searcher", title)
        files[f"plots/{name}.html"] = _html(sub, objectives, "pareto_budget", "searcher", title)
    files["plots/front_all_budgets.png"] = _png(df, objectives, "pareto_global", "budget", "All budgets")
    files["plots/front_all_budgets.html"] = _html(df, objectives, "pareto_global", "budget", "All budgets")
    return files


def _pairs(objectives: Sequence[ObjectiveSpec]) -> list[tuple[int, int]]:
    m = len(objectives)
    return [(i, j) for i in range(m) for j in range(i + 1, m)][:6]


def _png(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], front_col: str, color_col: str, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = _pairs(objectives)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.2), squeeze=False)
    feasible = df[df.feasible]
    groups = sorted(feasible[color_col].unique(), key=str)
    cmap = plt.get_cmap("tab10")
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        (mx, gx), (my, gy) = objectives[i], objectives[j]
        infeasible = df[~df.feasible]
        ax.scatter(infeasible[mx], infeasible[my], s=8, c="lightgrey", marker="x", label="infeasible")
        for k, group in enumerate(groups):
            part = feasible[feasible[color_col] == group]
            ax.scatter(part[mx], part[my], s=10, alpha=0.35, color=cmap(k % 10))
            front = part[part[front_col]].sort_values(mx)
            ax.scatter(front[mx], front[my], s=36, color=cmap(k % 10), edgecolors="black", label=f"{group} front")
        ax.set_xlabel(f"{mx} ({gx})")
        ax.set_ylabel(f"{my} ({gy})")
        if mx in ("latency_ns", "energy_uj", "edap", "throughput_ips"):
            ax.set_xscale("log")
        if my in ("latency_ns", "energy_uj", "edap", "throughput_ips"):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _html(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], front_col: str, color_col: str, title: str) -> bytes:
    import plotly.express as px

    data = df.copy()
    data["status"] = np.where(~data.feasible, "infeasible", np.where(data[front_col], "front", "dominated"))
    data[color_col] = data[color_col].astype(str)
    metrics = [m for m, _ in objectives]
    hover = ["candidate_id", "genome_key", *[c for c in data.columns if c.startswith("gene.")][:12]]
    if len(metrics) == 2:
        fig = px.scatter(
            data, x=metrics[0], y=metrics[1], color=color_col, symbol="status", hover_data=hover, title=title
        )
    else:
        fig = px.scatter_matrix(
            data, dimensions=metrics, color=color_col, symbol="status", hover_data=hover, title=title
        )
    return fig.to_html(include_plotlyjs="cdn", full_html=True).encode()


def print_fronts(
    df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], console: Console, *, max_rows: int = 20
) -> None:
    for table in front_tables(df, objectives, max_rows=max_rows):
        console.print(table)


def mlflow_ui_command(tracking_uri: str) -> str:
    """The exact command that opens the launch in the MLflow UI."""
    return f"mlflow ui --backend-store-uri {tracking_uri}"


# -- reading a finished launch back from MLflow -------------------------------------------------------------
def find_launch_run(tracking_uri: str, run: str | None = None) -> Any:
    """The launch run ``run`` (a run id, a run name or a launch id), or the latest launch in the store."""
    from mlflow import MlflowClient

    from rnc.platform.tracking import TAG_KIND, TAG_LAUNCH

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        raise ReportError(f"no MLflow experiments in {tracking_uri!r}; run `rnc-platform launch` first")
    base = f"tags.`{TAG_KIND}` = 'launch'"
    if run is None:
        runs = client.search_runs(experiments, base, order_by=["attributes.start_time DESC"], max_results=1)
    else:
        # matched here, not in the filter string: a name may hold any character (quotes included)
        launches = client.search_runs(experiments, base, order_by=["attributes.start_time DESC"])
        runs = []
        for matches in (
            lambda r: r.info.run_id == run,
            lambda r: r.info.run_name == run,
            lambda r: r.data.tags.get(TAG_LAUNCH) == run,
        ):
            runs = [r for r in launches if matches(r)]
            if runs:
                break
    if not runs:
        what = "launch" if run is None else f"launch matching {run!r} (a run id, run name or launch id)"
        raise ReportError(
            f"{tracking_uri!r} holds no {what}; list launches with `mlflow ui --backend-store-uri {tracking_uri}`"
        )
    return runs[0]


def load_launch(tracking_uri: str, run: str | None = None) -> tuple[Any, pd.DataFrame, list[ObjectiveSpec]]:
    """A finished launch's run, its candidates table (``candidates.parquet`` artifact) and its objectives."""
    import os
    import tempfile

    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    launch = find_launch_run(tracking_uri, run)
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(launch.info.run_id, "candidates.parquet", tmp)
        except Exception as exc:
            raise ReportError(
                f"launch run {launch.info.run_id} has no candidates.parquet artifact (did the launch finish? "
                f"resume it with `rnc-platform launch CONFIG --resume`): {exc}"
            ) from None
        df = pd.read_parquet(path)
        summary_path = client.download_artifacts(launch.info.run_id, "summary.json", tmp)
        summary = json.loads(Path(summary_path).read_text())
    objectives = [(o[0], o[1]) for o in summary["objectives"]]
    return launch, df, objectives

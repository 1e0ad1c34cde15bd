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
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from rnc.errors import UserError
from rnc.platform.metrics import METRIC_BY_NAME
from rnc.platform.records import Candidate


class ReportError(UserError, LookupError):
    """A launch that cannot be found or read back from the tracking store; the message says what to do."""


ObjectiveSpec = tuple[str, str]  # (metric name, "min" | "max")

#: Shown in the front tables besides the objectives.
EXTRA_COLUMNS = ("crossbars_used", "utilization")


def candidates_frame(candidates: Sequence[Candidate]) -> pd.DataFrame:
    """One row per candidate (:meth:`Candidate.to_row`), sorted by budget, searcher and index."""
    df = pd.DataFrame([c.to_row() for c in candidates])
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


def front_networks(front: pd.DataFrame) -> pd.DataFrame:
    """A front with each network listed once per budget (the first candidate that evaluated it): two searchers
    of one budget may both find a network; each evaluation stays in ``candidates.csv`` and MLflow."""
    key = "network_key" if "network_key" in front.columns else "candidate_id"
    return front.drop_duplicates(["budget", key])


def _short_id(candidate_id: str) -> str:
    """``nsga2-b96/00012`` -> ``nsga2/12``: the trial's searcher and the index (the budget has its own column)."""
    trial, _, index = candidate_id.rpartition("/")
    searcher = trial.rsplit("-b", 1)[0] if "-b" in trial else trial
    return f"{searcher}/{int(index)}" if index.isdigit() else candidate_id


def _budget_text(budget: int) -> str:
    return f"{budget}" if budget else "unlimited"


def _header(metric: str, goal: str | None = None) -> str:
    """Two lines: the metric's short name, then its display unit and direction (``↓`` lower is better)."""
    m = METRIC_BY_NAME[metric]
    arrow = "" if goal is None else ("↓" if goal == "min" else "↑")
    return f"{m.short or m.label}\n{m.display_unit} {arrow}".rstrip()


def front_tables(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], *, max_rows: int = 20) -> list[Table]:
    """Rich tables: the front of every budget, then the front across budgets (sorted by the first objective),
    each network once per budget (:func:`front_networks`), values in the metric table's display units. The
    tables fit 80 columns: numbers keep their width and the ``network`` column wraps."""
    metrics = [m for m, _ in objectives]
    extra = [m for m in EXTRA_COLUMNS if m not in metrics and m in df.columns]
    groups = [
        (f"Pareto front, budget {_budget_text(b)} crossbars", df[(df.budget == b) & df.pareto_budget], False)
        for b in sorted(df.budget.unique())
    ]
    groups.append(("Pareto front across budgets", df[df.pareto_global], True))
    first_metric, first_goal = objectives[0]
    tables = []
    for title, front, show_budget in groups:
        front = front.sort_values(first_metric, ascending=first_goal == "min", kind="stable")
        evaluations = len(front)
        front = front_networks(front)
        count = f"{len(front)} networks" + (f", {evaluations} candidates" if evaluations != len(front) else "")
        table = Table(
            title=f"{title} ({count})", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
        )
        table.add_column("candidate", no_wrap=True)
        if show_budget:
            table.add_column("budget", justify="right", no_wrap=True)
        for m, g in objectives:
            table.add_column(_header(m, g), justify="right", no_wrap=True)
        for m in extra:
            table.add_column(_header(m), justify="right", no_wrap=True)
        table.add_column("network", overflow="fold", min_width=8, ratio=1)
        for _, row in front.head(max_rows).iterrows():
            cells = [_short_id(str(row.candidate_id))]
            if show_budget:
                cells.append(_budget_text(int(row.budget)))
            cells += [METRIC_BY_NAME[m].display(float(row[m])) for m in [*metrics, *extra]]
            cells.append(str(row.get("label", row.get("network_key", ""))))
            table.add_row(*cells)
        if len(front) > max_rows:
            table.caption = f"{len(front) - max_rows} more in candidates.csv"
        tables.append(table)
    return tables


def print_fronts(
    df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], console: Console, *, max_rows: int = 20
) -> None:
    for table in front_tables(df, objectives, max_rows=max_rows):
        console.print(table)
    console.print(
        "[dim]↓ lower is better, ↑ higher is better; candidate = <searcher>/<index> of its trial; network = its "
        "shape (mbv3: blocks per stage, mean kernel, mean expansion). HV (progress) = hypervolume of a trial's "
        "feasible candidates, objectives normalized per budget: 0 = nothing, higher is better.[/]"
    )


# -- plots ------------------------------------------------------------------------------------------------------
def plot_fronts(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec]) -> dict[str, bytes]:
    """Front plots as ``{artifact path: content}``: ``plots/front_budget_<b>.png/.html`` per budget and
    ``plots/front_all_budgets.png/.html`` (matplotlib PNG; self-contained plotly HTML, plotly.js inline, that
    works offline, with the network and its genes on hover)."""
    files: dict[str, bytes] = {}
    for budget in sorted(df.budget.unique()):
        sub = df[df.budget == budget]
        name = f"front_budget_{_budget_text(int(budget))}"
        title = f"Budget {_budget_text(int(budget))} crossbars"
        files[f"plots/{name}.png"] = _png(sub, objectives, "pareto_budget", "searcher", title)
        files[f"plots/{name}.html"] = _html(sub, objectives, "pareto_budget", "searcher", title)
    files["plots/front_all_budgets.png"] = _png(df, objectives, "pareto_global", "budget", "All budgets")
    files["plots/front_all_budgets.html"] = _html(df, objectives, "pareto_global", "budget", "All budgets")
    return files


def _pairs(objectives: Sequence[ObjectiveSpec]) -> list[tuple[int, int]]:
    m = len(objectives)
    return [(i, j) for i in range(m) for j in range(i + 1, m)][:6]


def _axis(ax: Any, which: str, metric: str, goal: str) -> None:
    """Label with unit and direction; log scale where the table says so, with plain-number ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    m = METRIC_BY_NAME[metric]
    label = f"{m.axis_label}, {'lower' if goal == 'min' else 'higher'} is better"
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_label_text(label)
    if m.log_scale:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v * m.display_scale)))
    if which == "x":
        for tick in ax.get_xticklabels():
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")


def _tick(value: float) -> str:
    """Plain numbers on axes: ``1,000`` not ``1e+03``, ``0.5`` not ``5x10^-1``."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 1 or value == 0 else f"{value:.2g}"


def _png(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], front_col: str, color_col: str, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pairs = _pairs(objectives)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.6), squeeze=False)
    feasible = df[df.feasible]
    groups = sorted(feasible[color_col].unique(), key=str)
    cmap = plt.get_cmap("tab10")
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        (mx, gx), (my, gy) = objectives[i], objectives[j]
        infeasible = df[~df.feasible]
        ax.scatter(infeasible[mx], infeasible[my], s=8, c="lightgrey", marker="x")
        for k, group in enumerate(groups):
            part = feasible[feasible[color_col] == group]
            ax.scatter(part[mx], part[my], s=10, alpha=0.35, color=cmap(k % 10))
            front = part[part[front_col]].sort_values(mx)
            ax.scatter(front[mx], front[my], s=36, color=cmap(k % 10), edgecolors="black")
        _axis(ax, "x", mx, gx)
        _axis(ax, "y", my, gy)
        ax.grid(True, which="major", alpha=0.3)
    what = "searcher" if color_col == "searcher" else "budget (crossbars)"
    handles = [
        Line2D([], [], ls="", marker="o", ms=6, color=cmap(k % 10), mec="black", label=f"{what} {g}: front")
        for k, g in enumerate(groups)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", ms=4, color="grey", alpha=0.35, label="dominated (faint, same colours)"),
        Line2D([], [], ls="", marker="x", ms=4, color="lightgrey", label="infeasible (misses a constraint)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _html(df: pd.DataFrame, objectives: Sequence[ObjectiveSpec], front_col: str, color_col: str, title: str) -> bytes:
    import plotly.express as px

    data = df.copy()
    data["status"] = np.where(~data.feasible, "infeasible", np.where(data[front_col], "front", "dominated"))
    data[color_col] = data[color_col].astype(str)
    labels = {}
    for metric, _ in objectives:
        m = METRIC_BY_NAME[metric]
        data[metric] = data[metric] * m.display_scale
        labels[metric] = m.axis_label
    metrics = [m for m, _ in objectives]
    hover = [c for c in ("candidate_id", "label", "network_key") if c in data.columns]
    hover += [c for c in data.columns if c.startswith("gene.")][:12]
    if len(metrics) == 2:
        fig = px.scatter(
            data, x=metrics[0], y=metrics[1], color=color_col, symbol="status", hover_data=hover, title=title,
            labels=labels, log_x=METRIC_BY_NAME[metrics[0]].log_scale, log_y=METRIC_BY_NAME[metrics[1]].log_scale,
        )
    else:
        fig = px.scatter_matrix(
            data, dimensions=metrics, color=color_col, symbol="status", hover_data=hover, title=title, labels=labels
        )
    return fig.to_html(include_plotlyjs=True, full_html=True).encode()


def mlflow_ui_command(tracking_uri: str) -> str:
    """A command that opens the store in the MLflow UI without activating any environment: the ``mlflow``
    executable next to this Python interpreter (its virtualenv), by absolute path."""
    exe = Path(sys.executable).with_name("mlflow")
    program = str(exe) if exe.exists() else f"{sys.executable} -m mlflow"
    return f"{program} ui --backend-store-uri {shlex.quote(tracking_uri)}"


def mlflow_runs_url(
    experiment_id: str,
    host: str = "http://127.0.0.1:5000",
    *,
    search_filter: str | None = None,
    order_by_metric: str | None = None,
) -> str:
    """A link into the MLflow 3 UI's runs view of an experiment (classic machine-learning view, not GenAI):
    optionally filtered (``search_filter``, MLflow search syntax) and sorted by a metric (``searchFilter``,
    ``orderByKey``, ``orderByAsc``: the query parameters the UI itself keeps in its URL)."""
    from urllib.parse import urlencode

    query: dict[str, str] = {"workflowType": "machine_learning"}
    if search_filter:
        query["searchFilter"] = search_filter
    if order_by_metric:
        query["orderByKey"] = f"metrics.`{order_by_metric}`"
        query["orderByAsc"] = "true" if METRIC_BY_NAME[order_by_metric].goal == "min" else "false"
    return f"{host}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def mlflow_links(experiment_id: str, objectives: Sequence[ObjectiveSpec], host: str = "http://127.0.0.1:5000") -> str:
    """The lines a launch or report prints: the front members of every budget sorted by the first objective, and
    every run. (Charts: docs/platform.md shows the clicks; MLflow 3 takes no chart set-up from a link.)"""
    front = "metrics.pareto_budget = 1"
    table = mlflow_runs_url(experiment_id, host, search_filter=front, order_by_metric=objectives[0][0])
    return f"fronts: {table}\nevery run: {mlflow_runs_url(experiment_id, host)}"


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
            f"{tracking_uri!r} holds no {what}; list launches with `{mlflow_ui_command(tracking_uri)}`"
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


def log_candidate_plan(tracking_uri: str, launch: Any, df: pd.DataFrame, candidate_id: str) -> dict[str, Any]:
    """Compile one candidate of a finished launch again (its genome on its budget's hardware, the launch's
    strategy and seed, from the launch's ``config.yaml``), attach the plan to the candidate's run as ``plan.json``
    and return it (``CompileResult.to_dict()`` plus the candidate's identity). Raises ``LookupError`` when the
    launch holds no such candidate."""
    import tempfile

    import yaml
    from mlflow import MlflowClient

    from rnc.platform.config import validate_config
    from rnc.platform.tracking import TAG_CANDIDATE
    from rnc.search.spaces import get_space
    from rnc.simulator import compile_workload

    rows = df[df.candidate_id == candidate_id]
    if rows.empty:
        raise ReportError(f"--plan {candidate_id!r}: no such candidate in this launch (see candidates.csv)")
    row = rows.iloc[0]
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = client.download_artifacts(launch.info.run_id, "config.yaml", tmp)
        config = validate_config(yaml.safe_load(Path(config_path).read_text()), where="the launch's config.yaml")
    space = get_space(config.space.name, **config.space.options)
    genome = np.asarray(json.loads(row.genome), dtype=np.int64)
    hw = space.hardware_for(genome, config.hardware.for_budget(int(row.budget)))
    result = compile_workload(space.workload(genome), hw, config.search.strategy, seed=config.seed)
    plan = {"candidate_id": candidate_id, "network_key": row.network_key, "budget": int(row.budget),
            "plan": result.to_dict()}
    runs = client.search_runs([launch.info.experiment_id], f"tags.`{TAG_CANDIDATE}` = '{candidate_id}'")
    if runs:
        client.log_dict(runs[0].info.run_id, plan, "plan.json")
    return plan

"""One launch, end to end (``rnc-platform launch``).

1. Read the config; connect to Ray (``address``: ``auto``, ``ray://host:port``, or none for a local embedded Ray
   sized for this machine) and check the storage and tracking settings for multi-node use
   (:func:`rnc.platform.cluster.check_multinode_settings`).
2. Make sure the supernet checkpoint exists when accuracy is needed (trained in a Ray task on first use and
   cached by a hash of what determines it).
3. Start the named ``TrackingWriter``, ``SimulatorService`` and ``SupernetEvaluator`` actors.
4. Derive the hypervolume bounds per budget from ``search.reference_samples`` random genomes.
5. Run the Ray Tune ``Tuner`` (one trial per searcher x budget), showing rich progress.
6. Compute the Pareto fronts per budget and across budgets, tag them in MLflow, log the artifacts (candidates as
   CSV and Parquet, front plots as PNG and HTML, the best genomes with their compiled mapping plans as JSON) and
   print the fronts with the command that opens the MLflow UI.

A launch is identified by its launch id (``<name>-<YYYYmmdd-HHMMSS>-<hex>``); ``<storage_path>/<name>/latest.json``
records the latest one so that ``--resume`` finds it. Tune state lives in ``<storage_path>/<name>/<launch id>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rnc.platform.config import (
    ACCURACY_OBJECTIVES,
    ExperimentConfig,
    absolute_path,
    absolute_tracking_uri,
)
from rnc.platform.report import candidates_frame, compute_fronts, mlflow_ui_command, plot_fronts, print_fronts
from rnc.platform.tracking import TAG_PARETO_BUDGET, TAG_PARETO_GLOBAL

PACKAGES = ("rnc-platform", "ray", "mlflow", "torch", "numpy", "numba", "pymoo", "optuna", "pydantic")


class LaunchError(RuntimeError):
    """A launch that could not run or finish; the message says what failed and what to do."""


@dataclass
class LaunchResult:
    """What a finished launch produced."""

    launch_id: str
    experiment_name: str
    tracking_uri: str
    launch_run_id: str
    experiment_path: str
    candidates: pd.DataFrame
    objectives: list[tuple[str, str]]
    wall_s: float
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def global_front(self) -> pd.DataFrame:
        return self.candidates[self.candidates.pareto_global]

    def budget_front(self, budget: int) -> pd.DataFrame:
        df = self.candidates
        return df[(df.budget == budget) & df.pareto_budget]


def config_hash(config: ExperimentConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def provenance_tags() -> dict[str, str]:
    """Git revision (of the working directory when it is a repository, else of the installed ``rnc`` sources) and
    versions of the main packages."""
    import rnc

    tags: dict[str, str] = {}
    for where in (Path.cwd(), Path(rnc.__file__).resolve().parent):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            git = ["git", "-C", str(where)]
            rev = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
            if rev.returncode == 0:
                dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, timeout=10)
                tags["mlflow.source.git.commit"] = rev.stdout.strip()
                tags["git.dirty"] = str(bool(dirty.stdout.strip())).lower()
                tags["git.repository"] = str(where)
                break
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            tags[f"version.{package}"] = metadata.version(package)
    tags["python"] = sys.version.split()[0]
    return tags


# -- Ray ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def ray_session(address: str | None, *, local_cpus: int | None = None) -> Iterator[bool]:
    """Connect to Ray; yields whether this call started it (and then shuts it down on exit).

    ``address`` ``None``: a local embedded Ray with ``local_cpus`` logical CPUs (or reuse one already running in
    this process); ``auto`` or ``ray://host:port``: an existing cluster.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    if address is None:
        ray.init(num_cpus=local_cpus, include_dashboard=False, log_to_driver=True, configure_logging=False)
    else:
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as exc:
            raise LaunchError(
                f"--address {address!r}: cannot connect to a Ray cluster ({exc}); start one with `ray start --head` "
                "or leave --address out for a local embedded Ray"
            ) from None
    try:
        yield True
    finally:
        ray.shutdown()


# -- launch bookkeeping --------------------------------------------------------------------------------------
def _launch_record_path(storage_path: Path, name: str) -> Path:
    return storage_path / name / "latest.json"


def _new_launch(config: ExperimentConfig, storage_path: Path) -> dict[str, Any]:
    launch_id = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    record = {"launch_id": launch_id, "config": config.model_dump(mode="json"), "config_hash": config_hash(config)}
    path = _launch_record_path(storage_path, config.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return record


def _resumed_launch(config: ExperimentConfig, storage_path: Path) -> dict[str, Any]:
    path = _launch_record_path(storage_path, config.name)
    if not path.is_file():
        raise LaunchError(
            f"--resume: no launch of {config.name!r} under {storage_path} (looked for {path}); "
            "start one without --resume"
        )
    record = json.loads(path.read_text())
    if record["config_hash"] != config_hash(config):
        raise LaunchError(
            f"--resume: the config differs from the one launch {record['launch_id']} started with "
            f"(saved in {path}); resume with the same config and seed, or start a new launch without --resume"
        )
    return record


# -- hypervolume bounds --------------------------------------------------------------------------------------
def objective_bounds(
    config: ExperimentConfig, space: Any, pools: Any, hw_for_budget: dict[int, Any]
) -> dict[int, list[tuple[float, float]]]:
    """Per budget, ``(ideal, nadir)`` of every minimized objective, from ``search.reference_samples`` seeded
    random genomes simulated on the budget's hardware; accuracy objectives use their natural range 0..1."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2**31 - 1]))
    genomes = [space.sample(rng) for _ in range(config.search.reference_samples)]
    bounds: dict[int, list[tuple[float, float]]] = {}
    for budget, hw in hw_for_budget.items():
        sims = pools.simulate(genomes, hw)
        per_objective = []
        for objective in config.objectives:
            if objective.name in ACCURACY_OBJECTIVES:
                per_objective.append((-1.0, 0.0) if objective.goal == "max" else (0.0, 1.0))
                continue
            values = np.array(
                [objective.sign * float(s[objective.metric]) for s in sims if s.get(objective.metric) is not None],
                dtype=float,
            )
            values = values[np.isfinite(values)]
            if values.size == 0:
                raise LaunchError(
                    f"objective {objective.name!r}: the simulator returned no finite {objective.metric!r} for "
                    f"{len(genomes)} random genomes at budget {budget}; check the hardware config"
                )
            lo, hi = float(values.min()), float(values.max())
            span = hi - lo if hi > lo else max(1.0, abs(hi))
            per_objective.append((lo - 0.05 * span, hi + 0.05 * span))
        bounds[budget] = per_objective
    return bounds


def searcher_options(name: str, options: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """The searcher's options; NSGA-II's population defaults to the batch size, so a batch is a generation."""
    if name == "nsga2" and "pop_size" not in options:
        return {**options, "pop_size": int(batch_size)}
    return dict(options)


def trial_plans(
    config: ExperimentConfig,
    *,
    launch_id: str,
    simulators: list[str],
    evaluators: list[str],
    tracker: str,
    bounds: dict[int, list[tuple[float, float]]],
) -> list[dict[str, Any]]:
    """The plain-data plan of every trial (``param_space`` of the Tuner; restored with it on resume)."""
    from rnc.platform.tuning import trial_key, trial_seed

    plans = []
    for index, (searcher, budget) in enumerate(config.grid()):
        plans.append(
            {
                "key": trial_key(searcher.name, budget),
                "index": index,
                "launch_id": launch_id,
                "searcher": searcher.name,
                "searcher_options": searcher_options(searcher.name, searcher.options, config.search.batch_size),
                "budget": int(budget),
                "seed": trial_seed(config.seed, index),
                "eval_seed": int(config.seed),
                "space": config.space.name,
                "space_options": dict(config.space.options),
                "hardware": config.hardware.for_budget(budget).model_dump(mode="json"),
                "objectives": [{"name": o.name, "metric": o.metric, "sign": o.sign} for o in config.objectives],
                "constraints": config.constraint_names,
                "fit_budget": config.constraints.fit_budget,
                "min_accuracy": config.constraints.min_accuracy,
                "max_latency_ns": config.constraints.max_latency_ns,
                "needs_accuracy": config.needs_accuracy,
                "needs_hw_accuracy": config.needs_hw_accuracy,
                "evaluations": config.search.evaluations,
                "batch_size": config.search.batch_size,
                "bounds": [list(b) for b in bounds[budget]],
                "simulators": simulators,
                "evaluators": evaluators,
                "tracker": tracker,
            }
        )
    return plans


# -- the launch ------------------------------------------------------------------------------------------------
def run_launch(
    config: ExperimentConfig,
    *,
    address: str | None = None,
    resume: bool = False,
    console: Console | None = None,
    local_cpus: int | None = None,
    show_progress: bool = True,
) -> LaunchResult:
    """Run (or resume) one launch; see the module docstring. ``local_cpus`` sizes a local embedded Ray."""
    import ray

    from rnc.platform import cluster
    from rnc.platform.actors import ActorPools, default_pool_sizes, local_cpu_count, start_pools
    from rnc.platform.tracking import start_tracking_writer, tracking_actor_name
    from rnc.platform.tuning import PROGRESS_SINKS, build_tuner, load_checkpoint_candidates, restore_tuner
    from rnc.search.searchers import SEARCHERS
    from rnc.search.spaces import get_space

    console = console or Console()
    t_start = time.perf_counter()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the rich progress below replaces Tune's console output
    for searcher in config.searchers:
        if searcher.name not in SEARCHERS:
            raise LaunchError(f"searchers: unknown searcher {searcher.name!r}; valid names: {sorted(SEARCHERS)}")
    space = get_space(config.space.name, **config.space.options)
    storage_path = absolute_path(config.storage_path)
    tracking_uri = absolute_tracking_uri(config.tracking_uri)
    cache_dir = absolute_path(config.supernet.cache_dir)
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    record = _resumed_launch(config, storage_path) if resume else _new_launch(config, storage_path)
    launch_id = record["launch_id"]
    experiment_dir = storage_path / config.name
    experiment_path = experiment_dir / launch_id
    hw_for_budget = {b: config.hardware.for_budget(b) for b in config.hardware.budgets}
    n_trials = len(config.grid())

    cpus = local_cpus or local_cpu_count()
    sizes_local = default_pool_sizes(
        {"CPU": cpus},
        needs_accuracy=config.needs_accuracy,
        simulators=config.pools.simulators,
        evaluators=config.pools.evaluators,
        simulator_cpus=config.pools.simulator_cpus,
        evaluator_cpus=config.pools.evaluator_cpus,
    )
    need = (
        sizes_local.simulators * sizes_local.simulator_cpus
        + sizes_local.evaluators * sizes_local.evaluator_cpus
        + n_trials * config.pools.trial_cpus
    )
    local_logical = max(cpus, math.ceil(need))

    with ray_session(address, local_cpus=local_logical):
        cluster.check_multinode_settings(
            storage_path=str(storage_path), tracking_uri=tracking_uri, supernet_cache_dir=str(cache_dir)
        )
        resources = ray.cluster_resources()
        sizes = default_pool_sizes(
            resources,
            needs_accuracy=config.needs_accuracy,
            simulators=config.pools.simulators,
            evaluators=config.pools.evaluators,
            simulator_cpus=config.pools.simulator_cpus,
            evaluator_cpus=config.pools.evaluator_cpus,
        )
        console.print(
            f"[bold]launch[/] {launch_id}{' (resumed)' if resume else ''}: {n_trials} trials "
            f"({', '.join(s.name for s in config.searchers)} x budgets {config.hardware.budgets}), "
            f"{config.search.evaluations} evaluations each; Ray {int(resources.get('CPU', 0))} CPUs, "
            f"{int(resources.get('GPU', 0))} GPUs; {sizes.simulators} simulators, {sizes.evaluators} evaluators"
        )
        checkpoint_dir = None
        if config.needs_accuracy:
            checkpoint_dir = str(
                ensure_supernet_remote(
                    config,
                    cache_dir,
                    resources,
                    console,
                    on_cluster=address is not None,
                    train_storage=storage_path / "supernet-train",
                )
            )

        tracker = start_tracking_writer(tracking_uri, config.name, launch_id)
        launch_run_id = ray.get(tracker.start_launch.remote(launch_id, launch_id, config.to_yaml(), provenance_tags()))
        simulators, evaluators = start_pools(
            launch_id,
            sizes,
            space_name=config.space.name,
            space_options=dict(config.space.options),
            strategy=config.search.strategy,
            warm_hardware=hw_for_budget[config.hardware.budgets[0]],
            checkpoint_dir=checkpoint_dir,
            seed=config.seed,
        )
        from rnc.platform.actors import evaluator_names, simulator_names

        sim_names = simulator_names(launch_id, sizes.simulators)
        eval_names = evaluator_names(launch_id, sizes.evaluators)
        status = "FAILED"
        try:
            t_tune = time.perf_counter()
            if resume:
                tuner = restore_tuner(str(experiment_path), trial_cpus=config.pools.trial_cpus)
            else:
                driver_pools = ActorPools(sim_names, [])
                bounds = objective_bounds(config, space, driver_pools, hw_for_budget)
                plans = trial_plans(
                    config,
                    launch_id=launch_id,
                    simulators=sim_names,
                    evaluators=eval_names,
                    tracker=tracking_actor_name(launch_id),
                    bounds=bounds,
                )
                tuner = build_tuner(
                    plans,
                    run_name=launch_id,
                    storage_path=str(experiment_dir),
                    trial_cpus=config.pools.trial_cpus,
                    max_concurrent_trials=config.pools.max_concurrent_trials,
                    sink_name=launch_id,
                )
            tune_started = time.monotonic()
            results = _fit_with_progress(tuner, config, launch_id, console, show_progress, PROGRESS_SINKS)
            tune_ended = time.monotonic()
            tune_s = time.perf_counter() - t_tune
            records, errors = [], []
            for result in results:
                key = result.config["trial"]["key"]
                if result.error is not None:
                    errors.append(f"{key}: {result.error}")
                    continue
                if result.checkpoint is None:
                    errors.append(f"{key}: finished without a checkpoint")
                    continue
                trial_records = load_checkpoint_candidates(result.checkpoint)
                records.extend(trial_records)
                # trials finished before an interruption are not re-run on resume: make sure the tracker holds
                # every checkpointed candidate (it skips the ones MLflow already has)
                plan = result.config["trial"]
                ray.get(
                    tracker.start_trial.remote(
                        key, plan["searcher"], plan["budget"], {"seed": plan["seed"], **plan["searcher_options"]}
                    )
                )
                ray.get(tracker.log_candidates.remote(key, trial_records))
            if errors:
                raise LaunchError(
                    "trials failed:\n  " + "\n  ".join(errors) + f"\nfix the cause, then resume with --resume "
                    f"(Tune state in {experiment_path})"
                )
            objectives = [(o.metric, o.goal) for o in config.objectives]
            df = compute_fronts(candidates_frame(records), objectives)
            _finish_tracking(tracker, df, objectives, config, simulators[0], hw_for_budget, launch_id)
            status = "FINISHED"
            sim_stats = ray.get([s.stats.remote() for s in simulators])
            eval_stats = ray.get([e.stats.remote() for e in evaluators])
            tracker_stats = ray.get(tracker.stats.remote())
        finally:
            with contextlib.suppress(Exception):
                ray.get(tracker.end_launch.remote(status))
            for actor in [*simulators, *evaluators, tracker]:
                with contextlib.suppress(Exception):
                    ray.kill(actor)

    wall_s = time.perf_counter() - t_start
    print_fronts(df, objectives, console)
    console.print(
        f"{len(df)} candidates ({int(df.feasible.sum())} feasible) in {wall_s:.1f} s; MLflow experiment "
        f"{config.name!r}, launch run {launch_run_id}.\nOpen them with:\n  [bold]{mlflow_ui_command(tracking_uri)}[/]"
    )
    return LaunchResult(
        launch_id=launch_id,
        experiment_name=config.name,
        tracking_uri=tracking_uri,
        launch_run_id=launch_run_id,
        experiment_path=str(experiment_path),
        candidates=df,
        objectives=objectives,
        wall_s=wall_s,
        stats={
            "tune_s": tune_s,
            "simulators": sim_stats,
            "evaluators": eval_stats,
            "tracking": tracker_stats,
            "pool_sizes": sizes.__dict__,
            "tune_window_monotonic": (tune_started, tune_ended),
            "trials": {r.config["trial"]["key"]: dict(r.metrics or {}) for r in results},
        },
    )


def _fit_with_progress(
    tuner: Any, config: ExperimentConfig, launch_id: str, console: Console, show: bool, sinks: dict[str, Any]
) -> Any:
    total = config.search.evaluations
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("HV {task.fields[hv]:.4f}  feasible {task.fields[feasible]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    )
    tasks: dict[str, Any] = {}

    def sink(key: str, result: dict[str, Any]) -> None:
        if key not in tasks:
            tasks[key] = progress.add_task(key, total=total, hv=0.0, feasible=0)
        progress.update(
            tasks[key],
            completed=result.get("evaluated", 0),
            hv=float(result.get("hypervolume", 0.0)),
            feasible=int(result.get("feasible", 0)),
        )

    sinks[launch_id] = sink
    try:
        with progress:
            return tuner.fit()
    finally:
        sinks.pop(launch_id, None)


def ensure_supernet_remote(
    config: ExperimentConfig,
    cache_dir: Path,
    resources: dict[str, float],
    console: Console,
    *,
    on_cluster: bool,
    train_storage: Path,
) -> Path:
    """The supernet checkpoint, found in ``cache_dir`` or trained on first use.

    With GPUs, or on a cluster (``--address``), training runs on Ray Train workers
    (:func:`rnc.platform.training.ray_train_fn`: one worker per GPU, or two CPU workers); on a local CPU-only Ray
    it runs in one Ray task, so the driver stays free for the progress display.
    """
    import ray

    from rnc.search.supernet import ensure_supernet

    kwargs: dict[str, Any] = {
        "epochs": config.supernet.epochs,
        "seed": config.seed,
        "cache_dir": str(cache_dir),
        "image_size": config.dataset.image_size,
        "data_root": config.dataset.root,
        "download": config.dataset.download,
        "progress": False,
        **config.dataset.supernet_options(),  # cifar10's source format and seeded per-class subsets
    }
    gpus = int(resources.get("GPU", 0))
    t0 = time.perf_counter()
    with console.status(f"supernet for {config.space.name} on {config.dataset.name} (cached under {cache_dir})"):
        if gpus or on_cluster:
            from rnc.platform.training import ray_train_fn

            train_fn = ray_train_fn(num_workers=gpus or 2, use_gpu=bool(gpus), storage_path=train_storage)
            path = ensure_supernet(
                config.space.name, dict(config.space.options), config.dataset.name, train_fn=train_fn, **kwargs
            )
        else:
            task = ray.remote(num_cpus=1)(_ensure_supernet_task)
            path = ray.get(task.remote(config.space.name, dict(config.space.options), config.dataset.name, kwargs))
    console.print(f"supernet checkpoint {path} ({time.perf_counter() - t0:.1f} s)")
    return Path(path)


def _ensure_supernet_task(space_name: str, space_options: dict[str, Any], dataset: str, kwargs: dict[str, Any]) -> str:
    import torch

    from rnc.search.supernet import ensure_supernet

    torch.set_num_threads(1)
    return str(ensure_supernet(space_name, space_options, dataset, **kwargs))


def _finish_tracking(
    tracker: Any,
    df: pd.DataFrame,
    objectives: list[tuple[str, str]],
    config: ExperimentConfig,
    simulator: Any,
    hw_for_budget: dict[int, Any],
    launch_id: str,
) -> None:
    """Pareto tags, then artifacts: candidates, front plots, best genomes with their mapping plans, summary."""
    import ray

    ray.get(tracker.flush.remote())
    ray.get(
        tracker.mark_pareto.remote(
            {
                TAG_PARETO_BUDGET: df.loc[df.pareto_budget, "candidate_id"].tolist(),
                TAG_PARETO_GLOBAL: df.loc[df.pareto_global, "candidate_id"].tolist(),
            }
        )
    )
    files: dict[str, bytes] = {"candidates.csv": df.to_csv(index=False).encode()}
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    files["candidates.parquet"] = buf.getvalue()
    files.update(plot_fronts(df, objectives))
    best = df[df.pareto_budget | df.pareto_global].drop_duplicates(["budget", "genome_key"])
    rows = best.to_dict("records")
    plans = ray.get(
        [simulator.plan.remote(json.loads(row["genome"]), hw_for_budget[int(row["budget"])]) for row in rows]
    )
    metric_cols = [c for c in df.columns if c in {m for m, _ in objectives} or c in ("crossbars_used", "utilization")]
    best_json = [
        {
            "candidate_id": row["candidate_id"],
            "searcher": row["searcher"],
            "budget": int(row["budget"]),
            "genome": json.loads(row["genome"]),
            "genes": {c.removeprefix("gene."): row[c] for c in df.columns if c.startswith("gene.")},
            "metrics": {c: _json_float(row[c]) for c in metric_cols},
            "pareto_budget": bool(row["pareto_budget"]),
            "pareto_global": bool(row["pareto_global"]),
            "plan": plan,
        }
        for row, plan in zip(rows, plans, strict=True)
    ]
    files["best_genomes.json"] = json.dumps(best_json, indent=1, default=_json_default).encode()
    summary = {
        "launch_id": launch_id,
        "objectives": [list(o) for o in objectives],
        "budgets": config.hardware.budgets,
        "searchers": [s.name for s in config.searchers],
        "candidates": len(df),
        "feasible": int(df.feasible.sum()),
        "front_sizes": {str(b): int(((df.budget == b) & df.pareto_budget).sum()) for b in config.hardware.budgets},
        "global_front_size": int(df.pareto_global.sum()),
    }
    files["summary.json"] = json.dumps(summary, indent=2).encode()
    ray.get(tracker.log_artifacts.remote(files))
    ray.get(
        tracker.log_launch_metrics.remote(
            {
                "candidates": len(df),
                "feasible": int(df.feasible.sum()),
                "global_front_size": int(df.pareto_global.sum()),
            }
        )
    )
    for key in df.trial.unique():
        ray.get(tracker.end_trial.remote(str(key)))


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)

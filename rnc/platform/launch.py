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
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rnc.errors import TrackingError
from rnc.platform.config import ExperimentConfig, absolute_path, absolute_tracking_uri, searcher_options
from rnc.platform.launch_record import LaunchError, ResumableLaunchError, new_launch, resumed_launch
from rnc.platform.local_ray import (
    forget_local_ray,
    record_local_ray,
    session_record_path,
    start_watchdog,
    stop_leftovers,
)
from rnc.platform.metrics import ACCURACY_OBJECTIVES, simulator_metrics
from rnc.platform.records import Candidate, ObjectiveRef, TrialPlan
from rnc.platform.report import (
    candidates_frame,
    compute_fronts,
    front_networks,
    mlflow_links,
    mlflow_ui_command,
    plot_fronts,
    print_fronts,
)
from rnc.platform.storage import storage_fault
from rnc.platform.tracking import TrackingSink

PACKAGES = ("rnc-platform", "ray", "mlflow", "torch", "numpy", "numba", "pymoo", "optuna", "pydantic")


class PhaseTimer:
    """Wall seconds per phase of a launch: :meth:`lap` closes the phase running since the previous lap."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now


class LaunchInterrupted(KeyboardInterrupt):
    """A launch stopped by Ctrl-C (SIGINT) before every trial finished: runs marked KILLED, no final artifacts.

    The CLI exits 130 and prints the ``--resume`` command (:attr:`launch_id` names the launch to resume)."""

    def __init__(self, launch_id: str, unfinished: list[str]) -> None:
        super().__init__(f"launch {launch_id} was interrupted; trials not finished: {', '.join(unfinished)}")
        self.launch_id = launch_id
        self.unfinished = unfinished


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
            measured = [simulator_metrics(s)[objective.metric] for s in sims]
            values = np.array([objective.sign * v for v in measured if v is not None], dtype=float)
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


def trial_plans(
    config: ExperimentConfig,
    *,
    launch_id: str,
    simulators: list[str],
    evaluators: list[str],
    tracker: str,
    bounds: dict[int, list[tuple[float, float]]],
    n_choices: list[int] | None = None,
) -> list[TrialPlan]:
    """The frozen plan of every trial (``param_space`` of the Tuner; restored with it on resume). Each budget's
    hardware is validated and fingerprinted once, here."""
    from rnc.platform.tuning import trial_key, trial_seed

    hardware = {b: config.hardware.for_budget(b) for b in config.hardware.budgets}
    fingerprints = {b: hw.fingerprint() for b, hw in hardware.items()}
    objectives = tuple(ObjectiveRef(o.metric, o.sign) for o in config.objectives)
    if n_choices is None:
        from rnc.search.spaces import get_space

        n_choices = get_space(config.space.name, **config.space.options).n_choices
    plans = []
    for index, (searcher, budget) in enumerate(config.grid()):
        plans.append(
            TrialPlan(
                key=trial_key(searcher.name, budget),
                index=index,
                launch_id=launch_id,
                searcher=searcher.name,
                searcher_options=searcher_options(searcher.name, searcher.options, config.search.batch_size),
                budget=int(budget),
                seed=trial_seed(config.seed, index),
                eval_seed=int(config.seed),
                space=config.space.name,
                space_options=dict(config.space.options),
                n_choices=tuple(int(n) for n in n_choices),
                hardware=hardware[budget],
                hardware_fingerprint=fingerprints[budget],
                objectives=objectives,
                constraints=tuple(config.constraint_names),
                fit_budget=config.constraints.fit_budget,
                min_accuracy=config.constraints.min_accuracy,
                max_latency_ns=config.constraints.max_latency_ns,
                needs_accuracy=config.needs_accuracy,
                needs_hw_accuracy=config.needs_hw_accuracy,
                evaluations=config.search.evaluations,
                batch_size=config.search.batch_size,
                bounds=tuple((float(lo), float(hi)) for lo, hi in bounds[budget]),
                simulators=tuple(simulators),
                evaluators=tuple(evaluators),
                tracker=tracker,
            )
        )
    return plans


# -- the launch ------------------------------------------------------------------------------------------------
def run_launch(
    config: ExperimentConfig, *, resume: bool = False, checked: Any = None, **options: Any
) -> LaunchResult:
    """Run (or resume) one launch: :func:`rnc.platform.preflight.preflight` first (nothing is started or written
    when it fails; ``checked``: its result when the caller already ran it), then the launch under the experiment's
    lock (a second launch into the same storage is refused). ``options`` are those of :func:`_run_launch`."""
    from rnc.platform.preflight import launch_lock, preflight

    checked = checked if checked is not None else preflight(config, resume=resume)
    with launch_lock(checked.storage_path, config.name):
        record = session_record_path(checked.storage_path, config.name)
        left = stop_leftovers(record)  # the local Ray of a killed driver (SIGKILL): its agents outlive it
        if left.stopped:
            (options.get("console") or Console()).print(
                f"stopped {len(left.stopped)} Ray processes left by launch {left.launch_id} (its driver was killed; "
                f"session {left.session_dir})", soft_wrap=True
            )
        try:
            return _run_launch(config, resume=resume, **options)
        except TrackingError as exc:  # a tracking server that stayed silent past the wait (tracking_outage)
            raise ResumableLaunchError(str(exc)) from exc
        except Exception as exc:
            fault = storage_fault(checked.storage_path, exc)  # a disk that filled up during the launch
            if fault is None:
                raise
            raise ResumableLaunchError(str(fault)) from exc
        finally:
            forget_local_ray(record)  # this launch's Ray is shut down


def _run_launch(
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
    from rnc.platform.actors import (
        ActorPools,
        default_concurrent_trials,
        default_pool_sizes,
        local_cpu_count,
        start_pools,
    )
    from rnc.platform.tracking import start_tracking_sink, tracking_actor_name
    from rnc.platform.tuning import (
        PROGRESS_SINKS,
        build_tuner,
        load_checkpoint_candidates,
        load_plans,
        restore_tuner,
        save_plans,
        tune_state_whole,
    )
    from rnc.search.searchers import SEARCHERS
    from rnc.search.spaces import get_space

    console = console or Console()
    t_start = time.perf_counter()
    timer = PhaseTimer()
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
    record = resumed_launch(config, storage_path) if resume else new_launch(config, storage_path)
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

    timer.lap("prepare_s")
    with ray_session(address, local_cpus=local_logical) as started_ray:
        ray_record = session_record_path(storage_path, config.name)
        if started_ray and address is None and record_local_ray(ray_record, launch_id) is not None:
            start_watchdog(ray_record)  # stops this Ray's leftovers if the driver is killed
        timer.lap("ray_start_s")
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
        where = (
            f"local Ray on {cpus} cores" if address is None else f"Ray cluster {int(resources.get('CPU', 0))} CPUs"
        )
        console.print(
            f"[bold]launch[/] {launch_id}{' (resumed)' if resume else ''}: {n_trials} trials "
            f"({', '.join(s.name for s in config.searchers)} x budgets {config.hardware.budgets}), "
            f"{config.search.evaluations} networks each; {where}, {int(resources.get('GPU', 0))} GPUs; "
            f"{sizes.simulators} simulators, {sizes.evaluators} evaluators"
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

        sink = start_tracking_sink(tracking_uri, config.name, launch_id)
        tracker: TrackingSink = sink
        timer.lap("supernet_s")
        # the tracking actor (MLflow import, store set-up) and the pool actors (imports, JIT warm-up from Numba's
        # on-disk cache) start side by side: the launch run is created in a thread while the pools warm up
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnc-start-launch") as background:
            launch_run = background.submit(
                lambda: tracker.start_launch(launch_id, launch_id, config.to_yaml(), provenance_tags())
            )
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
            launch_run_id = launch_run.result()
        from rnc.platform.actors import evaluator_names, simulator_names

        sim_names = simulator_names(launch_id, sizes.simulators)
        eval_names = evaluator_names(launch_id, sizes.evaluators)
        status = "FAILED"
        plans_path = experiment_dir / f"{launch_id}.plans.pkl"
        timer.lap("actors_start_s")
        try:
            t_tune = time.perf_counter()
            restorable = resume and tune_state_whole(experiment_path, plans_path)
            if resume and not restorable:
                console.print(
                    f"launch {launch_id} left no whole Tune state (it stopped before saving one, or a full disk cut it "
                    "short): its trials start again from their first generation, seeded, so with the same candidates; "
                    "MLflow keeps the ones it holds", soft_wrap=True
                )
            if restorable:
                tuner = restore_tuner(
                    str(experiment_path), trial_cpus=config.pools.trial_cpus, plans=load_plans(plans_path)
                )
            else:
                driver_pools = ActorPools(sim_names, [])
                bounds = objective_bounds(config, space, driver_pools, hw_for_budget)
                timer.lap("reference_samples_s")
                plans = trial_plans(
                    config,
                    launch_id=launch_id,
                    simulators=sim_names,
                    evaluators=eval_names,
                    tracker=tracking_actor_name(launch_id),
                    bounds=bounds,
                    n_choices=space.n_choices,
                )
                save_plans(plans, plans_path)
                tuner = build_tuner(
                    plans,
                    run_name=launch_id,
                    storage_path=str(experiment_dir),
                    trial_cpus=config.pools.trial_cpus,
                    max_concurrent_trials=config.pools.max_concurrent_trials
                    or default_concurrent_trials(resources, sizes, n_trials),
                    sink_name=launch_id,
                )
            tune_started = time.monotonic()
            results, interrupted = _fit_with_progress(tuner, config, launch_id, console, show_progress, PROGRESS_SINKS)
            tune_ended = time.monotonic()
            timer.lap("tune_fit_s")
            tune_s = time.perf_counter() - t_tune
            records: list[Candidate] = []
            errors, unfinished, causes = [], [], []
            for result in results:
                point = (result.config or {}).get("trial")  # tuning.tune_point
                if point is None:  # a trial that never reported (Ctrl-C before its first result): resumable
                    unfinished.append(Path(result.path).name if result.path else "a trial that never started")
                    continue
                key = point["key"]
                if result.error is not None:
                    errors.append(f"{key} ({_root_cause(result.error)})")
                    causes.append(result.error)
                    continue
                if not (result.metrics or {}).get("trial_complete"):
                    unfinished.append(key)  # stopped by Tune on SIGINT (or never started): resumable
                if result.checkpoint is None:
                    if key not in unfinished:
                        errors.append(f"{key}: finished without a checkpoint")
                    continue
                trial_records = load_checkpoint_candidates(result.checkpoint)
                records.extend(trial_records)
                # trials finished before an interruption are not re-run on resume: make sure the tracker holds
                # every checkpointed candidate (it skips the ones MLflow already has)
                tracker.start_trial(key, point["searcher"], point["budget"], point["params"])
                tracker.log_candidates(key, trial_records)
            if (unfinished or interrupted) and not errors:  # Tune stops gracefully on SIGINT, returns what it has
                raise LaunchInterrupted(launch_id, unfinished or ["none (stopped before the fronts)"])
            if errors:
                raise ResumableLaunchError(
                    f"trials failed: {'; '.join(errors)}; fix the cause (their error files are under "
                    f"{experiment_path})"
                ) from (causes[0] if causes else None)
            objectives = [(o.metric, o.goal) for o in config.objectives]
            df = compute_fronts(candidates_frame(records), objectives)
            if config.needs_accuracy and not config.needs_hw_accuracy and eval_names:
                df = front_hw_accuracy(df, ActorPools(sim_names, eval_names), hw_for_budget, config.seed)
                tracker.log_candidate_metrics(
                    {r.candidate_id: {"hw_accuracy": r.hw_accuracy} for r in df.itertuples() if pd.notna(r.hw_accuracy)}
                )
            _finish_tracking(tracker, df, objectives, config, simulators[0], hw_for_budget, launch_id)
            timer.lap("fronts_and_artifacts_s")
            status = "FINISHED"
            sim_stats = ray.get([s.stats.remote() for s in simulators])
            eval_stats = ray.get([e.stats.remote() for e in evaluators])
            tracker_stats = tracker.stats()
        except KeyboardInterrupt as exc:
            status = "KILLED"
            if isinstance(exc, LaunchInterrupted):
                raise
            raise LaunchInterrupted(launch_id, ["all"]) from None
        finally:
            with contextlib.suppress(Exception):
                tracker.end_launch(status)
            for actor in [*simulators, *evaluators, sink.actor]:
                with contextlib.suppress(Exception):
                    ray.kill(actor)

    timer.lap("ray_stop_s")
    print_fronts(df, objectives, console)
    console.print(
        f"{len(df)} networks ({int(df.feasible.sum())} feasible) in {time.perf_counter() - t_start:.1f} s; MLflow "
        f"experiment "
        f"{config.name!r}, launch run {launch_run_id}.\nOpen them in the MLflow UI:\n"
        f"  [bold]{mlflow_ui_command(tracking_uri)}[/]\nthen open\n"
        f"{mlflow_links(str(tracker_stats['experiment_id']), objectives)}",
        soft_wrap=True,
    )
    timer.lap("print_s")
    wall_s = time.perf_counter() - t_start
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
            "phases_s": dict(timer.phases),
            "simulators": sim_stats,
            "evaluators": eval_stats,
            "tracking": tracker_stats,
            "pool_sizes": sizes.__dict__,
            "tune_window_monotonic": (tune_started, tune_ended),
            "trials": {r.config["trial"]["key"]: dict(r.metrics or {}) for r in results},
        },
    )


def _root_cause(error: BaseException) -> str:
    """``Type: first line of the message`` of the innermost cause of a trial's error (Ray wraps the trial's own
    exception in ``RayTaskError``, whose text carries the remote traceback)."""
    while getattr(error, "cause", None) is not None and error.cause is not error:
        error = error.cause
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".strip()


def _fit_with_progress(
    tuner: Any, config: ExperimentConfig, launch_id: str, console: Console, show: bool, sinks: dict[str, Any]
) -> tuple[Any, bool]:
    """Run the Tuner with a progress display; returns its ResultGrid and whether Ctrl-C (SIGINT) arrived."""
    total = config.search.evaluations
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("HV {task.fields[hv]:.4f}  feasible {task.fields[feasible]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show or not console.is_terminal,
    )
    tasks: dict[str, Any] = {}

    plain = show and not console.is_terminal  # a file or pipe gets one line per trial result instead of a bar
    started = time.perf_counter()

    def sink(key: str, result: dict[str, Any]) -> None:
        if plain:
            console.print(
                f"{key}: {result.get('evaluated', 0)}/{total} networks, {result.get('feasible', 0)} feasible, "
                f"HV {float(result.get('hypervolume', 0.0)):.4f} ({time.perf_counter() - started:.0f} s)"
            )
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
        with progress, _sigint_watch() as received, _quiet_tune_errors():
            results = tuner.fit()
    finally:
        sinks.pop(launch_id, None)
    # Tune's own SIGINT handler stops the run gracefully and returns normally; when every trial had already
    # reported its last generation, nothing in the results says the user pressed Ctrl-C, and the launch would go
    # on to fronts and artifacts and exit 0
    return results, signal.SIGINT in received


@contextlib.contextmanager
def _quiet_tune_errors() -> Iterator[None]:
    """Keep Ray Tune's own error reports (a failed trial's traceback, a failed save of its state) off the console
    while the Tuner runs: the launch reports each failed trial itself, in one line with its root cause, and the
    tracebacks stay in the trials' error files. ``rnc-platform --debug`` (``RNC_DEBUG=1``) keeps them."""
    import logging

    from rnc.platform.cli_errors import debug_requested

    names = ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state", "ray.tune.tune")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    if not debug_requested(None):
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _sigint_watch() -> Iterator[list[int]]:
    """Record the signals delivered while the block runs, whichever Python handler takes them.

    Ray Tune installs its own SIGINT handler inside ``Tuner.fit`` and keeps the flag it sets to itself, so the
    launch listens through :func:`signal.set_wakeup_fd` (CPython writes each handled signal's number to that
    socket, independent of the handler): the yielded list holds the signal numbers once the block ends.
    Outside the main thread (where signals cannot be watched) it yields an empty list."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield received
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(BlockingIOError):
            received.extend(reader.recv(4096))
        reader.close()
        writer.close()


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
    it runs in one Ray task, so the driver stays free for the progress display: epochs, training loss and the
    estimated time left, from the per-epoch reports the task sends through a ``ray.util.queue.Queue`` (one line
    per epoch when the output is not a terminal).
    """

    from rnc.search.supernet import ensure_supernet

    kwargs: dict[str, Any] = {
        "epochs": config.supernet.epochs,
        "seed": config.seed,
        "cache_dir": str(cache_dir),
        "image_size": config.dataset.image_size,
        "data_root": config.dataset.root,
        "download": config.dataset.download,
        **config.dataset.supernet_options(),  # cifar10's source format and seeded per-class subsets
        "recipe": dict(config.supernet.recipe),
        "progress": False,
    }
    gpus = int(resources.get("GPU", 0))
    t0 = time.perf_counter()
    what = f"supernet {config.space.name} on {config.dataset.name}"
    if gpus or on_cluster:
        from rnc.platform.training import ray_train_fn

        with console.status(f"{what}: from the cache under {cache_dir}, or training {config.supernet.epochs} epochs"):
            train_fn = ray_train_fn(num_workers=gpus or 2, use_gpu=bool(gpus), storage_path=train_storage)
            path = ensure_supernet(
                config.space.name, dict(config.space.options), config.dataset.name, train_fn=train_fn, **kwargs
            )
        epochs_seen = -1
    else:
        path, epochs_seen = _supernet_task_with_progress(config, kwargs, console, what)
    how = "found in the cache" if epochs_seen == 0 else "trained"
    console.print(f"{what}: {how}, {path} ({time.perf_counter() - t0:.1f} s)")
    return Path(path)


def _supernet_task_with_progress(
    config: ExperimentConfig, kwargs: dict[str, Any], console: Console, what: str
) -> tuple[str, int]:
    """Run :func:`_ensure_supernet_task` in a Ray task and show its per-epoch reports; returns the checkpoint path
    and the number of epochs reported (0: found in the cache)."""
    import ray
    from ray.util.queue import Queue
    from rich.progress import TimeRemainingColumn

    queue = Queue(actor_options={"num_cpus": 0})
    task = ray.remote(num_cpus=1)(_ensure_supernet_task)
    ref = task.remote(config.space.name, dict(config.space.options), config.dataset.name, kwargs, queue)
    epochs = int(config.supernet.epochs)
    plain = not console.is_terminal
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs {task.fields[loss]}"),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console, disable=plain,
    )
    seen = 0
    started = time.perf_counter()
    try:
        with progress:
            bar = progress.add_task(f"{what} (cache, else train)", total=epochs, loss="")
            done = False
            while not done:
                done = bool(ray.wait([ref], timeout=0.5)[0])
                while not queue.empty():
                    report = queue.get_nowait()
                    seen = int(report["epoch"])
                    loss = f"loss {report['train_loss']:.3f}, train accuracy {report['train_accuracy']:.1%}"
                    progress.update(bar, completed=seen, loss=loss, description=f"{what} (training)")
                    if plain:
                        elapsed = time.perf_counter() - started
                        left = elapsed / seen * (epochs - seen)
                        console.print(
                            f"{what}: epoch {seen}/{epochs}, {loss}, {elapsed:.0f} s elapsed, about {left:.0f} s left"
                        )
        return ray.get(ref), seen
    finally:
        queue.shutdown()


def _ensure_supernet_task(
    space_name: str, space_options: dict[str, Any], dataset: str, kwargs: dict[str, Any], queue: Any = None
) -> str:
    import torch

    from rnc.search.supernet import ensure_supernet
    from rnc.search.supernet.training import train_from_spec

    torch.set_num_threads(1)

    def train(spec: Any, out_dir: Path) -> None:
        def report(metrics: dict[str, Any]) -> None:
            if queue is not None:
                queue.put({k: metrics[k] for k in ("epoch", "train_loss", "train_accuracy")})

        train_from_spec(spec, out_dir, progress=False, report=report)

    return str(ensure_supernet(space_name, space_options, dataset, train_fn=train, **kwargs))


def front_hw_accuracy(df: pd.DataFrame, pools: Any, hw_for_budget: dict[int, Any], seed: int) -> pd.DataFrame:
    """``df`` with ``hw_accuracy`` (accuracy under the crossbar non-idealities of the candidate's budget hardware)
    filled for the front members, when no objective asked for it during the search: one evaluation per front
    network and budget. Other candidates keep it empty (measuring it costs a few forward passes each)."""
    out = df.copy()
    front = out[(out.pareto_budget | out.pareto_global) & out.accuracy.notna()]
    firsts = front_networks(front)
    if firsts.empty:
        return out
    genomes = [json.loads(g) for g in firsts.genome]
    results = pools.evaluate(genomes, [hw_for_budget[int(b)] for b in firsts.budget], seed)
    by_network = {
        (int(b), k): r.hw_accuracy for b, k, r in zip(firsts.budget, firsts.network_key, results, strict=True)
    }
    for i in front.index:
        value = by_network.get((int(out.at[i, "budget"]), out.at[i, "network_key"]))
        if value is not None:
            out.at[i, "hw_accuracy"] = float(value)
    return out


def _finish_tracking(
    tracker: TrackingSink,
    df: pd.DataFrame,
    objectives: list[tuple[str, str]],
    config: ExperimentConfig,
    simulator: Any,
    hw_for_budget: dict[int, Any],
    launch_id: str,
) -> None:
    """Front membership (0/1 metrics), then artifacts: candidates, front plots, the front networks with their
    compiled mapping plans, summary. (A candidate's own ``plan.json``: on demand, ``rnc-platform report --plan``.)"""
    import ray

    tracker.flush()
    tracker.mark_pareto(
        {
            cid: (bool(b), bool(g))
            for cid, b, g in zip(df.candidate_id, df.pareto_budget, df.pareto_global, strict=True)
        }
    )
    files: dict[str, bytes] = {"candidates.csv": df.to_csv(index=False).encode()}
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    files["candidates.parquet"] = buf.getvalue()
    files.update(plot_fronts(df, objectives))
    rows = front_networks(df[df.pareto_budget | df.pareto_global]).to_dict("records")
    plans = ray.get(
        [simulator.plan.remote(json.loads(row["genome"]), hw_for_budget[int(row["budget"])]) for row in rows]
    )
    metric_cols = [c for c in df.columns if c in {m for m, _ in objectives} or c in ("crossbars_used", "utilization")]
    best_json = []
    for row, plan in zip(rows, plans, strict=True):
        entry = {
            "candidate_id": row["candidate_id"],
            "searcher": row["searcher"],
            "budget": int(row["budget"]),
            "network_key": row["network_key"],
            "label": row["label"],
            "genome": json.loads(row["genome"]),
            "genes": {k.removeprefix("gene."): v for k, v in row.items() if k.startswith("gene.") and pd.notna(v)},
            "metrics": {c: _json_float(row[c]) for c in metric_cols},
            "pareto_budget": bool(row["pareto_budget"]),
            "pareto_global": bool(row["pareto_global"]),
            "plan": plan,
        }
        best_json.append(entry)
    # one front network per line: json's C encoder (an ``indent`` forces the pure-Python one, seconds for the
    # compiled plans of a few dozen networks)
    lines = ",\n".join(json.dumps(entry, default=_json_default) for entry in best_json)
    files["best_genomes.json"] = f"[\n{lines}\n]\n".encode()
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
    tracker.log_artifacts(files)
    tracker.log_launch_metrics(
        {"candidates": len(df), "feasible": int(df.feasible.sum()), "global_front_size": int(df.pareto_global.sum())}
    )
    for key in df.trial.unique():
        tracker.end_trial(str(key))


def _json_float(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)

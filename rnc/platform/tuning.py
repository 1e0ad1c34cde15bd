"""Ray Tune orchestration: one trial per (searcher, crossbar budget), each running its searcher's ask/tell loop.

The trial (:func:`search_trial`, a function trainable) loops over generations:

1. ask a batch of ``batch_size`` genomes; genomes whose network (``SearchSpace.key``: genomes differing only in
   inactive genes build one network) this trial already evaluated, or that repeat a network earlier in the
   batch, are not evaluated: the searcher is told the cached result, and the next ask makes up the shortfall,
   so ``search.evaluations`` counts distinct networks (a trial stops early when ``MAX_STALE_ASKS`` asks in a
   row bring no new network, or the searcher's space is exhausted);
2. simulate the new networks through the shared ``SimulatorService`` pool (compile + PPA on the budget's
   hardware);
3. candidates that fail a hardware constraint (``fit_budget``, ``max_latency_ns``) skip the accuracy evaluation
   and are told with a worst-case accuracy (0) and a positive violation; the others go to the
   ``SupernetEvaluator`` pool when an objective or constraint needs accuracy;
4. tell the searcher, in ask order;
5. ``tune.report`` the generation's hypervolume and counts with a checkpoint holding the searcher state and every
   evaluated candidate (``Candidate.to_json``);
6. send the generation's candidates to the tracking sink (``RemoteSink``) (after the checkpoint, so a candidate in
   MLflow is always in a checkpoint too).

Resume: a restored trial loads its last checkpoint (``tune.get_checkpoint``), rebuilds the searcher from its
state (the searcher replays its log and asks exactly what an uninterrupted one would) and re-sends the
checkpointed candidates to the tracking writer, which skips those MLflow already holds. Only the generation in
flight when the launch was killed is evaluated again; no checkpointed candidate is evaluated twice, none is lost.

Hypervolume: objectives are normalized per budget with the ideal/nadir bounds the launch derives from
``search.reference_samples`` random genomes (accuracy objectives use their natural bounds 0..1), and the
hypervolume of the feasible candidates is taken with the reference point ``[1.1] * m`` (``rnc.search.pareto``),
so trials of one budget compare directly.

Constraint violations (``<= 0`` satisfied), each normalized to be scale free:
``fit_budget``: ``(min_crossbars - budget) / budget`` (0 when the budget is unlimited);
``min_accuracy``: ``min_accuracy - accuracy``; ``max_latency_ns``: ``latency_ns / max_latency_ns - 1``.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import Callback

from rnc.platform.metrics import simulator_metrics
from rnc.platform.records import Candidate, Genome, SubnetAccuracy, TrialPlan

CHECKPOINT_FILE = "search_state.json"
HYPERVOLUME_REF = 1.1


def trial_key(searcher: str, budget: int) -> str:
    """The stable name of a grid point: ``nsga2-b64`` (``-bunl`` for an unlimited budget)."""
    return f"{searcher}-b{budget if budget else 'unl'}"


def trial_seed(seed: int, index: int) -> int:
    """A per-trial seed derived from the launch seed and the trial's grid index (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def hardware_violations(
    summary: Mapping[str, Any], *, budget: int, fit_budget: bool, max_latency_ns: float | None
) -> dict[str, float]:
    """Violations decided by the simulator alone (``<= 0`` satisfied)."""
    out: dict[str, float] = {}
    if fit_budget:
        if budget > 0:
            need = float(summary.get("min_crossbars", summary.get("crossbars_used", 0)))
            value = (need - budget) / budget
            # the compiler's verdict wins where it disagrees with the crossbar count
            value = max(value, 1.0 / budget) if not summary.get("feasible", True) else min(value, 0.0)
            out["fit_budget"] = value
        else:
            out["fit_budget"] = 0.0
    if max_latency_ns is not None:
        latency = float(summary.get("latency_ns", math.inf))
        out["max_latency_ns"] = latency / max_latency_ns - 1.0 if math.isfinite(latency) else 1.0
    return out


def objective_row(
    record: Mapping[str, Any], objectives: Sequence[tuple[str, float]], worst: Sequence[float]
) -> list[float]:
    """One minimized objective row; a missing or non-finite metric gets the objective's worst bound."""
    row = []
    for (metric, sign), bad in zip(objectives, worst, strict=True):
        value = record.get(metric)
        v = sign * float(value) if value is not None and math.isfinite(float(value)) else float(bad)
        row.append(v)
    return row


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def normalized(F: np.ndarray, bounds: Sequence[Sequence[float]]) -> np.ndarray:
    from rnc.search.pareto import normalize

    ideal = [b[0] for b in bounds]
    nadir = [b[1] for b in bounds]
    return normalize(F, ideal, nadir)


#: Asks in a row that bring no new network before a trial stops (its searcher keeps proposing networks it has
#: already evaluated: the reachable space is exhausted).
MAX_STALE_ASKS = 50


def search_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable of one grid point; ``config["trial"]`` is its :class:`TrialPlan`.

    Evaluation budgets count distinct networks: a genome whose network key (``SearchSpace.key``) this trial
    already evaluated is not evaluated again -- the searcher is told the cached result and the trial asks again.
    """
    from ray import tune

    from rnc.platform.actors import ActorPools
    from rnc.platform.tracking import RemoteSink
    from rnc.search.searchers import SearchSpaceExhaustedError, make_searcher

    t_trial = time.perf_counter()
    for name in ("ray.tune", "ray.train", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)  # per-checkpoint INFO lines drown the progress display
    plan: TrialPlan = config["trial"]["plan"]
    searcher = make_searcher(
        plan.searcher,
        list(plan.n_choices),
        len(plan.objectives),
        seed=plan.seed,
        n_constraints=len(plan.constraints),
        **plan.searcher_options,
    )
    candidates: list[Candidate] = []
    generation, repeats = 0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            state = json.loads((Path(ckpt_dir) / CHECKPOINT_FILE).read_text())
        searcher.load_state_dict(state["searcher"])
        candidates = [Candidate.from_json(c) for c in state["candidates"]]
        generation, repeats = int(state["generation"]), int(state.get("repeats", 0))
    known = {c.network_key: c for c in candidates}

    pools = ActorPools(plan.simulators, plan.evaluators, offset=plan.index)
    sink = RemoteSink.named(plan.tracker)
    sink.start_trial(plan.key, plan.searcher, plan.budget, plan.trial_params)
    if candidates:
        sink.log_candidates(plan.key, candidates)
    timers = {
        "setup_s": time.perf_counter() - t_trial,
        "waiting_for_pools_s": 0.0,
        "outside_evaluation_s": 0.0,
        # time.monotonic() when the trial function started: comparable with the driver's on one machine
        "start_monotonic_s": time.monotonic() - (time.perf_counter() - t_trial),
    }
    stale = 0
    while len(candidates) < plan.evaluations and stale < MAX_STALE_ASKS:
        t0 = time.perf_counter()
        try:
            genomes = [Genome(g) for g in searcher.ask(min(plan.batch_size, plan.evaluations - len(candidates)))]
        except SearchSpaceExhaustedError:
            break
        described = pools.describe(genomes)  # (network key, label, active genes): the space lives in the actors
        keys = [d[0] for d in described]
        fresh = [i for i, k in enumerate(keys) if k not in known and k not in keys[:i]]
        t_ask = time.perf_counter()
        records, t_sim = evaluate_genomes(
            plan, pools, [genomes[i] for i in fresh], [described[i] for i in fresh], len(candidates), generation
        )
        t_eval = time.perf_counter()
        known.update((c.network_key, c) for c in records)
        told = [known[k] for k in keys]  # repeats get the cached result of their network
        searcher.tell(
            [g.array() for g in genomes],
            np.asarray([c.objectives for c in told], dtype=float),
            np.asarray([[c.violations[n] for n in plan.constraints] for c in told], dtype=float).reshape(
                len(told), len(plan.constraints)
            ),
        )
        candidates.extend(records)
        repeats += len(genomes) - len(fresh)
        stale = 0 if records else stale + 1
        generation += 1
        timers["waiting_for_pools_s"] += t_eval - t_ask
        metrics = _generation_metrics(plan, candidates, generation, repeats, timers, t_trial)
        # the trial's loop ends after this generation: the launch tells a finished trial from one Tune stopped on
        # SIGINT by this flag (an interrupted trial's last result has trial_complete = 0; not Tune's own "done",
        # which Tune sets itself when it stops a trial)
        metrics["trial_complete"] = float(
            len(candidates) >= plan.evaluations or stale >= MAX_STALE_ASKS or searcher.n_asked >= searcher.cardinality
        )
        metrics.update(generation_s=time.perf_counter() - t0, simulate_s=t_sim, evaluate_s=t_eval - t_ask)
        metrics["outside_evaluation_s"] = timers["outside_evaluation_s"] + (time.perf_counter() - t0) - (t_eval - t_ask)
        with tempfile.TemporaryDirectory() as tmp:
            state = {
                "searcher": searcher.state_dict(),
                "candidates": [c.to_json() for c in candidates],
                "generation": generation,
                "repeats": repeats,
            }
            (Path(tmp) / CHECKPOINT_FILE).write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        sink.log_candidates(plan.key, records)
        sink.log_trial_metrics(plan.key, generation, {k: metrics[k] for k in ("evaluated", "feasible", "hypervolume")})
        timers["outside_evaluation_s"] += (time.perf_counter() - t0) - (t_eval - t_ask)


def _generation_metrics(
    plan: TrialPlan,
    candidates: Sequence[Candidate],
    generation: int,
    repeats: int,
    timers: Mapping[str, float],
    t_trial: float,
) -> dict[str, float]:
    """What a trial reports to Tune after a generation: counts, hypervolume of the feasible candidates and its
    timers."""
    from rnc.search.pareto import hypervolume

    F = np.asarray([c.objectives for c in candidates], dtype=float).reshape(len(candidates), len(plan.objectives))
    feasible = np.asarray([c.feasible for c in candidates], dtype=bool)
    hv = (
        hypervolume(normalized(F[feasible], plan.bounds), [HYPERVOLUME_REF] * len(plan.objectives))
        if feasible.any()
        else 0.0
    )
    return {
        "generation": generation,
        "evaluated": len(candidates),
        "repeats_told": repeats,
        "feasible": int(feasible.sum()),
        "hypervolume": float(hv),
        "setup_s": timers["setup_s"],
        "trial_elapsed_s": time.perf_counter() - t_trial,
        "waiting_for_pools_s": timers["waiting_for_pools_s"],
        "start_monotonic_s": timers["start_monotonic_s"],
    }


def evaluate_genomes(
    plan: TrialPlan,
    pools: Any,
    genomes: Sequence[Genome],
    described: Sequence[tuple[str, str, Mapping[str, Any]]],
    first_index: int,
    generation: int,
) -> tuple[list[Candidate], float]:
    """Simulate ``genomes`` (distinct new networks) on the trial's hardware, evaluate the accuracy of those that
    pass the hardware constraints when the trial needs it, and build their :class:`Candidate` records (indices
    from ``first_index``; ``described``: their ``(network key, label, active genes)``). Returns the records and
    the seconds spent simulating."""
    if not genomes:
        return [], 0.0
    t0 = time.perf_counter()
    sims = pools.simulate(list(genomes), plan.hardware, plan.hardware_fingerprint)
    t_sim = time.perf_counter() - t0
    violations = [
        hardware_violations(s, budget=plan.budget, fit_budget=plan.fit_budget, max_latency_ns=plan.max_latency_ns)
        for s in sims
    ]
    accuracy: dict[int, SubnetAccuracy] = {}
    if plan.needs_accuracy:
        todo = [i for i, v in enumerate(violations) if all(x <= 0 for x in v.values())]
        hws = [plan.hardware if plan.needs_hw_accuracy else None for _ in todo]  # genes applied by the evaluator
        results = pools.evaluate([genomes[i] for i in todo], hws, plan.eval_seed)
        accuracy = dict(zip(todo, results, strict=True))
    records = []
    now_ms = int(time.time() * 1000)
    for i, genome in enumerate(genomes):
        metrics = simulator_metrics(sims[i])
        measured = accuracy.get(i, SubnetAccuracy(None, None))
        metrics["accuracy"] = measured.accuracy
        metrics["hw_accuracy"] = measured.hw_accuracy
        viol = dict(violations[i])
        if plan.min_accuracy is not None:
            acc = metrics["accuracy"]
            viol["min_accuracy"] = float(plan.min_accuracy) - float(acc) if acc is not None else 1.0
        viol = {name: float(viol[name]) for name in plan.constraints}
        row = tuple(objective_row(metrics, [(o.metric, o.sign) for o in plan.objectives], plan.worst))
        feasible = all(v <= 0 for v in viol.values())
        if feasible and not all(_finite(metrics.get(o.metric)) for o in plan.objectives):
            # a failed evaluation (a missing or non-finite objective): infeasible, and told as NaN so that every
            # searcher treats it as infeasible (rnc.search.searchers.base) instead of as its worst bound
            feasible, row = False, tuple(math.nan for _ in row)
        index = first_index + i
        records.append(
            Candidate(
                candidate_id=f"{plan.key}/{index:05d}",
                trial=plan.key,
                searcher=plan.searcher,
                budget=plan.budget,
                index=index,
                generation=generation,
                genome=genome,
                network_key=described[i][0],
                label=described[i][1],
                genes=dict(described[i][2]),
                hardware=plan.hardware_fingerprint,
                metrics=metrics,
                violations=viol,
                objectives=row,
                feasible=feasible,
                compiles=bool(sims[i].get("feasible", True)),
                timestamp_ms=now_ms,
            )
        )
    return records, t_sim


def load_checkpoint_candidates(checkpoint: Any) -> list[Candidate]:
    """The evaluated candidates stored in a trial checkpoint (``ray.tune.Checkpoint``)."""
    with checkpoint.as_directory() as ckpt_dir:
        state = json.loads((Path(ckpt_dir) / CHECKPOINT_FILE).read_text())
    return [Candidate.from_json(c) for c in state["candidates"]]


# -- the Tuner ---------------------------------------------------------------------------------------------------
PROGRESS_SINKS: dict[str, Any] = {}


class ProgressCallback(Callback):
    """Forwards every trial result to ``sink(trial_key, result)`` in the driver (rich progress).

    Picklable (Tune stores its run config with the experiment): the sink is looked up at call time in
    :data:`PROGRESS_SINKS` by name, so a restored experiment reports to the new driver's progress display.
    """

    def __init__(self, sink_name: str) -> None:
        self.sink_name = sink_name

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        sink = PROGRESS_SINKS.get(self.sink_name)
        if sink is not None:
            sink(trial.config["trial"]["key"], result)


def tune_point(plan: TrialPlan) -> dict[str, Any]:
    """One grid point of the Tuner's ``param_space``: the :class:`TrialPlan` under ``plan`` and, as plain values,
    what the driver reads back from results (``key``, ``searcher``, ``budget``, ``params``). Tune keeps objects of
    a config in its object store and shows the driver's callbacks and results placeholders for them, so the plan
    itself is read only inside the trial."""
    return {
        "key": plan.key,
        "searcher": plan.searcher,
        "budget": plan.budget,
        "params": json.loads(json.dumps(plan.trial_params, default=str)),
        "plan": plan,
    }


def trial_name(trial: Any) -> str:
    """Tune trial (and folder) name: the grid point's key, ``nsga2-b64``."""
    return str(trial.config["trial"]["key"])


def build_tuner(
    plans: Sequence[TrialPlan],
    *,
    run_name: str,
    storage_path: str,
    trial_cpus: float,
    max_concurrent_trials: int | None,
    sink_name: str,
) -> Any:
    """A ``ray.tune.Tuner`` with one trial per plan (``grid_search`` over :func:`tune_point` of each plan).

    Trial actors are reused (``reuse_actors``): a trial that starts after another finished runs in that trial's
    worker process, so a launch pays the worker start and imports once per concurrently running trial, not once
    per trial. Each grid point is still its own Tune trial, with its own checkpoints and results."""
    from ray import tune

    trainable = tune.with_resources(search_trial, {"cpu": trial_cpus})
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([tune_point(p) for p in plans])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent_trials,
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=storage_path,
            verbose=0,
            log_to_file=True,
            callbacks=[ProgressCallback(sink_name)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # a kept count forces state snapshots
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )


def save_plans(plans: Sequence[TrialPlan], path: Path) -> None:
    """Keep the trial plans next to the Tune state (pickle): Tune does not restore the objects of a
    ``param_space`` (it holds placeholders for them), so ``--resume`` passes them again (:func:`restore_tuner`)."""
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(list(plans)))
    tmp.replace(path)


def load_plans(path: Path) -> list[TrialPlan]:
    import pickle

    if not path.is_file():
        raise FileNotFoundError(f"no trial plans at {str(path)!r}; run `rnc-platform launch` without --resume")
    return pickle.loads(path.read_bytes())


def tune_state_whole(experiment_path: str | Path, plans_path: str | Path) -> bool:
    """Whether a launch left Tune state to resume from: its trial plans (:func:`save_plans`) and a newest Tune
    experiment state (``experiment_state-*.json``) that is whole. A launch that stopped before Tune saved anything,
    or a disk that filled up while Tune saved it (a file cut short, on which Tune would log a traceback and start
    every trial again by itself), leaves none."""
    files = sorted(Path(experiment_path).glob("experiment_state-*.json"))
    if not files or not Path(plans_path).is_file():
        return False
    try:
        json.loads(files[-1].read_text())
        load_plans(Path(plans_path))
    except (OSError, ValueError, EOFError, ImportError, AttributeError):
        return False
    return True


def restore_tuner(experiment_path: str, *, trial_cpus: float, plans: Sequence[TrialPlan]) -> Any:
    """Restore an interrupted launch's Tuner: unfinished and errored trials continue from their checkpoints."""
    from ray import tune

    if not tune.Tuner.can_restore(experiment_path):
        raise FileNotFoundError(
            f"no restorable Ray Tune experiment at {experiment_path!r}; run `rnc-platform launch` without --resume"
        )
    trainable = tune.with_resources(search_trial, {"cpu": trial_cpus})
    return tune.Tuner.restore(
        experiment_path,
        trainable=trainable,
        resume_unfinished=True,
        resume_errored=True,
        param_space={"trial": tune.grid_search([tune_point(p) for p in plans])},
    )

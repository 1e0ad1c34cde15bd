"""Ray Tune orchestration: one trial per (searcher, crossbar budget), each running its searcher's ask/tell loop.

The trial (:func:`search_trial`, a function trainable) loops over generations:

1. ask a batch of ``batch_size`` genomes;
2. simulate them through the shared ``SimulatorService`` pool (compile + PPA on the budget's hardware);
3. candidates that fail a hardware constraint (``fit_budget``, ``max_latency_ns``) skip the accuracy evaluation
   and are told with a worst-case accuracy (0) and a positive violation; the others go to the
   ``SupernetEvaluator`` pool when an objective or constraint needs accuracy;
4. tell the searcher, in ask order;
5. ``tune.report`` the generation's hypervolume and counts with a checkpoint holding the searcher state and every
   evaluated candidate (JSON);
6. send the generation's candidates to the ``TrackingWriter`` actor (after the checkpoint, so a candidate in
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


def search_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable of one grid point; ``config["trial"]`` is built by :func:`trial_plans`."""
    import ray
    from ray import tune

    from rnc.platform.actors import ActorPools
    from rnc.search.pareto import hypervolume
    from rnc.search.searchers import make_searcher
    from rnc.search.spaces import get_space
    from rnc.simulator import HardwareConfig

    t_trial = time.perf_counter()
    for name in ("ray.tune", "ray.train", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)  # per-checkpoint INFO lines drown the progress display
    plan = config["trial"]
    key = plan["key"]
    space = get_space(plan["space"], **plan["space_options"])
    hw = HardwareConfig.model_validate(plan["hardware"])
    objectives = [(o["metric"], float(o["sign"])) for o in plan["objectives"]]
    constraint_names = list(plan["constraints"])
    bounds = plan["bounds"]
    worst = [b[1] for b in bounds]
    searcher = make_searcher(
        plan["searcher"],
        space.n_choices,
        len(objectives),
        seed=plan["seed"],
        n_constraints=len(constraint_names),
        **plan["searcher_options"],
    )
    candidates: list[dict[str, Any]] = []
    generation = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            state = json.loads((Path(ckpt_dir) / CHECKPOINT_FILE).read_text())
        searcher.load_state_dict(state["searcher"])
        candidates = state["candidates"]
        generation = int(state["generation"])

    pools = ActorPools(plan["simulators"], plan["evaluators"], offset=plan["index"])
    tracker = ray.get_actor(plan["tracker"])
    ray.get(
        tracker.start_trial.remote(
            key, plan["searcher"], plan["budget"], {"seed": plan["seed"], **plan["searcher_options"]}
        )
    )
    if candidates:
        tracker.log_candidates.remote(key, candidates)

    evaluations = int(plan["evaluations"])
    batch_size = int(plan["batch_size"])
    needs_accuracy = bool(plan["needs_accuracy"])
    min_accuracy = plan["min_accuracy"]
    setup_s = time.perf_counter() - t_trial
    waiting_s = 0.0  # cumulative time this trial waited for the actor pools (evaluation, queueing included)
    outside_s = 0.0  # cumulative time in the loop outside evaluation: ask, tell, fronts, checkpoint, report
    while len(candidates) < evaluations:
        t0 = time.perf_counter()
        n = min(batch_size, evaluations - len(candidates))
        genomes = searcher.ask(n)
        sims = pools.simulate(genomes, hw)
        t_sim = time.perf_counter() - t0
        violations = [
            hardware_violations(
                s, budget=plan["budget"], fit_budget=plan["fit_budget"], max_latency_ns=plan["max_latency_ns"]
            )
            for s in sims
        ]
        hw_ok = [all(v <= 0 for v in viol.values()) for viol in violations]
        accuracy: dict[int, dict[str, Any]] = {}
        if needs_accuracy:
            todo = [i for i, ok in enumerate(hw_ok) if ok]
            hws = [space.hardware_for(genomes[i], hw) if plan["needs_hw_accuracy"] else None for i in todo]
            accuracy = dict(zip(todo, pools.evaluate([genomes[i] for i in todo], hws, plan["eval_seed"]), strict=True))
        t_eval = time.perf_counter() - t0
        records = []
        rows = []
        viol_rows = []
        for i, genome in enumerate(genomes):
            record = _candidate_record(plan, space, genome, len(candidates) + i, generation, sims[i])
            if i in accuracy:
                record["accuracy"] = accuracy[i].get("accuracy")
                record["hw_accuracy"] = accuracy[i].get("hw_accuracy")
            viol = dict(violations[i])
            if min_accuracy is not None:
                acc = record.get("accuracy")
                viol["min_accuracy"] = float(min_accuracy) - float(acc) if acc is not None else 1.0
            record["violations"] = {name: float(viol[name]) for name in constraint_names}
            record["feasible"] = all(v <= 0 for v in record["violations"].values())
            row = objective_row(record, objectives, worst)
            record["objectives"] = row
            # a feasible candidate with a missing or non-finite objective is a failed evaluation: infeasible,
            # told as NaN so that every searcher treats it as infeasible (rnc.search.searchers.base)
            failed = record["feasible"] and not all(_finite(record.get(metric)) for metric, _ in objectives)
            if failed:
                record["feasible"] = False
                row = [math.nan] * len(row)
            rows.append(row)
            viol_rows.append([record["violations"][name] for name in constraint_names])
            records.append(record)
        searcher.tell(
            genomes,
            np.asarray(rows, dtype=float),
            np.asarray(viol_rows, dtype=float).reshape(len(genomes), len(constraint_names)),
        )
        candidates.extend(records)
        generation += 1

        waiting_s += t_eval
        F = np.asarray([c["objectives"] for c in candidates], dtype=float)
        feasible = np.asarray([c["feasible"] for c in candidates], dtype=bool)
        hv = (
            hypervolume(normalized(F[feasible], bounds), [HYPERVOLUME_REF] * len(objectives)) if feasible.any() else 0.0
        )
        metrics = {
            "generation": generation,
            "evaluated": len(candidates),
            "feasible": int(feasible.sum()),
            "hypervolume": float(hv),
            "generation_s": time.perf_counter() - t0,
            "simulate_s": t_sim,
            "evaluate_s": t_eval,
            "setup_s": setup_s,
            "trial_elapsed_s": time.perf_counter() - t_trial,
            "waiting_for_pools_s": waiting_s,
            "outside_evaluation_s": outside_s + (time.perf_counter() - t0 - t_eval),
        }
        t_report = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            state = {"searcher": searcher.state_dict(), "candidates": candidates, "generation": generation}
            (Path(tmp) / CHECKPOINT_FILE).write_text(json.dumps(state))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        tracker.log_candidates.remote(key, records)
        tracker.log_trial_metrics.remote(
            key, generation, {k: metrics[k] for k in ("evaluated", "feasible", "hypervolume")}
        )
        outside_s = metrics["outside_evaluation_s"] + (time.perf_counter() - t_report)


def _candidate_record(
    plan: Mapping[str, Any], space: Any, genome: np.ndarray, index: int, generation: int, summary: Mapping[str, Any]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "candidate_id": f"{plan['key']}/{index:05d}",
        "trial": plan["key"],
        "searcher": plan["searcher"],
        "budget": plan["budget"],
        "index": index,
        "generation": generation,
        "genome": [int(v) for v in genome],
        "genome_key": space.key(genome),
        "genes": {k: _plain(v) for k, v in space.decode(genome).items()},
        "timestamp_ms": int(time.time() * 1000),
        "accuracy": None,
        "hw_accuracy": None,
    }
    for key in (
        "latency_ns",
        "throughput_ips",
        "energy_uj",
        "area_mm2",
        "edap",
        "utilization",
        "crossbars_used",
        "min_crossbars",
        "energy_pj",
    ):
        value = summary.get(key)
        record[key] = None if value is None else float(value)
    record["compiles"] = bool(summary.get("feasible", True))
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def load_checkpoint_candidates(checkpoint: Any) -> list[dict[str, Any]]:
    """The evaluated candidates stored in a trial checkpoint (``ray.tune.Checkpoint``)."""
    with checkpoint.as_directory() as ckpt_dir:
        return json.loads((Path(ckpt_dir) / CHECKPOINT_FILE).read_text())["candidates"]


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


def trial_name(trial: Any) -> str:
    """Tune trial (and folder) name: the grid point's key, ``nsga2-b64``."""
    return str(trial.config["trial"]["key"])


def build_tuner(
    plans: Sequence[Mapping[str, Any]],
    *,
    run_name: str,
    storage_path: str,
    trial_cpus: float,
    max_concurrent_trials: int | None,
    sink_name: str,
) -> Any:
    """A ``ray.tune.Tuner`` with one trial per plan (``grid_search`` over the plans)."""
    from ray import tune

    trainable = tune.with_resources(search_trial, {"cpu": trial_cpus})
    return tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([dict(p) for p in plans])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent_trials,
            reuse_actors=False,
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


def restore_tuner(experiment_path: str, *, trial_cpus: float) -> Any:
    """Restore an interrupted launch's Tuner: unfinished and errored trials continue from their checkpoints."""
    from ray import tune

    if not tune.Tuner.can_restore(experiment_path):
        raise FileNotFoundError(
            f"no restorable Ray Tune experiment at {experiment_path!r}; run `rnc-platform launch` without --resume"
        )
    trainable = tune.with_resources(search_trial, {"cpu": trial_cpus})
    return tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True)

"""End-to-end launches on a real local Ray and a real MLflow SQLite store (simulator-only objectives, small grid).

Checks: every asked candidate is tracked once, as a nested run under its trial under the launch; the Pareto tags
match an independent non-dominated sort of the metrics read back from MLflow; one seed gives one answer; a
launch whose driver is killed (SIGKILL) mid-way and resumed gives the candidates and fronts of an uninterrupted
one, leaves no Ray process of the killed driver running, and passes the store audit of ``test_launch_faults.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from mlflow import MlflowClient

from rnc.platform.config import ExperimentConfig
from rnc.platform.launch import run_launch
from tests.platform.test_launch_faults import _descendants, _still_running, audit_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVALUATIONS, BATCH = 24, 8
SEARCHERS = ("nsga2", "random")
BUDGETS = (64, 128)


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=3, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, simulator_launch_config) -> Path:
    root = tmp_path_factory.mktemp("launch")
    simulator_launch_config(root, name="test-launch", seed=3, evaluations=EVALUATIONS, batch_size=BATCH,
                            searchers=SEARCHERS, budgets=BUDGETS)
    return root


@pytest.fixture(scope="module")
def first(ray_local, workdir: Path):
    cfg = ExperimentConfig.from_yaml(workdir / "exp.yaml")
    return run_launch(cfg, show_progress=False)


def _key_columns(df):
    cols = ["candidate_id", "network_key", "latency_ns", "energy_uj", "feasible", "pareto_budget", "pareto_global"]
    return df.sort_values("candidate_id")[cols].reset_index(drop=True)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def test_every_candidate_is_tracked_once_as_nested_run(first) -> None:
    client = MlflowClient(first.tracking_uri)
    exp = client.get_experiment_by_name("test-launch")
    trials = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{first.launch_run_id}' and tags.`rnc.kind` = 'trial'"
    )
    assert sorted(t.data.tags["rnc.trial"] for t in trials) == sorted(f"{s}-b{b}" for s in SEARCHERS for b in BUDGETS)
    total = 0
    for trial in trials:
        runs = client.search_runs(
            [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{trial.info.run_id}'", max_results=1000
        )
        ids = [r.data.tags["rnc.candidate_id"] for r in runs]
        assert len(ids) == len(set(ids)) == EVALUATIONS
        # the evaluation budget counts distinct networks: no network twice in a trial
        networks = [r.data.params["network"] for r in runs]
        assert len(set(networks)) == EVALUATIONS
        for run in runs:
            assert {"latency_ns", "energy_uj", "utilization", "crossbars_used", "feasible"} <= set(run.data.metrics)
            assert run.info.status == "FINISHED"
            # active genes as params: mbv3 has 36 genes, a network uses 4 depth genes + 2 genes per block
            depths = [int(run.data.params[f"s{i}_depth"]) for i in range(1, 5)]
            assert len(run.data.params) == 3 + 4 + 2 * sum(depths)
            assert run.info.run_name.startswith(run.data.tags["searcher"] + " b")
        assert trial.data.metrics["evaluated"] == EVALUATIONS
        assert "hypervolume" in trial.data.metrics
        total += len(runs)
    assert total == len(first.candidates) == EVALUATIONS * len(SEARCHERS) * len(BUDGETS)
    launch_tags = client.get_run(first.launch_run_id).data.tags
    assert launch_tags["rnc.kind"] == "launch" and "version.ray" in launch_tags
    here = Path(__file__).parent
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True).returncode == 0:
        # running from a checkout: the launch recorded a commit of it (HEAD or an ancestor of the current HEAD)
        commit = launch_tags["mlflow.source.git.commit"]
        assert subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=here).returncode == 0
    artifacts = {a.path for a in client.list_artifacts(first.launch_run_id)}
    assert {"config.yaml", "candidates.csv", "candidates.parquet", "best_genomes.json", "plots"} <= artifacts


def test_pareto_tags_match_an_independent_sort(first) -> None:
    client = MlflowClient(first.tracking_uri)
    exp = client.get_experiment_by_name("test-launch")
    runs = client.search_runs(
        [exp.experiment_id],
        "tags.`rnc.kind` = 'candidate' and tags.`rnc.candidate_id` LIKE '%/%'",
        max_results=5000,
    )
    runs = [r for r in runs if r.data.tags["mlflow.parentRunId"] in set(_trial_ids(client, exp, first))]
    points = {
        r.info.run_id: (
            int(r.data.tags["budget"]),
            r.data.metrics["feasible"] > 0,
            (r.data.metrics["latency_ns"], r.data.metrics["energy_uj"]),
        )
        for r in runs
    }
    for run in runs:
        budget, feasible, f = points[run.info.run_id]
        same_budget = [p[2] for p in points.values() if p[1] and p[0] == budget]
        everywhere = [p[2] for p in points.values() if p[1]]
        on_budget = feasible and not any(_dominates(g, f) for g in same_budget)
        on_global = feasible and not any(_dominates(g, f) for g in everywhere)
        assert run.data.metrics["pareto_budget"] == float(on_budget), run.data.tags["rnc.candidate_id"]
        assert run.data.metrics["pareto_global"] == float(on_global), run.data.tags["rnc.candidate_id"]
    assert any(r.data.metrics["pareto_global"] == 1 for r in runs)


def _trial_ids(client, exp, launch) -> list[str]:
    trials = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{launch.launch_run_id}' and tags.`rnc.kind` = 'trial'"
    )
    return [t.info.run_id for t in trials]


def test_same_seed_same_fronts(first, workdir: Path) -> None:
    again = run_launch(ExperimentConfig.from_yaml(workdir / "exp.yaml"), show_progress=False)
    assert again.launch_id != first.launch_id
    assert _key_columns(again.candidates).equals(_key_columns(first.candidates))


def test_resume_after_kill_gives_uninterrupted_fronts(first, workdir: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("rnc-platform")), "launch", str(workdir / "exp.yaml")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    storage = workdir / "ray" / "test-launch"
    before = json.loads((storage / "latest.json").read_text())["launch_id"]
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the launch ended before it could be interrupted"
            latest = json.loads((storage / "latest.json").read_text())["launch_id"]
            # trials run one at a time (max_concurrent_trials: 1): kill once the first trial checkpointed twice
            if latest != before and len(list((storage / latest).glob("*/checkpoint_*"))) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the launch produced no checkpoint in time")
        ray_processes = _descendants(proc.pid)  # the local Ray the launch started, seen from /proc
        assert any("raylet" in command for _, _, command in ray_processes), ray_processes
        assert json.loads((storage / ".ray-session.json").read_text())["driver_pid"] == proc.pid
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone, as the OOM killer does: Ray's agents outlive it
        proc.wait()
        # the launch's watchdog stops what the dead driver left (left alone, Ray's agents live on for about a
        # minute): within its 1 s poll and 3 s grace, plus slack for a loaded machine
        gone_by = time.monotonic() + 30
        while _still_running(ray_processes) and time.monotonic() < gone_by:
            time.sleep(0.2)
        assert _still_running(ray_processes) == []
        resumed = run_launch(ExperimentConfig.from_yaml(workdir / "exp.yaml"), resume=True, show_progress=False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the launch's group, when the test failed
    assert resumed.launch_id == latest != first.launch_id
    audit = audit_store(resumed.tracking_uri, "test-launch", resumed.launch_id)
    assert audit["tracked"] == len(first.candidates) and audit["duplicates"] == 0, audit
    assert audit["running"] == [] and audit["hollow"] == [] and audit["wrong_tags"] == [], audit
    assert audit["launch_status"] == ["FINISHED"], audit
    finished = [p for p in (storage / latest).glob("*/checkpoint_*")]
    assert len(finished) > 2  # the resumed launch went on from the interrupted one's checkpoints
    assert _key_columns(resumed.candidates).equals(_key_columns(first.candidates))
    client = MlflowClient(resumed.tracking_uri)
    exp = client.get_experiment_by_name("test-launch")
    ids = []
    for trial_id in _trial_ids(client, exp, resumed):
        runs = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{trial_id}'", max_results=1000)
        ids += [r.data.tags["rnc.candidate_id"] for r in runs]
    assert len(ids) == len(set(ids)) == len(first.candidates)  # none lost, none tracked twice

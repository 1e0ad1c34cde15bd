"""MlflowSink on a real MLflow SQLite store: run hierarchy, metrics as columns, idempotent resume, and the
bulk SQL path writing exactly what the public client path writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from rnc.platform.metrics import METRIC_NAMES
from rnc.platform.records import Candidate, Genome
from rnc.platform.tracking import CANDIDATE_METRICS, MlflowSink, TrackingSink

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _records(trial: str, n: int) -> list[Candidate]:
    out = []
    for i in range(n):
        metrics = {name: None for name in METRIC_NAMES}
        metrics.update(
            accuracy=None if i % 5 == 0 else 0.5 + i / 100,
            latency_ns=1000.0 * (i + 1) + 0.123456,
            energy_uj=2.0 + i,
            utilization=0.8,
            area_mm2=0.7,
            edap=1e9 * (i + 1),
            throughput_ips=1e3,
            crossbars_used=64.0,
        )
        out.append(
            Candidate(
                candidate_id=f"{trial}/{i:05d}",
                trial=trial,
                searcher=trial.split("-")[0],
                budget=64,
                index=i,
                generation=i // 4,
                genome=Genome([i % 3, i % 2, 1]),
                network_key=f"{i % 3}-{i % 2}-0",
                label=f"net{i}",
                genes={"kernel_0": 3 + 2 * (i % 3), "expand_0": 4},  # the third gene is inactive: not a param
                hardware="hw0",
                metrics=metrics,
                feasible=i % 5 != 0,
            )
        )
    return out


def _candidate_runs(uri: str, writer: MlflowSink, trial_run: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([writer.experiment_id], f"tags.`mlflow.parentRunId` = '{trial_run}'", max_results=1000)


def _snapshot(runs: list) -> list[tuple]:
    return sorted(
        (
            r.data.tags["rnc.candidate_id"],
            r.info.status,
            r.info.run_name,
            tuple(sorted(r.data.metrics.items())),
            tuple(sorted(r.data.params.items())),
            tuple(sorted((k, v) for k, v in r.data.tags.items() if k != "mlflow.parentRunId")),
        )
        for r in runs
    )


@pytest.mark.parametrize("bulk", [True, False])
def test_hierarchy_metrics_and_pareto_tags(tmp_path: Path, bulk: bool) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = MlflowSink(uri, "exp", flush_every=5, bulk=bulk)
    assert isinstance(writer, TrackingSink)
    assert (writer._sql_store is not None) == bulk
    launch = writer.start_launch("L1", "L1", "name: exp\n", {"version.ray": "2.60.0"})
    trial = writer.start_trial("nsga2-b64", "nsga2", 64, {"seed": 1})
    records = _records("nsga2-b64", 12)
    assert writer.log_candidates("nsga2-b64", records) == 12
    members = {c.candidate_id: (c.index in (1, 2), c.index == 1) for c in records}
    assert writer.mark_pareto(members) == 12
    writer.end_trial("nsga2-b64")
    writer.end_launch()
    client = MlflowClient(uri)
    assert client.get_run(trial).data.tags["mlflow.parentRunId"] == launch
    runs = _candidate_runs(uri, writer, trial)
    assert len(runs) == 12
    by_id = {r.data.tags["rnc.candidate_id"]: r for r in runs}
    assert set(by_id["nsga2-b64/00001"].data.metrics) == (
        set(CANDIDATE_METRICS) - {"hw_accuracy", "min_crossbars"}
    ) | {"pareto_budget", "pareto_global"}
    assert by_id["nsga2-b64/00001"].data.metrics["latency_ns"] == 2000.0  # rounded to 4 significant digits
    assert by_id["nsga2-b64/00001"].info.run_name == "nsga2 b64 #001 net1"
    assert "genome" not in by_id["nsga2-b64/00001"].data.params  # active genes only, plus the network key
    assert by_id["nsga2-b64/00001"].data.params["network"] == "1-1-0"
    assert "accuracy" not in by_id["nsga2-b64/00000"].data.metrics  # skipped accuracy is absent, not NaN
    assert by_id["nsga2-b64/00000"].data.metrics["feasible"] == 0.0
    assert by_id["nsga2-b64/00003"].data.params["kernel_0"] == "3"
    tagged = client.search_runs([writer.experiment_id], "metrics.pareto_budget = 1")
    assert sorted(r.data.tags["rnc.candidate_id"] for r in tagged) == ["nsga2-b64/00001", "nsga2-b64/00002"]
    # metrics are ordinary run metrics: filterable and sortable like UI columns
    fast = client.search_runs([writer.experiment_id], "metrics.latency_ns < 3500 and params.expand_0 = '4'")
    assert len(fast) == 3
    assert client.list_artifacts(launch)[0].path == "config.yaml"
    assert client.get_experiment(writer.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_bulk_path_writes_what_the_client_path_writes(tmp_path: Path) -> None:
    snapshots = []
    for bulk in (True, False):
        uri = f"sqlite:///{tmp_path / f'{bulk}.db'}"
        writer = MlflowSink(uri, "exp", bulk=bulk)
        writer.start_launch("L", "L", "x: 1\n", {})
        trial = writer.start_trial("bayes-b64", "bayes", 64, {})
        writer.log_candidates("bayes-b64", _records("bayes-b64", 6))
        writer.flush()
        writer.mark_pareto({"bayes-b64/00002": (True, False)})
        snapshots.append(_snapshot(_candidate_runs(uri, writer, trial)))
    assert snapshots[0] == snapshots[1]


def test_resumed_writer_skips_candidates_already_tracked(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MlflowSink(uri, "exp")
    first.start_launch("L1", "L1", "x: 1\n", {})
    trial = first.start_trial("random-b64", "random", 64, {})
    records = _records("random-b64", 10)
    first.log_candidates("random-b64", records[:6])
    first.flush()
    # a new writer (the resumed launch) finds the launch and trial runs and the 6 candidates they hold
    second = MlflowSink(uri, "exp")
    assert second.start_launch("L1", "L1", "x: 1\n", {}) == first.launch_run_id
    assert second.start_trial("random-b64", "random", 64, {}) == trial
    assert len(second.logged_candidate_ids("random-b64")) == 6
    assert second.log_candidates("random-b64", records) == 4
    second.flush()
    ids = [r.data.tags["rnc.candidate_id"] for r in _candidate_runs(uri, second, trial)]
    assert sorted(ids) == sorted(r.candidate_id for r in records)


@pytest.mark.parametrize("bulk", [True, False])
def test_pareto_marks_equal_the_last_fronts_after_a_resume(tmp_path: Path, bulk: bool) -> None:
    """The issue's stale-tag example: fronts recomputed after a resume must replace the old marks, not add to
    them (the launch marks every candidate, members 1 and the others 0)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MlflowSink(uri, "exp", bulk=bulk)
    first.start_launch("L1", "L1", "x: 1\n", {})
    first.start_trial("nsga2-b64", "nsga2", 64, {})
    first.log_candidates("nsga2-b64", _records("nsga2-b64", 8))
    old = {"nsga2-b64/00001", "nsga2-b64/00002", "nsga2-b64/00003"}
    first.mark_pareto({f"nsga2-b64/{i:05d}": (f"nsga2-b64/{i:05d}" in old, i == 1) for i in range(8)})
    second = MlflowSink(uri, "exp", bulk=bulk)  # the resumed launch: more candidates, other fronts
    second.start_launch("L1", "L1", "x: 1\n", {})
    second.start_trial("nsga2-b64", "nsga2", 64, {})
    second.log_candidates("nsga2-b64", _records("nsga2-b64", 12))
    new = {"nsga2-b64/00002", "nsga2-b64/00010"}
    second.mark_pareto({f"nsga2-b64/{i:05d}": (f"nsga2-b64/{i:05d}" in new, i == 10) for i in range(12)})
    client = MlflowClient(uri)
    fronts = {"pareto_budget": sorted(new), "pareto_global": ["nsga2-b64/00010"]}
    for metric, want in fronts.items():
        marked = client.search_runs([second.experiment_id], f"metrics.{metric} = 1")
        assert sorted(r.data.tags["rnc.candidate_id"] for r in marked) == want


def test_killed_launch_leaves_no_run_running(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = MlflowSink(uri, "exp")
    launch = writer.start_launch("L1", "L1", "x: 1\n", {})
    trials = [writer.start_trial(key, "nsga2", 64, {}) for key in ("nsga2-b64", "nsga2-b128")]
    writer.log_candidates("nsga2-b64", _records("nsga2-b64", 4))
    writer.end_launch("KILLED")
    client = MlflowClient(uri)
    assert client.get_run(launch).info.status == "KILLED"
    assert [client.get_run(t).info.status for t in trials] == ["KILLED", "KILLED"]
    assert not client.search_runs([writer.experiment_id], "attributes.status = 'RUNNING'")


def test_resume_repairs_a_hollow_candidate_run(tmp_path: Path) -> None:
    """The issue's hollow run: a candidate run left RUNNING with no metrics and no params (the store was lost in
    the middle of its write). Resume must not trust it: it is replaced by a whole run, with no duplicate."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MlflowSink(uri, "exp")
    first.start_launch("L1", "L1", "x: 1\n", {})
    trial = first.start_trial("bayes-b64", "bayes", 64, {})
    records = _records("bayes-b64", 6)
    first.log_candidates("bayes-b64", records[:4])
    first.flush()
    client = MlflowClient(uri)
    client.create_run(first.experiment_id, run_name="bayes-b64/00004", tags={
        "rnc.kind": "candidate", "rnc.candidate_id": "bayes-b64/00004", "mlflow.parentRunId": trial,
    })  # hollow: RUNNING, no params, no metrics
    second = MlflowSink(uri, "exp")
    second.start_launch("L1", "L1", "x: 1\n", {})
    second.start_trial("bayes-b64", "bayes", 64, {})
    assert sorted(second.logged_candidate_ids("bayes-b64")) == [r.candidate_id for r in records[:4]]
    assert second.log_candidates("bayes-b64", records) == 2
    second.flush()
    assert second.stats()["hollow_repaired"] == 1
    runs = _candidate_runs(uri, second, trial)
    ids = [r.data.tags["rnc.candidate_id"] for r in runs]
    assert sorted(ids) == sorted(r.candidate_id for r in records)  # none lost, none twice
    assert all(r.info.status == "FINISHED" and r.data.metrics and r.data.params for r in runs)

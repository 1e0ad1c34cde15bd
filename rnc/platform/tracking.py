"""MLflow tracking through one ``TrackingWriter`` Ray actor that batches every write of a launch.

Run hierarchy (one MLflow experiment per config name):

- a **launch** run (parent): the config as artifact, git revision, package versions; final artifacts;
- a **trial** run per (searcher, crossbar budget), child of the launch: per-generation hypervolume and counts;
- a **candidate** run per evaluated candidate, child of its trial: genes as params, and the metrics
  :data:`CANDIDATE_METRICS` (``accuracy``, ``hw_accuracy``, ``latency_ns``, ``throughput_ips``, ``energy_uj``,
  ``area_mm2``, ``edap``, ``utilization``, ``crossbars_used``, ``feasible``) as plain metrics, so the MLflow UI
  shows them as columns and in parallel-coordinates and scatter plots without set-up. Members of the final
  Pareto fronts carry the tags ``pareto_budget = "true"`` (front of their budget) and ``pareto_global = "true"``
  (front across budgets).

Why one actor: SQLite takes one writer at a time, so concurrent trials writing directly would contend on the
database lock; one actor serializes and batches the writes (a tracking server could take more, and the same
actor talks to it through the REST client).

Speed: ``MlflowClient.create_run`` + ``log_batch`` + ``set_terminated`` cost about 25 ms per run against a
SQLite file (``log_batch`` alone commits four transactions). For SQL stores (``sqlite://``, ``postgresql://``,
``mysql://``) candidate runs are therefore written in bulk -- one transaction per flush -- as the rows
``create_run``/``log_batch`` would write, through MLflow's own ORM models (``mlflow.store.tracking.dbmodels``);
other stores (``http(s)://`` servers, ``databricks``) use ``MlflowClient.log_batch`` per run from a thread pool.
Launch and trial runs always use the public client.

Idempotence: every candidate run carries its ``candidate_id`` tag; a resumed launch re-sends the candidates of
its checkpoints and the writer skips the ids MLflow already holds, so none is lost and none duplicated.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ray

from rnc.platform.report import METRIC_COLUMNS

#: Metrics logged on every candidate run (units in the names); missing ones (no accuracy for a candidate that
#: failed its hardware constraints) are left out rather than logged as NaN.
CANDIDATE_METRICS = (*METRIC_COLUMNS, "feasible")

TAG_KIND = "rnc.kind"  # launch | trial | candidate
TAG_CANDIDATE = "rnc.candidate_id"
TAG_TRIAL = "rnc.trial"
TAG_LAUNCH = "rnc.launch_id"
TAG_PARETO_BUDGET = "pareto_budget"
TAG_PARETO_GLOBAL = "pareto_global"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def tracking_actor_name(launch_id: str) -> str:
    """The name of the launch's tracking actor (the launch id is stable across ``--resume``)."""
    return f"rnc-tracking-{launch_id}"


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """For a ``sqlite:///`` store, artifacts go next to the database (``<db dir>/mlartifacts/<experiment>``) so
    that ``mlflow ui --backend-store-uri sqlite:///...`` finds them from any working directory; other stores
    use their server's default (``None``)."""
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db_path.parent / "mlartifacts" / experiment_name).resolve().as_uri()
    return None


def candidate_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The finite :data:`CANDIDATE_METRICS` of a candidate record (``feasible`` as 0/1)."""
    out: dict[str, float] = {}
    for key in CANDIDATE_METRICS:
        value = record.get(key)
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value):
            out[key] = value
    return out


def candidate_params(record: Mapping[str, Any]) -> dict[str, str]:
    """Genes as params (``gene name -> chosen value``) plus the genome key, searcher and budget."""
    params = {str(k): str(v) for k, v in record.get("genes", {}).items()}
    params["genome"] = str(record["genome_key"])
    params["searcher"] = str(record["searcher"])
    params["budget"] = str(record["budget"])
    return params


class TrackingWriter:
    """Batches the MLflow writes of one launch. Use as a Ray actor (:func:`start_tracking_writer`).

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:////abs/path.db``, ``http://host:5000``, ...).
        experiment_name: the MLflow experiment (the config's ``name``).
        flush_every: buffered candidate runs that trigger a write.
        flush_interval_s: a write also happens when the oldest buffered candidate waited this long.
    """

    def __init__(
        self, tracking_uri: str, experiment_name: str, *, flush_every: int = 256, flush_interval_s: float = 2.0
    ) -> None:
        import logging

        import mlflow
        from mlflow import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        mlflow.set_tracking_uri(tracking_uri)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.flush_every = int(flush_every)
        self.flush_interval_s = float(flush_interval_s)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(
                experiment_name, artifact_location=default_artifact_location(tracking_uri, experiment_name)
            )
        else:
            self.experiment_id = experiment.experiment_id
        self.experiment_name = experiment_name
        self.launch_run_id: str | None = None
        self.trial_runs: dict[str, str] = {}
        self.candidate_runs: dict[str, str] = {}  # candidate_id -> run id (written or buffered)
        self.hollow_repaired = 0  # incomplete candidate runs found on resume, deleted and written again
        self._buffer: list[tuple[str, dict[str, Any]]] = []  # (trial run id, record)
        self._buffer_since: float | None = None
        self.write_s = 0.0  # every MLflow call of this writer
        self.candidate_write_s = 0.0  # writing candidate runs only
        self.candidates_written = 0
        self._sql_store = self._bulk_store()
        self._pool = ThreadPoolExecutor(max_workers=8) if self._sql_store is None else None

    # -- runs ---------------------------------------------------------------------------------------
    def start_launch(self, launch_id: str, run_name: str, config_yaml: str, tags: Mapping[str, str]) -> str:
        """Create (or, on resume, find) the launch run; log the config artifact and provenance tags."""
        t0 = time.perf_counter()
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG_LAUNCH}` = '{launch_id}' and tags.`{TAG_KIND}` = 'launch'"
        )
        if found:
            self.launch_run_id = found[0].info.run_id
            self.client.update_run(self.launch_run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=run_name,
                tags={TAG_KIND: "launch", TAG_LAUNCH: launch_id, **{k: str(v) for k, v in tags.items()}},
            )
            self.launch_run_id = run.info.run_id
            self.client.log_text(self.launch_run_id, config_yaml, "config.yaml")
        self.write_s += time.perf_counter() - t0
        return self.launch_run_id

    def start_trial(self, trial_key: str, searcher: str, budget: int, params: Mapping[str, Any]) -> str:
        """Create (or find) the trial run and load the candidate ids it already holds (resume)."""
        from mlflow.entities import Param

        if self.launch_run_id is None:
            raise RuntimeError("start_launch must be called before start_trial")
        if trial_key in self.trial_runs:
            return self.trial_runs[trial_key]
        t0 = time.perf_counter()
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{PARENT_TAG}` = '{self.launch_run_id}' and tags.`{TAG_TRIAL}` = '{trial_key}' "
                f"and tags.`{TAG_KIND}` = 'trial'"
            ),
        )
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            for run in self._search_all(f"tags.`{PARENT_TAG}` = '{run_id}' and tags.`{TAG_KIND}` = 'candidate'"):
                if run.info.status != "FINISHED" or not run.data.metrics or not run.data.params:
                    # a hollow run (a write cut short by a crash or an outage): not trusted; deleted so that the
                    # resumed launch writes the candidate again, whole
                    self.client.delete_run(run.info.run_id)
                    self.hollow_repaired += 1
                    continue
                self.candidate_runs[run.data.tags[TAG_CANDIDATE]] = run.info.run_id
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=trial_key,
                tags={
                    TAG_KIND: "trial",
                    TAG_TRIAL: trial_key,
                    PARENT_TAG: self.launch_run_id,
                    "searcher": searcher,
                    "budget": str(budget),
                },
            )
            run_id = run.info.run_id
            self.client.log_batch(run_id, params=[Param(str(k), str(v)) for k, v in params.items()])
        self.trial_runs[trial_key] = run_id
        self.write_s += time.perf_counter() - t0
        return run_id

    def logged_candidate_ids(self, trial_key: str) -> list[str]:
        """Candidate ids of ``trial_key`` already written or buffered."""
        prefix = f"{trial_key}/"
        return sorted(c for c in self.candidate_runs if c.startswith(prefix))

    def log_candidates(self, trial_key: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Buffer candidate runs (skipping ids already held); write when the buffer is full or old enough.

        Returns the number of new candidates accepted.
        """
        run_id = self.trial_runs.get(trial_key)
        if run_id is None:
            raise RuntimeError(f"trial {trial_key!r} was not started (call start_trial first)")
        new = 0
        for record in records:
            cid = str(record["candidate_id"])
            if cid in self.candidate_runs:
                continue
            self.candidate_runs[cid] = uuid.uuid4().hex
            self._buffer.append((run_id, dict(record)))
            new += 1
        if new and self._buffer_since is None:
            self._buffer_since = time.monotonic()
        if len(self._buffer) >= self.flush_every or (
            self._buffer_since is not None and time.monotonic() - self._buffer_since >= self.flush_interval_s
        ):
            self.flush()
        return new

    def log_trial_metrics(self, trial_key: str, step: int, metrics: Mapping[str, float]) -> None:
        """Per-generation metrics of a trial run (hypervolume, counts) at ``step`` = generation."""
        from mlflow.entities import Metric

        t0 = time.perf_counter()
        ts = int(time.time() * 1000)
        self.client.log_batch(
            self.trial_runs[trial_key],
            metrics=[Metric(k, float(v), ts, int(step)) for k, v in metrics.items() if math.isfinite(float(v))],
        )
        self.write_s += time.perf_counter() - t0

    def end_trial(self, trial_key: str, status: str = "FINISHED") -> None:
        self.flush()
        self.client.set_terminated(self.trial_runs[trial_key], status=status)

    def end_launch(self, status: str = "FINISHED") -> None:
        self.flush()
        if status != "FINISHED":  # an interrupted or failed launch leaves no trial run RUNNING
            for run_id in self.trial_runs.values():
                self.client.set_terminated(run_id, status=status)
        if self.launch_run_id is not None:
            self.client.set_terminated(self.launch_run_id, status=status)

    # -- writes -------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write every buffered candidate run now; returns how many were written."""
        if not self._buffer:
            return 0
        batch, self._buffer, self._buffer_since = self._buffer, [], None
        t0 = time.perf_counter()
        if self._sql_store is not None:
            self._write_sql(batch)
        else:
            list(self._pool.map(self._write_client, batch))
        self.write_s += time.perf_counter() - t0
        self.candidate_write_s += time.perf_counter() - t0
        self.candidates_written += len(batch)
        return len(batch)

    def mark_pareto(self, members: Mapping[str, Sequence[str]]) -> int:
        """Tag front members: ``members`` maps a tag (``pareto_budget``/``pareto_global``) to candidate ids.

        The tags then equal the fronts exactly: the tag is removed from every other candidate run of this launch
        (a resumed launch recomputes its fronts; members of an earlier front must not keep a stale tag)."""
        self.flush()
        t0 = time.perf_counter()
        pairs = [(self.candidate_runs[cid], tag) for tag, cids in members.items() for cid in cids]
        stale = {
            tag: sorted(set(self.candidate_runs.values()) - {self.candidate_runs[cid] for cid in cids})
            for tag, cids in members.items()
        }
        if self._sql_store is not None:
            from mlflow.store.tracking.dbmodels.models import SqlTag

            with self._sql_store.ManagedSessionMaker(read_only=False) as session:
                for tag, run_ids in stale.items():
                    for start in range(0, len(run_ids), 500):
                        session.query(SqlTag).filter(
                            SqlTag.key == tag, SqlTag.run_uuid.in_(run_ids[start : start + 500])
                        ).delete(synchronize_session=False)
                for run_id, tag in pairs:
                    session.merge(SqlTag(key=tag, value="true", run_uuid=run_id))
        else:
            for tag, run_ids in stale.items():
                tagged = self.client.search_runs([self.experiment_id], f"tags.`{tag}` = 'true'", max_results=50_000)
                doomed = {r.info.run_id for r in tagged} & set(run_ids)
                list(self._pool.map(lambda run_id, tag=tag: self.client.delete_tag(run_id, tag), sorted(doomed)))
            list(self._pool.map(lambda p: self.client.set_tag(p[0], p[1], "true"), pairs))
        self.write_s += time.perf_counter() - t0
        return len(pairs)

    def log_artifacts(self, files: Mapping[str, bytes], run: str = "launch") -> None:
        """Log ``{relative path: content}`` as artifacts of the launch run (or of trial ``run``)."""
        run_id = self.launch_run_id if run == "launch" else self.trial_runs[run]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for rel, content in files.items():
                path = Path(tmp) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            self.client.log_artifacts(run_id, tmp)
        self.write_s += time.perf_counter() - t0

    def log_launch_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(
            self.launch_run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if math.isfinite(float(v))],
        )

    def stats(self) -> dict[str, Any]:
        """Writer statistics: candidates written, seconds spent writing, ids held, store kind."""
        return {
            "candidates_written": self.candidates_written,
            "candidates_known": len(self.candidate_runs),
            "hollow_repaired": self.hollow_repaired,
            "write_s": self.write_s,
            "candidate_write_s": self.candidate_write_s,
            "bulk_sql": self._sql_store is not None,
            "launch_run_id": self.launch_run_id,
            "experiment_id": self.experiment_id,
        }

    # -- internals ----------------------------------------------------------------------------------
    def _search_all(self, filter_string: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=filter_string, max_results=10_000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _bulk_store(self) -> Any | None:
        scheme = self.tracking_uri.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _SQL_SCHEMES:
            return None
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = self.client._tracking_client.store
        return store if isinstance(store, SqlAlchemyStore) else None

    def _candidate_tags(self, parent_run_id: str, record: Mapping[str, Any]) -> dict[str, str]:
        return {
            TAG_KIND: "candidate",
            TAG_CANDIDATE: str(record["candidate_id"]),
            TAG_TRIAL: str(record["trial"]),
            PARENT_TAG: parent_run_id,
            RUN_NAME_TAG: str(record["candidate_id"]).replace("/", "-"),
            "searcher": str(record["searcher"]),
            "budget": str(record["budget"]),
            "generation": str(record["generation"]),
        }

    def _write_sql(self, batch: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """One transaction of bulk inserts: the rows ``create_run`` + ``log_batch`` + ``set_terminated`` write
        (tables ``runs``, ``tags``, ``params``, ``metrics``, ``latest_metrics`` of MLflow's own ORM models)."""
        from mlflow.entities import LifecycleStage, RunStatus, SourceType
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from mlflow.utils.uri import append_to_uri_path

        experiment = self.client.get_experiment(self.experiment_id)
        now = int(time.time() * 1000)
        runs, tags, params, metrics = [], [], [], []
        for parent_run_id, record in batch:
            run_id = self.candidate_runs[str(record["candidate_id"])]
            run_tags = self._candidate_tags(parent_run_id, record)
            runs.append(
                {
                    "run_uuid": run_id,
                    "name": run_tags[RUN_NAME_TAG],
                    "artifact_uri": append_to_uri_path(experiment.artifact_location, run_id, "artifacts"),
                    "experiment_id": int(self.experiment_id),
                    "source_type": SourceType.to_string(SourceType.UNKNOWN),
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": "rnc-platform",
                    "status": RunStatus.to_string(RunStatus.FINISHED),
                    "start_time": int(record.get("timestamp_ms", now)),
                    "end_time": now,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": LifecycleStage.ACTIVE,
                }
            )
            tags += [{"key": k, "value": v, "run_uuid": run_id} for k, v in run_tags.items()]
            params += [{"key": k, "value": v, "run_uuid": run_id} for k, v in candidate_params(record).items()]
            metrics += [
                {"key": k, "value": v, "timestamp": now, "step": 0, "is_nan": False, "run_uuid": run_id}
                for k, v in candidate_metrics(record).items()
            ]
        with self._sql_store.ManagedSessionMaker(read_only=False) as session:
            session.execute(SqlRun.__table__.insert(), runs)
            for model, rows in ((SqlTag, tags), (SqlParam, params), (SqlMetric, metrics), (SqlLatestMetric, metrics)):
                if rows:
                    session.execute(model.__table__.insert(), rows)

    def _write_client(self, item: tuple[str, Mapping[str, Any]]) -> None:
        from mlflow.entities import Metric, Param

        parent_run_id, record = item
        tags = self._candidate_tags(parent_run_id, record)
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.candidate_runs[str(record["candidate_id"])] = run.info.run_id
        ts = int(time.time() * 1000)
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in candidate_metrics(record).items()],
            params=[Param(k, v) for k, v in candidate_params(record).items()],
        )
        self.client.set_terminated(run.info.run_id)


def start_tracking_writer(tracking_uri: str, experiment_name: str, launch_id: str, **options: Any) -> Any:
    """Start the launch's named ``TrackingWriter`` actor (no CPU reserved: it mostly waits on I/O)."""
    actor_cls = ray.remote(num_cpus=0, max_restarts=0)(TrackingWriter)
    return actor_cls.options(name=tracking_actor_name(launch_id)).remote(tracking_uri, experiment_name, **options)

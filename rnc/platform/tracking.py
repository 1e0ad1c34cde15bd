"""Tracking: the :class:`TrackingSink` protocol the launch writes to, and its MLflow implementation.

:class:`MlflowSink` batches every MLflow write of a launch; the launch runs it as one Ray actor
(:func:`start_tracking_sink`) and talks to it through :class:`RemoteSink`, which implements the same protocol.

Run hierarchy (one MLflow experiment per config name, tagged ``mlflow.experimentKind =
custom_model_development`` so that the MLflow 3 UI opens it on its runs table rather than the GenAI overview):

- a **launch** run (parent): the config as artifact, git revision, package versions; final artifacts;
- a **trial** run per (searcher, crossbar budget), child of the launch: per-generation hypervolume and counts;
- a **candidate** run per evaluated network, child of its trial, named for its searcher, budget and network
  (``Candidate.run_name``): its active genes as params (``Candidate.to_params``), its metrics from the metric
  table (:mod:`rnc.platform.metrics`) rounded to the table's significant digits plus ``feasible`` (0/1), and,
  once the fronts are known, ``pareto_budget`` and ``pareto_global`` as 0/1 metrics (columns that sort and
  filter: ``metrics.pareto_budget = 1``).

Why one actor: SQLite takes one writer at a time, so concurrent trials writing directly would contend on the
database lock; one actor serializes and batches the writes (a tracking server could take more, and the same
actor talks to it through the REST client).

Speed, and why SQL stores use MLflow's private store: the public path (``MlflowClient.create_run`` +
``log_batch`` + ``set_terminated``, one run at a time; MLflow has no public call that creates many runs) costs
about 24 ms per candidate run against a SQLite file (``log_batch`` alone commits four transactions), i.e. 24 s
per 1,000 candidates, several times the compile time of those candidates (3-5 ms each). For SQL stores
(``sqlite://``, ``postgresql://``, ``mysql://``) candidate runs are therefore written in bulk, one transaction
per flush, as the rows the public calls would write, through MLflow's own ORM models
(``mlflow.store.tracking.dbmodels``) on the client's store (``MlflowClient._tracking_client.store``, private
API): 1.7-3.5 ms per candidate (benchmarks/RESULTS.md). ``tests/platform/test_tracking_platform.py`` writes the
same candidates both ways and compares what the public ``search_runs`` returns. Other stores (``http(s)://``
servers, ``databricks``) use the public path from a thread pool.

Idempotence: every candidate run carries its ``candidate_id`` tag; a resumed launch re-sends the candidates of
its checkpoints and the sink skips the ids MLflow already holds, so none is lost and none duplicated.
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rnc.platform.metrics import METRIC_BY_NAME, METRIC_NAMES
from rnc.platform.records import Candidate

#: Metrics logged on every candidate run (the metric table's names, units in the names) and ``feasible``;
#: missing ones (no accuracy for a candidate that failed its hardware constraints) are left out, not NaN.
CANDIDATE_METRICS = (*METRIC_NAMES, "feasible")
#: 0/1 metrics of front membership, set once the fronts are known.
PARETO_METRICS = ("pareto_budget", "pareto_global")

TAG_KIND = "rnc.kind"  # launch | trial | candidate
TAG_CANDIDATE = "rnc.candidate_id"
TAG_TRIAL = "rnc.trial"
TAG_LAUNCH = "rnc.launch_id"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the MLflow 3 UI opens such experiments on the runs table

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


def candidate_metrics(candidate: Candidate) -> dict[str, float]:
    """The finite metrics of a candidate rounded to the metric table's significant digits, and ``feasible``
    (0/1)."""
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        value = candidate.value(name)
        if value is not None:
            out[name] = METRIC_BY_NAME[name].rounded(value)
    out["feasible"] = 1.0 if candidate.feasible else 0.0
    return out


@runtime_checkable
class TrackingSink(Protocol):
    """Where a launch records its runs: one launch run, a run per trial, a run per candidate.

    Implementations: :class:`MlflowSink` (in-process) and :class:`RemoteSink` (an ``MlflowSink`` in a Ray actor).
    Candidate ids already held are skipped (resume), so sending a candidate twice records it once.
    """

    def start_launch(self, launch_id: str, run_name: str, config_yaml: str, tags: Mapping[str, str]) -> str: ...

    def start_trial(self, trial_key: str, searcher: str, budget: int, params: Mapping[str, Any]) -> str: ...

    def log_candidates(self, trial_key: str, candidates: Sequence[Candidate]) -> Any: ...

    def log_trial_metrics(self, trial_key: str, step: int, metrics: Mapping[str, float]) -> Any: ...

    def mark_pareto(self, members: Mapping[str, tuple[bool, bool]]) -> int: ...

    def log_candidate_metrics(self, metrics: Mapping[str, Mapping[str, float]]) -> None: ...

    def log_artifacts(self, files: Mapping[str, bytes], run: str = "launch") -> None: ...

    def log_candidate_artifacts(self, candidate_id: str, files: Mapping[str, bytes]) -> None: ...

    def log_launch_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def flush(self) -> int: ...

    def end_trial(self, trial_key: str, status: str = "FINISHED") -> None: ...

    def end_launch(self, status: str = "FINISHED") -> None: ...

    def stats(self) -> dict[str, Any]: ...


class MlflowSink:
    """The MLflow :class:`TrackingSink`: batches the MLflow writes of one launch.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:////abs/path.db``, ``http://host:5000``, ...).
        experiment_name: the MLflow experiment (the config's ``name``).
        flush_every: buffered candidate runs that trigger a write.
        flush_interval_s: a write also happens when the oldest buffered candidate waited this long.
        bulk: write candidate runs of SQL stores in bulk (see the module docstring); ``False`` forces the public
            client path.
        tracking_wait_s: how long an ``http(s)://`` tracking server that stops answering is waited for, with a
            message, before a write fails (:mod:`rnc.platform.tracking_outage`; default ``RNC_TRACKING_WAIT_S`` or
            300 s).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        *,
        flush_every: int = 256,
        flush_interval_s: float = 2.0,
        bulk: bool = True,
        tracking_wait_s: float | None = None,
    ) -> None:
        import logging

        import mlflow
        from mlflow import MlflowClient

        from rnc.platform.tracking_outage import OutageWait, short_mlflow_retries

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.outage = OutageWait(tracking_uri, tracking_wait_s)
        if self.outage.enabled:
            short_mlflow_retries()  # the outage wait, with its message, takes over after a few seconds
        mlflow.set_tracking_uri(tracking_uri)
        self.tracking_uri = tracking_uri
        self.raw_client = MlflowClient(tracking_uri)
        self.client = _WaitingClient(self.raw_client, self.outage)  # every call waits out a server outage
        self.flush_every = int(flush_every)
        self.flush_interval_s = float(flush_interval_s)
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(
                experiment_name,
                artifact_location=default_artifact_location(tracking_uri, experiment_name),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        else:
            self.experiment_id = experiment.experiment_id
            if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        self.experiment_name = experiment_name
        self.launch_run_id: str | None = None
        self.trial_runs: dict[str, str] = {}
        self.candidate_runs: dict[str, str] = {}  # candidate_id -> run id (written or buffered)
        self.hollow_repaired = 0  # incomplete candidate runs found on resume, deleted and written again
        self._client_written: set[str] = set()  # candidate ids written whole through the client path
        self._buffer: list[tuple[str, Candidate]] = []  # (trial run id, candidate)
        self._buffer_since: float | None = None
        self.write_s = 0.0  # every MLflow call of this sink
        self.candidate_write_s = 0.0  # writing candidate runs only
        self.candidates_written = 0
        self._sql_store = self._bulk_store() if bulk else None
        self._pool = ThreadPoolExecutor(max_workers=8) if self._sql_store is None else None

    # -- runs ---------------------------------------------------------------------------------------
    def start_launch(self, launch_id: str, run_name: str, config_yaml: str, tags: Mapping[str, str]) -> str:
        """Create (or, on resume, find) the launch run; log the config artifact and provenance tags."""
        t0 = time.perf_counter()
        same = f"tags.`{TAG_LAUNCH}` = '{launch_id}' and tags.`{TAG_KIND}` = 'launch'"
        found = self.client.search_runs([self.experiment_id], filter_string=same)
        if found:
            self.launch_run_id = found[0].info.run_id
            self.client.update_run(self.launch_run_id, status="RUNNING")
        else:
            run = self.outage.call(  # a creation the server committed without answering is not kept twice
                self.raw_client.create_run,
                self.experiment_id,
                run_name=run_name,
                tags={TAG_KIND: "launch", TAG_LAUNCH: launch_id, **{k: str(v) for k, v in tags.items()}},
                before_retry=lambda: self._delete_runs(same),
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
        same = (
            f"tags.`{PARENT_TAG}` = '{self.launch_run_id}' and tags.`{TAG_TRIAL}` = '{trial_key}' "
            f"and tags.`{TAG_KIND}` = 'trial'"
        )
        found = self.client.search_runs([self.experiment_id], filter_string=same)
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
            run = self.outage.call(  # a creation the server committed without answering is not kept twice
                self.raw_client.create_run,
                self.experiment_id,
                before_retry=lambda: self._delete_runs(same),
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

    def log_candidates(self, trial_key: str, candidates: Sequence[Candidate]) -> int:
        """Buffer candidate runs (skipping ids already held); write when the buffer is full or old enough.

        Returns the number of new candidates accepted.
        """
        run_id = self.trial_runs.get(trial_key)
        if run_id is None:
            raise RuntimeError(f"trial {trial_key!r} was not started (call start_trial first)")
        new = 0
        for candidate in candidates:
            if candidate.candidate_id in self.candidate_runs:
                continue
            self.candidate_runs[candidate.candidate_id] = uuid.uuid4().hex
            self._buffer.append((run_id, candidate))
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
        try:
            if self._sql_store is not None:
                self._write_sql(batch)  # one transaction: all or nothing
            else:
                list(self._pool.map(self._write_client, batch))  # each candidate whole or not at all
        except BaseException:
            # kept for the next flush (a failed fire-and-forget log_candidates must not lose them)
            self._buffer = batch + self._buffer
            self._buffer_since = self._buffer_since or time.monotonic()
            raise
        self.write_s += time.perf_counter() - t0
        self.candidate_write_s += time.perf_counter() - t0
        self.candidates_written += len(batch)
        return len(batch)

    def mark_pareto(self, members: Mapping[str, tuple[bool, bool]]) -> int:
        """Front membership as 0/1 metrics ``pareto_budget``/``pareto_global``: ``members`` maps a candidate id to
        (on its budget's front, on the front across budgets); later calls replace earlier values. Returns the
        number of runs marked."""
        self.flush()
        t0 = time.perf_counter()
        ts = int(time.time() * 1000)
        rows = [
            (self.candidate_runs[cid], {PARETO_METRICS[0]: float(on_budget), PARETO_METRICS[1]: float(on_global)})
            for cid, (on_budget, on_global) in members.items()
        ]
        if self._sql_store is not None:
            from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric

            inserts = [
                {"key": k, "value": v, "timestamp": ts, "step": 0, "is_nan": False, "run_uuid": run_id}
                for run_id, values in rows
                for k, v in values.items()
            ]
            run_ids = [run_id for run_id, _ in rows]
            with self._sql_store.ManagedSessionMaker(read_only=False) as session:
                for model in (SqlMetric, SqlLatestMetric):  # replace earlier marks, then one bulk insert
                    for start in range(0, len(run_ids), 500):
                        session.query(model).filter(
                            model.key.in_(PARETO_METRICS), model.run_uuid.in_(run_ids[start : start + 500])
                        ).delete(synchronize_session=False)
                    if inserts:
                        session.execute(model.__table__.insert(), inserts)
        else:
            from mlflow.entities import Metric

            def log(row: tuple[str, dict[str, float]]) -> None:
                self.client.log_batch(row[0], metrics=[Metric(k, v, ts, 0) for k, v in row[1].items()])

            list(self._pool.map(log, rows))
        self.write_s += time.perf_counter() - t0
        return len(rows)

    def log_candidate_metrics(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Add metrics measured after the search (``hw_accuracy`` of front members) to candidate runs:
        ``metrics`` maps a candidate id to ``{metric: value}`` (rounded like every candidate metric)."""
        from mlflow.entities import Metric

        self.flush()
        t0 = time.perf_counter()
        ts = int(time.time() * 1000)
        for cid, values in metrics.items():
            rows = [
                Metric(k, METRIC_BY_NAME[k].rounded(float(v)) if k in METRIC_BY_NAME else float(v), ts, 0)
                for k, v in values.items()
                if math.isfinite(float(v))
            ]
            if rows:
                self.client.log_batch(self.candidate_runs[cid], metrics=rows)
        self.write_s += time.perf_counter() - t0

    def log_artifacts(self, files: Mapping[str, bytes], run: str = "launch") -> None:
        """Log ``{relative path: content}`` as artifacts of the launch run (or of trial ``run``)."""
        self._log_files(self.launch_run_id if run == "launch" else self.trial_runs[run], files)

    def log_candidate_artifacts(self, candidate_id: str, files: Mapping[str, bytes]) -> None:
        """Log ``{relative path: content}`` as artifacts of one candidate run (its compiled plan, on demand)."""
        self.flush()
        self._log_files(self.candidate_runs[candidate_id], files)

    def _log_files(self, run_id: str, files: Mapping[str, bytes]) -> None:
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
            "server_outages": self.outage.outages,
            "server_outage_s": self.outage.waited_s,
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

    def _candidate_tags(self, parent_run_id: str, candidate: Candidate) -> dict[str, str]:
        return {
            TAG_KIND: "candidate",
            TAG_CANDIDATE: candidate.candidate_id,
            TAG_TRIAL: candidate.trial,
            PARENT_TAG: parent_run_id,
            RUN_NAME_TAG: candidate.run_name(),
            "searcher": candidate.searcher,
            "budget": str(candidate.budget),
            "generation": str(candidate.generation),
        }

    def _write_sql(self, batch: Sequence[tuple[str, Candidate]]) -> None:
        """One transaction of bulk inserts: the rows ``create_run`` + ``log_batch`` + ``set_terminated`` write
        (tables ``runs``, ``tags``, ``params``, ``metrics``, ``latest_metrics`` of MLflow's own ORM models)."""
        from mlflow.entities import LifecycleStage, RunStatus, SourceType
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from mlflow.utils.uri import append_to_uri_path

        experiment = self.client.get_experiment(self.experiment_id)
        now = int(time.time() * 1000)
        runs, tags, params, metrics = [], [], [], []
        for parent_run_id, candidate in batch:
            run_id = self.candidate_runs[candidate.candidate_id]
            run_tags = self._candidate_tags(parent_run_id, candidate)
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
                    "start_time": int(candidate.timestamp_ms or now),
                    "end_time": now,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": LifecycleStage.ACTIVE,
                }
            )
            tags += [{"key": k, "value": v, "run_uuid": run_id} for k, v in run_tags.items()]
            params += [{"key": k, "value": v, "run_uuid": run_id} for k, v in candidate.to_params().items()]
            metrics += [
                {"key": k, "value": v, "timestamp": now, "step": 0, "is_nan": False, "run_uuid": run_id}
                for k, v in candidate_metrics(candidate).items()
            ]
        with self._sql_store.ManagedSessionMaker(read_only=False) as session:
            session.execute(SqlRun.__table__.insert(), runs)
            for model, rows in ((SqlTag, tags), (SqlParam, params), (SqlMetric, metrics), (SqlLatestMetric, metrics)):
                if rows:
                    session.execute(model.__table__.insert(), rows)

    def _write_client(self, item: tuple[str, Candidate]) -> None:
        """One candidate run through the public client, whole: a write cut short by a server outage is retried
        from the start, after deleting what it left (a run whose creation the server committed but never
        answered included), so an outage leaves no duplicate and no hollow run."""
        parent_run_id, candidate = item
        cid = candidate.candidate_id
        if cid in self._client_written:
            return
        self.outage.call(self._write_candidate_run, parent_run_id, candidate,
                         before_retry=lambda: self._delete_runs(f"tags.`{TAG_CANDIDATE}` = '{cid}'"))
        self._client_written.add(cid)

    def _write_candidate_run(self, parent_run_id: str, candidate: Candidate) -> None:
        from mlflow.entities import Metric, Param

        tags = self._candidate_tags(parent_run_id, candidate)
        run = self.raw_client.create_run(self.experiment_id, tags=tags, run_name=tags[RUN_NAME_TAG])
        self.candidate_runs[candidate.candidate_id] = run.info.run_id
        ts = int(time.time() * 1000)
        self.raw_client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in candidate_metrics(candidate).items()],
            params=[Param(k, v) for k, v in candidate.to_params().items()],
        )
        self.raw_client.set_terminated(run.info.run_id)

    def _delete_runs(self, filter_string: str) -> None:
        """Delete the runs ``filter_string`` finds: what a write cut short by an outage left, before it is redone."""
        for run in self.raw_client.search_runs([self.experiment_id], filter_string=filter_string):
            self.raw_client.delete_run(run.info.run_id)


class _WaitingClient:
    """An ``MlflowClient`` whose every method call goes through :meth:`OutageWait.call` (attributes pass)."""

    def __init__(self, client: Any, outage: Any) -> None:
        self._client = client
        self._outage = outage

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def waiting(*args: Any, **kwargs: Any) -> Any:
            return self._outage.call(attr, *args, **kwargs)

        return waiting


class RemoteSink:
    """A :class:`TrackingSink` backed by an :class:`MlflowSink` Ray actor (``actor``: its handle).

    Every call waits for the actor except :meth:`log_candidates` and :meth:`log_trial_metrics`, which return the
    pending ``ObjectRef`` at once (the actor runs calls in order, so a later blocking call sees them done);
    trials thus never wait on MLflow.
    """

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    @classmethod
    def named(cls, name: str) -> RemoteSink:
        """The sink of the running actor called ``name`` (:func:`tracking_actor_name`)."""
        import ray

        return cls(ray.get_actor(name))

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        from rnc.errors import UserError

        try:
            return ray.get(getattr(self.actor, method).remote(*args))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, UserError):  # a tracking server that stayed silent: its one-line message
                raise exc.cause from None
            raise

    def start_launch(self, launch_id: str, run_name: str, config_yaml: str, tags: Mapping[str, str]) -> str:
        return self._call("start_launch", launch_id, run_name, config_yaml, dict(tags))

    def start_trial(self, trial_key: str, searcher: str, budget: int, params: Mapping[str, Any]) -> str:
        return self._call("start_trial", trial_key, searcher, budget, dict(params))

    def log_candidates(self, trial_key: str, candidates: Sequence[Candidate]) -> Any:
        return self.actor.log_candidates.remote(trial_key, list(candidates))

    def log_trial_metrics(self, trial_key: str, step: int, metrics: Mapping[str, float]) -> Any:
        return self.actor.log_trial_metrics.remote(trial_key, step, dict(metrics))

    def mark_pareto(self, members: Mapping[str, tuple[bool, bool]]) -> int:
        return self._call("mark_pareto", dict(members))

    def log_candidate_metrics(self, metrics: Mapping[str, Mapping[str, float]]) -> None:
        self._call("log_candidate_metrics", {k: dict(v) for k, v in metrics.items()})

    def log_artifacts(self, files: Mapping[str, bytes], run: str = "launch") -> None:
        self._call("log_artifacts", dict(files), run)

    def log_candidate_artifacts(self, candidate_id: str, files: Mapping[str, bytes]) -> None:
        self._call("log_candidate_artifacts", candidate_id, dict(files))

    def log_launch_metrics(self, metrics: Mapping[str, float]) -> None:
        self._call("log_launch_metrics", dict(metrics))

    def flush(self) -> int:
        return self._call("flush")

    def end_trial(self, trial_key: str, status: str = "FINISHED") -> None:
        self._call("end_trial", trial_key, status)

    def end_launch(self, status: str = "FINISHED") -> None:
        self._call("end_launch", status)

    def stats(self) -> dict[str, Any]:
        return self._call("stats")


def start_tracking_sink(tracking_uri: str, experiment_name: str, launch_id: str, **options: Any) -> RemoteSink:
    """Start the launch's named :class:`MlflowSink` actor (no CPU reserved: it mostly waits on I/O)."""
    import ray

    actor_cls = ray.remote(num_cpus=0, max_restarts=0)(MlflowSink)
    return RemoteSink(
        actor_cls.options(name=tracking_actor_name(launch_id)).remote(tracking_uri, experiment_name, **options)
    )

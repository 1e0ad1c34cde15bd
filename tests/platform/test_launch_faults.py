"""Faults injected into real launches (local Ray, MLflow SQLite store), then the tracking store is audited.

After each fault and its recovery the store must hold: candidates tracked == asked, 0 duplicates, 0 runs left
RUNNING, 0 hollow candidate runs (no metrics or no params), and ``pareto_*`` marks (0/1 metrics) equal to an independent
non-dominated sort of the tracked metrics.

- a second launch into the same storage while one runs: refused at once (exit 2), nothing written;
- Ctrl-C (SIGINT to the launch's process group, as a terminal sends it): exit 130, the launch and its trials
  KILLED, no final artifacts, the ``--resume`` command printed; the resume then completes the launch;
- the MLflow tracking server (a real ``mlflow server`` on a free port) killed mid-launch and started again: the
  launch says once that it waits, then that the server answers again, and finishes;
- SIGKILL of the driver alone (as the OOM killer does), then ``--resume``: in
  ``test_launch_platform.py::test_resume_after_kill_gives_uninterrupted_fronts`` (with :func:`audit_store`);
- SIGKILL of a SupernetEvaluator's worker mid-launch (the accuracy path): the actor is restarted, says so, and
  the launch finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from rnc.platform.cli import app
from rnc.platform.config import ExperimentConfig
from rnc.platform.preflight import lock_path

EVALUATIONS, BATCH = 12, 4
SEARCHERS = ("nsga2", "random")
BUDGETS = (64, 128)


def _dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def audit_store(uri: str, experiment: str, launch_id: str | None = None) -> dict[str, object]:
    """What the tracking store holds for ``experiment`` (see the module docstring); with ``launch_id``, for that
    launch alone (its launch run, its trial runs and their candidate runs)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    everything = client.search_runs([exp.experiment_id], "", max_results=50_000)
    if launch_id is not None:
        launch = {r.info.run_id for r in everything if r.data.tags.get("rnc.launch_id") == launch_id}
        trials = {r.info.run_id for r in everything if r.data.tags.get("mlflow.parentRunId") in launch}
        everything = [r for r in everything if r.info.run_id in launch | trials
                      or r.data.tags.get("mlflow.parentRunId") in trials]
    candidates = [r for r in everything if r.data.tags.get("rnc.kind") == "candidate"]
    ids = [r.data.tags["rnc.candidate_id"] for r in candidates]
    hollow = [r.data.tags["rnc.candidate_id"] for r in candidates
              if not r.data.params or "latency_ns" not in r.data.metrics]
    points = {
        r.info.run_id: (r.data.tags.get("budget"), r.data.metrics.get("feasible", 0) > 0,
                        (r.data.metrics.get("latency_ns"), r.data.metrics.get("energy_uj")))
        for r in candidates if r.info.run_id not in hollow
    }
    wrong_tags = []
    for run in candidates:
        if run.info.run_id not in points:
            continue
        budget, feasible, f = points[run.info.run_id]
        same = [p[2] for p in points.values() if p[1] and p[0] == budget]
        every = [p[2] for p in points.values() if p[1]]
        on_budget = feasible and not any(_dominates(g, f) for g in same)
        on_global = feasible and not any(_dominates(g, f) for g in every)
        if (run.data.metrics.get("pareto_budget") == 1) != on_budget:
            wrong_tags.append(("pareto_budget", run.data.tags["rnc.candidate_id"]))
        if (run.data.metrics.get("pareto_global") == 1) != on_global:
            wrong_tags.append(("pareto_global", run.data.tags["rnc.candidate_id"]))
    return {
        "tracked": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "running": [r.data.tags.get("rnc.kind") for r in everything if r.info.status == "RUNNING"],
        "hollow": hollow,
        "wrong_tags": wrong_tags,
        "launch_status": [r.info.status for r in everything if r.data.tags.get("rnc.kind") == "launch"],
    }


def _config(write, root: Path, name: str) -> Path:
    return write(root, name=name, seed=5, evaluations=EVALUATIONS, batch_size=BATCH, searchers=SEARCHERS,
                 budgets=BUDGETS)


def test_second_launch_into_the_same_storage_is_refused(tmp_path: Path, monkeypatch,
                                                        simulator_launch_config) -> None:
    """No Ray needed: the lock is taken after preflight and before anything starts."""
    config = _config(simulator_launch_config, tmp_path, "locked")
    cfg = ExperimentConfig.from_yaml(config)
    lock = lock_path(Path(cfg.storage_path), cfg.name)
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from filelock import FileLock; import sys, time; l = FileLock({str(lock)!r}); "
                               "l.acquire(); print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(app, ["launch", str(config)])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "another launch of 'locked' is running there" in result.stderr
    assert sorted(p.name for p in lock.parent.iterdir()) == [".launch.lock"]  # no latest.json
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_sigint_kills_the_runs_and_resume_completes(tmp_path: Path, simulator_launch_config) -> None:
    config = _config(simulator_launch_config, tmp_path, "interrupted")
    storage = tmp_path / "ray" / "interrupted"
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnc.platform.cli", "launch", str(config)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the launch ended before it could be interrupted: " + proc.stderr.read()
            record = storage / "latest.json"
            if record.is_file():
                launch_id = json.loads(record.read_text())["launch_id"]
                if len(list((storage / launch_id).glob("*/checkpoint_*"))) >= 1:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the launch produced no checkpoint in time")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert "--resume" in stderr and "Traceback" not in stderr, stderr[-2000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    audit = audit_store(uri, "interrupted")
    assert audit["launch_status"] == ["KILLED"] and audit["running"] == [] and audit["duplicates"] == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("interrupted")
    launch_run = client.search_runs([exp.experiment_id], "tags.`rnc.kind` = 'launch'")[0]
    assert {a.path for a in client.list_artifacts(launch_run.info.run_id)} <= {"config.yaml"}  # no final artifacts
    assert not any("pareto_global" in r.data.metrics for r in client.search_runs([exp.experiment_id], ""))

    resumed = subprocess.run(
        [sys.executable, "-m", "rnc.platform.cli", "launch", str(config), "--resume"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    audit = audit_store(uri, "interrupted")
    assert audit["tracked"] == EVALUATIONS * len(SEARCHERS) * len(BUDGETS)
    assert audit["duplicates"] == 0 and audit["running"] == [] and audit["hollow"] == []
    assert audit["wrong_tags"] == [] and audit["launch_status"] == ["FINISHED"]


@pytest.mark.integration
def test_a_killed_simulator_worker_is_restarted_and_its_batch_retried() -> None:
    """SIGKILL of a SimulatorService's worker process while it computes a batch: Ray restarts the actor (same
    name) and retries the batch, whose answer equals a compile in this process."""
    import numpy as np
    import ray

    from rnc.platform.actors import ActorPools, PoolSizes, simulator_names, start_pools
    from rnc.search.spaces import get_space
    from rnc.simulator import HardwareConfig, compile_workload

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        hw = HardwareConfig.preset("rnc").with_updates(crossbars=96)
        sizes = PoolSizes(simulators=1, evaluators=0, simulator_cpus=1.0, evaluator_cpus=1.0, evaluator_gpus=0.0)
        (actor,), _ = start_pools("faults-sim", sizes, space_name="mbv3", space_options={"resolution": 16},
                                  strategy="rnc", warm_hardware=hw, checkpoint_dir=None, seed=0)
        space = get_space("mbv3", resolution=16)
        rng = np.random.default_rng(0)
        genomes = [space.sample(rng) for _ in range(24)]
        pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
        ref = actor.simulate.remote(genomes, hw)
        os.kill(pid, signal.SIGKILL)
        rows = ray.get(ref, timeout=600)
        assert ray.get(actor.__ray_call__.remote(lambda self: os.getpid())) != pid  # a new worker
        pools = ActorPools(simulator_names("faults-sim", 1), [])  # found by name after the restart
        assert pools.simulate(genomes[:2], hw) == rows[:2]
        for genome, row in zip(genomes[:4], rows[:4], strict=True):
            ref_result = compile_workload(space.workload(genome), space.hardware_for(genome, hw), "rnc", seed=0)
            assert row["latency_ns"] == pytest.approx(ref_result.latency_ns)
        ray.kill(actor)
    finally:
        if started:
            ray.shutdown()


def test_sigint_taken_by_another_handler_is_still_seen() -> None:
    """Ray Tune swallows the first Ctrl-C in its own handler and returns normally; the launch must still see it
    (the CI flake: every trial had finished its last generation when SIGINT came, and the launch exited 0)."""
    from rnc.platform.launch import _sigint_watch

    swallowed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda sig, frame: swallowed.append(sig))  # a handler like Tune's
    try:
        with _sigint_watch() as received:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the Python-level handler runs between bytecodes
        with _sigint_watch() as quiet:
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
    assert swallowed == [signal.SIGINT]
    assert signal.SIGINT in received
    assert quiet == []


# -- helpers of the launch-level faults ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _until(condition, what: str, timeout_s: float, proc: subprocess.Popen | None = None, lines=None) -> None:
    """Wait for ``condition()`` (polled), failing after ``timeout_s`` or when ``proc`` ends first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the launch ended (exit {proc.returncode}) before {what}: {''.join(lines or [])[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: {''.join(lines or [])[-3000:]}")
        time.sleep(0.1)


class _Launch:
    """``rnc-platform launch`` in a subprocess of its own session; stderr collected line by line."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rnc.platform.cli", "launch", str(config), *args], cwd=config.parent,
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.lines: list[str] = []  # stderr
        self.out: list[str] = []  # stdout
        self.readers = [threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, ""))),
                        threading.Thread(target=lambda: self.out.extend(iter(self.proc.stdout.readline, "")))]
        for reader in self.readers:
            reader.start()

    def saw(self, phrase: str, stream: str = "stderr") -> bool:
        return any(phrase in line for line in list(self.lines if stream == "stderr" else self.out))

    def wait(self, timeout_s: float) -> int:
        try:
            self.proc.wait(timeout=timeout_s)
        finally:
            self.close()
        for reader in self.readers:
            reader.join(timeout=30)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _checkpointed(storage: Path, at_least: int = 1):
    def check() -> bool:
        record = storage / "latest.json"
        if not record.is_file():
            return False
        launch_id = json.loads(record.read_text())["launch_id"]
        return len(list((storage / launch_id).glob("*/checkpoint_*"))) >= at_least
    return check


def _assert_whole(audit: dict[str, object], asked: int) -> None:
    assert audit["tracked"] == asked, audit
    assert audit["duplicates"] == 0 and audit["running"] == [] and audit["hollow"] == [], audit
    assert audit["wrong_tags"] == [] and audit["launch_status"] == ["FINISHED"], audit


class _MlflowServer:
    """A real ``mlflow server`` (SQLite backend, artifacts proxied) that can be killed and started again."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port, self.proc = root, port, None
        self.uri = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        log = open(self.root / "mlflow-server.log", "a")  # noqa: SIM115 -- the server's, closed with it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "server-artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.root, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        log.close()
        _until(self._healthy, "the MLflow server to answer", 240)

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, (self.root / "mlflow-server.log").read_text()[-3000:]
        try:
            return requests.get(f"{self.uri}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a crash: the server and its workers
            self.proc.wait()


@pytest.mark.integration
@pytest.mark.slow
def test_a_tracking_server_killed_and_restarted_mid_launch(tmp_path: Path, simulator_launch_config) -> None:
    server = _MlflowServer(tmp_path, _free_port())
    config = _config(simulator_launch_config, tmp_path, "outage")
    data = yaml.safe_load(config.read_text())
    data.update(tracking_uri=server.uri, searchers=[{"name": "random"}, {"name": "nsga2"}], hardware={
        "preset": "rnc", "budgets": [64]})
    config.write_text(yaml.safe_dump(data))
    server.start()
    launch = None
    try:
        launch = _Launch(config, env={"RNC_TRACKING_WAIT_S": "300"})
        _until(_checkpointed(tmp_path / "ray" / "outage"), "a first checkpoint", 300, launch.proc, launch.lines)
        server.kill()
        _until(lambda: launch.saw("not answering"), "the wait message", 300, launch.proc, launch.lines)
        server.start()
        assert launch.wait(600) == 0, "".join(launch.lines)[-3000:]
        stderr = "".join(launch.lines)
        assert stderr.count(f"tracking server {server.uri} not answering; retrying for up to 300 s") == 1, stderr
        assert stderr.count(f"tracking server {server.uri} answers again after") == 1, stderr
        assert "Traceback" not in stderr, stderr[-3000:]
        _assert_whole(audit_store(server.uri, "outage"), EVALUATIONS * 2)
    finally:
        if launch is not None:
            launch.close()
        server.kill()


def _descendants(pid: int) -> list[tuple[int, str, str]]:
    """``(pid, start time, command)`` of every process below ``pid``, from ``/proc`` (independent of the
    product's own search by session folder)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(proc.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo += children.get(child, [])
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{child}/stat").read_text()
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            found.append((child, stat[stat.rindex(")") + 2:].split()[19], command))
    return found


def _still_running(processes: list[tuple[int, str, str]]) -> list[str]:
    """The commands of ``processes`` that still run (same pid and start time; zombies count as gone)."""
    alive = []
    for pid, started, command in processes:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[19] == started and fields[0] != "Z":
                alive.append(command)
    return alive


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (/proc)")
def test_a_killed_evaluator_worker_is_restarted_mid_launch(tmp_path: Path) -> None:
    """The accuracy path (a tiny supernet on digits, ``min_accuracy``): SIGKILL of the SupernetEvaluator's worker
    process while the launch runs; Ray restarts the actor, which says so, and the launch finishes whole."""
    data = {
        "name": "evaluator-killed", "seed": 2,
        "space": {"name": "mbv3", "options": {"resolution": 8, "width_mult": 0.25}},
        "dataset": {"name": "digits", "image_size": 8},
        "supernet": {"epochs": 1, "cache_dir": str(tmp_path / "supernets")},
        "hardware": {"preset": "rnc", "budgets": [64]},
        "searchers": [{"name": "random"}],
        "objectives": [{"name": "latency"}, {"name": "energy"}],
        "constraints": {"fit_budget": True, "min_accuracy": 0.05},
        "search": {"evaluations": 16, "batch_size": 4, "reference_samples": 4},
        "pools": {"simulators": 1, "evaluators": 1, "max_concurrent_trials": 1},
        "storage_path": str(tmp_path / "ray"), "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(data))
    launch = _Launch(config)
    try:
        def evaluator() -> list[int]:
            return [pid for pid, _, command in _descendants(launch.proc.pid)
                    if command.startswith("ray::SupernetEvaluator")]

        _until(lambda: evaluator() and _checkpointed(tmp_path / "ray" / "evaluator-killed")(),
               "the evaluator and a first checkpoint", 600, launch.proc, launch.lines)
        (victim,) = evaluator()
        os.kill(victim, signal.SIGKILL)
        assert launch.wait(600) == 0, "".join(launch.lines)[-3000:]
    finally:
        launch.close()
    stderr = "".join(launch.lines)
    assert stderr.count("SupernetEvaluator rnc-eval-") == 1 and "restarted after its worker died" in stderr, stderr
    assert "Traceback" not in stderr, stderr[-3000:]
    audit = audit_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "evaluator-killed")
    _assert_whole(audit, 16)

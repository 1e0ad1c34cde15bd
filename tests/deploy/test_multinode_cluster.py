"""A real two-node Ray cluster on this machine, a real MLflow tracking server, and `rnc-platform launch` on them.

- Head: ``ray start --head --block`` with 2 logical CPUs and the custom resource ``rnc_node_head``; a second
  node joined to it (``ray start --address``) with 2 CPUs and ``rnc_node_worker``. Ray 2.60 runs both raylets on
  one host when each has its own ports; every port is picked free, the temp dir is private to the test, token
  authentication uses a token made for the test (never ``~/.ray``).
- ``mlflow server`` on loopback with a SQLite-on-server backend and a local artifact root.
- The launch asks for two simulator actors of 1.5 CPUs each: no node holds both, so Ray puts one on each node,
  and every batch of candidates is split across both (``ActorPools.simulate``). The test reads from Ray's GCS
  actor table on which node each simulator ran, and from the server that every candidate was tracked.
- ``check_multinode_settings`` against the same cluster, from a driver process: refuses ``sqlite://`` tracking
  and node-local storage, accepts the server's ``http://`` URI and a path declared shared.

Teardown always runs (fixture finalizers): the ``ray start --block`` processes get SIGTERM, which stops their
node's processes, then their process groups get SIGKILL if anything is left; the MLflow server likewise.
``ray stop`` is never used: it would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
READY_LINE = "This command will now block forever"
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_ports() -> list[str]:
    """Every port a raylet and its agents open, picked free, so that two nodes share one host."""
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def spawn(name: str, args: list[str], log: Path, env: dict[str, str]) -> Process:
    handle = log.open("w")
    popen = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    handle.close()
    return Process(name, popen, log)


def stop(proc: Process, grace_s: float = 45.0) -> None:
    """SIGTERM the process we started, then SIGKILL its own process group if it does not finish."""
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.popen.pid, signal.SIGKILL)  # the group is the session this test created for it
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.popen.wait(10)


def wait_for_line(proc: Process, line: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if line in proc.tail(10**7):
            return
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        time.sleep(0.5)
    raise TimeoutError(f"{proc.name} not ready after {timeout_s} s:\n{proc.tail()}")


@dataclass
class TwoNodeCluster:
    address: str
    env: dict[str, str]
    root: Path


@pytest.fixture(scope="module")
def cluster_root() -> Iterator[Path]:
    # Short path: Ray's Unix socket paths must stay under ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="rncmn-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def two_node_cluster(cluster_root: Path) -> Iterator[TwoNodeCluster]:
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.fail(f"the `ray` command is missing next to {sys.executable}")
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    temp_dir = cluster_root / "ray"
    common = ["--block", "--disable-usage-stats", f"--temp-dir={temp_dir}", "--object-store-memory=100000000"]
    started: list[Process] = []
    try:
        head = spawn(
            "ray head",
            [
                str(BIN / "ray"),
                "start",
                "--head",
                f"--port={port}",
                "--num-cpus=2",
                '--resources={"rnc_node_head": 1}',
                "--include-dashboard=false",
                *ray_ports(),
                *common,
            ],
            cluster_root / "head.log",
            env,
        )
        started.append(head)
        wait_for_line(head, READY_LINE)
        worker = spawn(
            "ray worker node",
            [
                str(BIN / "ray"),
                "start",
                f"--address=127.0.0.1:{port}",
                "--num-cpus=2",
                '--resources={"rnc_node_worker": 1}',
                *ray_ports(),
                *common,
            ],
            cluster_root / "worker.log",
            env,
        )
        started.append(worker)
        wait_for_line(worker, READY_LINE)
        yield TwoNodeCluster(address=f"127.0.0.1:{port}", env=env, root=cluster_root)
    finally:
        for proc in reversed(started):
            stop(proc)


@pytest.fixture(scope="module")
def mlflow_server(cluster_root: Path) -> Iterator[str]:
    port = free_port()
    store = cluster_root / "mlflow"
    store.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = spawn(
        "mlflow server",
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "artifacts"),
            "--workers",
            "1",
        ],
        cluster_root / "mlflow.log",
        env,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{uri}/health", timeout=5) as response:
                if response.status == 200:
                    break
            if server.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{server.tail()}")
            time.sleep(1.0)
        yield uri
    finally:
        stop(server, grace_s=20)


def run_driver(cluster: TwoNodeCluster, body: str, extra_env: dict[str, str] | None = None) -> dict:
    """Run ``body`` in a fresh Python process connected to the cluster as a Ray driver; returns its ``result``.

    A separate process, because Ray reads its authentication mode once per process: the test process may
    already hold a Ray configuration of its own.
    """
    script = (
        "import json, time, ray\n"
        f"ray.init(address={cluster.address!r}, log_to_driver=False)\n"
        "deadline = time.monotonic() + 60\n"
        "while len([n for n in ray.nodes() if n['Alive']]) < 2 and time.monotonic() < deadline:\n"
        "    time.sleep(0.5)\n"
        "nodes = [n for n in ray.nodes() if n['Alive']]\n"
        "result = {}\n"
        f"{body}\n"
        "ray.shutdown()\n"
        "print('RESULT ' + json.dumps(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**cluster.env, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cluster.root,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"driver failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


# ------------------------------------------------------------------------------------------------- tests


def test_cluster_has_two_nodes_with_their_own_resources(two_node_cluster) -> None:
    result = run_driver(two_node_cluster, "result['resources'] = [n['Resources'] for n in nodes]")
    resources = result["resources"]
    assert len(resources) == 2
    assert sorted(k for r in resources for k in r if k.startswith("rnc_node_")) == ["rnc_node_head", "rnc_node_worker"]
    assert all(r["CPU"] == 2.0 for r in resources)


CHECKS = """
from rnc.platform.cluster import MultiNodeSettingsError, check_multinode_settings
cases = {
    "sqlite": dict(storage_path=SHARED, tracking_uri="sqlite:///" + LOCAL + "/m.db"),
    "node_local_storage": dict(storage_path=LOCAL, tracking_uri=SERVER),
    "node_local_supernets": dict(storage_path=SHARED, tracking_uri=SERVER, supernet_cache_dir=LOCAL),
    "declared_shared": dict(storage_path=SHARED + "/ray", tracking_uri=SERVER, supernet_cache_dir=SHARED + "/sn"),
    "object_store": dict(storage_path="s3://bucket/rnc", tracking_uri=SERVER),
}
result["nodes"] = len(nodes)
for name, kwargs in cases.items():
    try:
        check_multinode_settings(**kwargs)
        result[name] = None
    except MultiNodeSettingsError as err:
        result[name] = {"setting": err.setting, "message": str(err)}
"""


def test_multinode_checks_on_the_real_cluster(two_node_cluster, mlflow_server, tmp_path) -> None:
    from rnc.platform.cluster import SHARED_STORAGE_ENV

    shared = two_node_cluster.root / "shared-declared"
    local = tmp_path / "node-local"
    body = f"SHARED, LOCAL, SERVER = {str(shared)!r}, {str(local)!r}, {mlflow_server!r}\n" + CHECKS
    result = run_driver(two_node_cluster, body, {SHARED_STORAGE_ENV: str(shared)})
    assert result["nodes"] == 2
    assert result["sqlite"]["setting"] == "tracking_uri"
    assert "SQLite" in result["sqlite"]["message"] and "http://" in result["sqlite"]["message"]
    assert result["node_local_storage"]["setting"] == "storage_path"
    assert "node-local" in result["node_local_storage"]["message"]
    assert SHARED_STORAGE_ENV in result["node_local_storage"]["message"]
    assert result["node_local_supernets"]["setting"] == "supernet.cache_dir"
    assert result["declared_shared"] is None, result["declared_shared"]
    assert result["object_store"] is None, result["object_store"]
    assert not list(shared.rglob(".rnc-shared-probe-*")), "probe markers are removed"


def test_launch_runs_candidates_on_both_nodes_and_tracks_them(two_node_cluster, mlflow_server) -> None:
    root = two_node_cluster.root
    shared = root / "shared"
    config = {
        "name": "rnc-multinode",
        "seed": 0,
        "space": {"name": "mbv3", "options": {"resolution": 32}},
        "hardware": {"preset": "rnc", "budgets": [160, 320]},
        "searchers": [{"name": "random"}],
        "objectives": [{"name": "latency", "goal": "min"}, {"name": "energy", "goal": "min"}],
        "constraints": {"fit_budget": True},
        "search": {"evaluations": 8, "batch_size": 4, "strategy": "rnc", "reference_samples": 8},
        # 2 x 1.5 CPUs: more than one 2-CPU node holds, so one simulator lands on each node.
        "pools": {"simulators": 2, "simulator_cpus": 1.5, "trial_cpus": 0.1},
        "supernet": {"cache_dir": str(shared / "supernets")},
        "storage_path": str(shared / "ray"),
        "tracking_uri": "sqlite:///must-be-overridden.db",
    }
    config_path = root / "multinode.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**two_node_cluster.env, "RNC_SHARED_STORAGE": str(shared), "COLUMNS": "160"}
    launch = subprocess.run(
        [
            str(BIN / "rnc-platform"),
            "launch",
            str(config_path),
            "--address",
            two_node_cluster.address,
            "--tracking-uri",
            mlflow_server,
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = launch.stdout + launch.stderr
    assert launch.returncode == 0, f"rnc-platform launch failed ({launch.returncode}):\n{output[-6000:]}"
    record = json.loads((shared / "ray" / "rnc-multinode" / "latest.json").read_text())
    launch_id = record["launch_id"]

    # Which node ran the simulators (every batch of 4 is split over both of them): Ray's GCS actor table.
    placement = run_driver(
        two_node_cluster,
        "from ray._private import state\n"
        "result['nodes'] = {n['NodeID']: sorted(k for k in n['Resources'] if k.startswith('rnc_node_')) "
        "for n in nodes}\n"
        "result['actors'] = {a['Name']: a['Address']['NodeID'] for a in state.actors().values() if a.get('Name')}",
    )
    simulators = {name: node for name, node in placement["actors"].items() if name.startswith(f"rnc-sim-{launch_id}-")}
    assert len(simulators) == 2, f"two simulator actors, got {placement['actors']}"
    assert set(simulators.values()) == set(placement["nodes"]), "one simulator on each node"
    assert sorted(placement["nodes"][node][0] for node in simulators.values()) == ["rnc_node_head", "rnc_node_worker"]

    # Every candidate is on the tracking server: 2 trials (random x 2 budgets) x 8 evaluations.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("rnc-multinode")
    assert experiment is not None, f"experiment missing on {mlflow_server}:\n{output[-3000:]}"
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    launches = [r for r in runs if r.data.tags.get("rnc.kind") == "launch"]
    assert [r.data.tags.get("rnc.launch_id") for r in launches] == [launch_id]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == launches[0].info.run_id]
    assert sorted(r.data.tags.get("rnc.kind") for r in trials) == ["trial", "trial"], "random x 2 budgets"
    trial_ids = {r.info.run_id for r in trials}
    candidates = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in trial_ids]
    assert all(r.data.tags.get("rnc.kind") == "candidate" for r in candidates)
    assert len(candidates) == 16, f"2 trials x 8 evaluations, got {len(candidates)}"
    assert len({r.data.tags["rnc.candidate_id"] for r in candidates}) == 16
    assert all("latency_ns" in r.data.metrics and "energy_uj" in r.data.metrics for r in candidates)

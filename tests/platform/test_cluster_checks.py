"""Rules of rnc.platform.cluster: which storage and tracking settings a multi-node cluster accepts.

The same rules run against a real two-node Ray cluster in tests/deploy/test_multinode_cluster.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rnc.platform.cluster import (
    SHARED_STORAGE_ENV,
    Mount,
    MultiNodeSettingsError,
    cluster_is_multinode,
    declared_shared_paths,
    is_declared_shared,
    is_loopback_host,
    is_object_store_uri,
    local_path_of,
    mount_of,
    node_local_reason,
    read_mounts,
    resolve_storage,
    tracking_uri_problem,
    uri_scheme,
)

MOUNTS = [
    Mount("/", "ext4", "/dev/vda1"),
    Mount("/tmp", "tmpfs", "tmpfs"),
    Mount("/mnt/shared", "nfs4", "fileserver:/export"),
    Mount("/mnt/shared/scratch", "xfs", "/dev/vdb1"),
    Mount("/mnt/ceph", "ceph", "10.0.0.1:/"),
]


@pytest.mark.parametrize(
    ("location", "scheme", "object_store"),
    [
        ("s3://bucket/rnc", "s3", True),
        ("GS://bucket", "gs", True),
        ("abfss://c@acct.dfs.core.windows.net/x", "abfss", True),
        ("/data/rnc", "", False),
        ("rnc-runs", "", False),
        ("file:///data/rnc", "file", False),
        ("C:\\runs", "", False),
        ("http://host/x", "http", False),
    ],
)
def test_uri_scheme_and_object_store(location: str, scheme: str, object_store: bool) -> None:
    assert uri_scheme(location) == scheme
    assert is_object_store_uri(location) is object_store


def test_local_path_of_makes_paths_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_path_of("rnc-runs") == str(tmp_path / "rnc-runs")
    assert local_path_of("file:///data/rnc") == "/data/rnc"
    assert local_path_of("~/x") == os.path.join(os.path.expanduser("~"), "x")
    assert local_path_of("s3://bucket/x") is None


def test_resolve_storage_layout_for_paths_and_uris(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = resolve_storage("rnc-runs")
    assert local.root == str(tmp_path / "rnc-runs")
    assert local.tune_storage_path == str(tmp_path / "rnc-runs" / "tune")
    assert local.supernet_checkpoints == str(tmp_path / "rnc-runs" / "supernets")
    assert local.supernet_checkpoint("ab12") == str(tmp_path / "rnc-runs" / "supernets" / "ab12")
    assert not local.is_uri

    remote = resolve_storage("s3://bucket/team/rnc/")
    assert remote.root == "s3://bucket/team/rnc"
    assert remote.tune_storage_path == "s3://bucket/team/rnc/tune"
    assert remote.supernet_checkpoint("ab12") == "s3://bucket/team/rnc/supernets/ab12"
    assert remote.is_uri


@pytest.mark.parametrize("bad", ["", "   ", "ftp://host/x"])
def test_resolve_storage_refuses_empty_and_unknown_schemes(bad: str) -> None:
    with pytest.raises(ValueError, match="storage_path"):
        resolve_storage(bad)


@pytest.mark.parametrize("key", ["", "..", "a/b"])
def test_supernet_checkpoint_key_must_be_a_plain_name(key: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        resolve_storage("/data").supernet_checkpoint(key)


def test_read_mounts_parses_kernel_format(tmp_path) -> None:
    table = tmp_path / "mounts"
    table.write_text("/dev/vda1 / ext4 rw,relatime 0 0\nfs:/export /mnt/team\\040share nfs4 rw,vers=4.2 0 0\ngarbage\n")
    assert read_mounts(str(table)) == [
        Mount("/", "ext4", "/dev/vda1"),
        Mount("/mnt/team share", "nfs4", "fs:/export"),
    ]
    assert read_mounts(str(tmp_path / "absent")) == []


def test_read_mounts_of_this_machine_holds_root() -> None:
    if not os.path.exists("/proc/self/mounts"):
        pytest.skip("no /proc/self/mounts on this platform (Linux only)")
    mounts = read_mounts()
    assert mount_of("/", mounts) is not None


@pytest.mark.parametrize(
    ("path", "mount_point"),
    [
        ("/home/u/runs", "/"),
        ("/tmp/x", "/tmp"),
        ("/mnt/shared/rnc", "/mnt/shared"),
        ("/mnt/shared", "/mnt/shared"),
        ("/mnt/shared/scratch/a", "/mnt/shared/scratch"),
        ("/mnt/sharedness", "/"),
    ],
)
def test_mount_of_takes_longest_prefix(path: str, mount_point: str) -> None:
    mount = mount_of(path, MOUNTS)
    assert mount is not None and mount.mount_point == mount_point


def test_node_local_reason_accepts_network_filesystems_only() -> None:
    assert node_local_reason("/mnt/shared/rnc", MOUNTS) is None
    assert node_local_reason("/mnt/ceph/rnc", MOUNTS) is None
    reason = node_local_reason("/mnt/shared/scratch/rnc", MOUNTS)
    assert reason is not None and "xfs" in reason and "/mnt/shared/scratch" in reason
    assert "tmpfs" in (node_local_reason("/tmp/rnc", MOUNTS) or "")
    assert "no mount table entry" in (node_local_reason("/x", []) or "")


def test_declared_shared_paths_from_environment() -> None:
    env = {SHARED_STORAGE_ENV: os.pathsep.join(["/data/shared", "", "/mnt/team/"])}
    declared = declared_shared_paths(env)
    assert declared == ["/data/shared", "/mnt/team"]
    assert is_declared_shared("/data/shared/rnc", declared)
    assert is_declared_shared("/mnt/team", declared)
    assert not is_declared_shared("/data/shared2/rnc", declared)
    assert declared_shared_paths({}) == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["mlflow", "10.0.0.5", "mlflow.rnc.svc.cluster.local", "::2"])
def test_not_loopback_hosts(host: str) -> None:
    assert not is_loopback_host(host)


REMOTE_NODES = ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("sqlite:///rnc-runs/mlflow.db", "SQLite"),
        ("file:///rnc-runs/mlruns", "local file store"),
        ("rnc-runs/mlruns", "local file store"),
        ("", "empty"),
        ("http://127.0.0.1:5000", "loopback"),
        ("postgresql://mlflow@localhost/mlflow", "loopback"),
    ],
)
def test_tracking_uri_refused_on_remote_nodes(uri: str, needle: str) -> None:
    problem = tracking_uri_problem(uri, node_addresses=REMOTE_NODES)
    assert problem is not None
    assert needle in problem
    assert "tracking_uri" in problem and "http://" in problem


@pytest.mark.parametrize(
    "uri",
    ["http://mlflow:5000", "https://mlflow.example.org", "postgresql://mlflow@db.rnc.svc/mlflow", "databricks"],
)
def test_tracking_uri_accepted_on_remote_nodes(uri: str) -> None:
    assert tracking_uri_problem(uri, node_addresses=REMOTE_NODES) is None


def test_loopback_tracking_server_is_fine_when_all_nodes_are_on_one_host() -> None:
    assert tracking_uri_problem("http://127.0.0.1:5000", node_addresses=["127.0.0.1", "127.0.0.1"]) is None
    same_host = ["192.0.2.2", "192.0.2.2"]
    assert (
        tracking_uri_problem("http://127.0.0.1:5000", node_addresses=same_host, local_addresses=["192.0.2.2"]) is None
    )
    assert (
        tracking_uri_problem(
            "http://127.0.0.1:5000", node_addresses=[*same_host, "192.0.2.3"], local_addresses=["192.0.2.2"]
        )
        is not None
    )
    assert "SQLite" in (tracking_uri_problem("sqlite:///m.db", node_addresses=["127.0.0.1"]) or "")


def _node(cpus: float, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpus} if cpus else {"memory": 1e9}}


def test_cluster_is_multinode() -> None:
    assert not cluster_is_multinode([_node(4)])
    assert cluster_is_multinode([_node(4), _node(4)])
    assert not cluster_is_multinode([_node(4), _node(4, alive=False)])
    assert cluster_is_multinode([_node(0)]), "a head without CPUs waits for workers"
    assert not cluster_is_multinode([])


def test_error_names_the_setting() -> None:
    err = MultiNodeSettingsError("tracking_uri", "msg")
    assert isinstance(err, ValueError)
    assert err.setting == "tracking_uri"


def test_check_is_a_no_op_without_ray() -> None:
    """Without ray.init there is no cluster: even node-local settings pass (the single-machine default)."""
    code = (
        "import ray\n"
        "from rnc.platform.cluster import check_multinode_settings\n"
        "assert not ray.is_initialized()\n"
        "check_multinode_settings(storage_path='rnc-runs', tracking_uri='sqlite:///rnc-runs/mlflow.db')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

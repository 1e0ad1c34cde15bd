"""Full and small disks, on real tmpfs mounts (CI runs as root): every command refuses at once, exit 2, one line,
nothing half-written -- where a launch used to fail inside Ray with ``Aborted.`` from a 0-byte ``error.pkl``.

A disk that fills up *during* a launch (after preflight passed): exit 2, one ``error:`` line naming the storage
path, what to do and the exact ``--resume`` command, no traceback, no run left RUNNING; once space is freed the
resume completes and the tracking store passes the audit of ``test_launch_faults.py``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rnc.platform.cli import app

runner = CliRunner()


def _mount(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (CI runs as root): {proc.stderr.strip()}")


def _fill(folder: Path) -> None:
    """Fill the disk of ``folder`` to the last byte with a file ``filler``."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (2**20, 4096):
            with contextlib.suppress(OSError):  # ENOSPC: the disk is full (for this chunk size)
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: less than a launch's 16 MiB minimum."""
    folder = tmp_path / "small"
    _mount(folder, "2m")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs filled to the last byte."""
    folder = tmp_path / "full"
    _mount(folder, "1m")
    try:
        _fill(folder)
        yield folder
    finally:  # unmounted even when filling it failed
        subprocess.run(["umount", str(folder)], check=False)


def _experiment(tmp_path: Path, storage: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "disk", "space": {"name": "mbv3", "options": {"resolution": 16}},
        "hardware": {"preset": "rnc", "budgets": [96]}, "searchers": [{"name": "random"}],
        "objectives": [{"name": "latency"}, {"name": "energy"}], "search": {"evaluations": 4, "batch_size": 2},
        "storage_path": str(storage / "ray"), "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }))
    return path


def _one_error(result, phrase: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert phrase in result.stderr, result.stderr


def test_launch_refuses_a_small_disk(tmp_path, small_disk, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["launch", str(_experiment(tmp_path, small_disk))])
    _one_error(result, "MiB free")
    assert list(small_disk.iterdir()) == [] and not (tmp_path / "mlflow.db").exists()


def test_launch_refuses_a_full_disk(tmp_path, full_disk, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["launch", str(_experiment(tmp_path, full_disk))])
    _one_error(result, "No space left on device")
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


def test_compile_json_on_a_full_disk(full_disk):
    out = full_disk / "plan.json"
    result = runner.invoke(app, ["compile", "rnc:vgg8", "--input", "3x32x32", "--json", str(out)])
    _one_error(result, "No space left on device")
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


def test_report_out_on_a_full_disk(full_disk, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("empty")
    result = runner.invoke(app, ["report", "--tracking-uri", uri, "--out", str(full_disk / "plots")])
    _one_error(result, "No space left on device")
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


def test_supernet_train_out_on_a_full_disk(full_disk):
    result = runner.invoke(app, ["supernet", "train", "--epochs", "1", "--out", str(full_disk / "ckpt")])
    _one_error(result, "No space left on device")
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


@pytest.mark.integration
@pytest.mark.slow
def test_a_disk_that_fills_during_a_launch(tmp_path, simulator_launch_config):
    from tests.platform.test_launch_faults import audit_store

    disk = tmp_path / "disk"
    _mount(disk, "24m")  # more than preflight's 16 MiB
    try:
        config = simulator_launch_config(tmp_path, name="filled", seed=3, evaluations=16, batch_size=4,
                                         searchers=("random",), budgets=(64,))
        data = yaml.safe_load(config.read_text())
        data["storage_path"] = str(disk / "ray")  # the tracking store stays on another disk
        config.write_text(yaml.safe_dump(data))
        env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": os.pathsep.join(sys.path)}
        command = [sys.executable, "-m", "rnc.platform.cli", "launch", str(config)]
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        storage = disk / "ray" / "filled"
        deadline = time.monotonic() + 300
        try:
            while not list(storage.glob("*.plans.pkl")):  # the trial plans are saved: Tune starts next
                assert proc.poll() is None, "the launch ended before the disk filled: " + proc.stderr.read()
                assert time.monotonic() < deadline, "the launch produced no checkpoint in time"
                time.sleep(0.05)
            _fill(disk)
            _, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        assert proc.returncode == 2, stderr[-3000:]
        lines = stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
        assert f"storage_path {str(disk / 'ray')!r}: the disk is full" in errors[0] and "free space" in errors[0]
        assert errors[0].endswith(f"resume with: rnc-platform launch {config} --resume"), errors[0]
        assert "Traceback" not in stderr, stderr[-3000:]
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        assert audit_store(uri, "filled")["running"] == []

        (disk / "filler").unlink()
        resumed = subprocess.run([*command, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        audit = audit_store(uri, "filled")
        assert audit["tracked"] == 16 and audit["duplicates"] == 0 and audit["running"] == []
        assert audit["hollow"] == [] and audit["wrong_tags"] == [] and audit["launch_status"] == ["FINISHED"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)

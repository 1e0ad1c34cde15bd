"""Full and small disks, on real tmpfs mounts (CI runs as root): every command refuses at once, exit 2, one line,
nothing half-written -- where a launch used to fail inside Ray with ``Aborted.`` from a 0-byte ``error.pkl``."""

from __future__ import annotations

import os
import subprocess
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
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: the disk is full
            pass
        finally:
            os.close(fd)
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

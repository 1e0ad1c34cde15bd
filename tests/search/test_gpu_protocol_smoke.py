"""benchmarks/gpu_protocol.sh starts correctly on a CPU: its --smoke path trains all three CIFAR-10 supernets on
a tiny subset of the shared JPEG copy and writes summary.json; a missing data folder exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_protocol.sh"
SHARED_CIFAR10 = REPO.parent / "shared" / "datasets" / "cifar10-jpeg"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "RNC_DATASET_CACHE": str(tmp_path / "decoded")}


def test_missing_data_exits_2(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--smoke", "--data-root", str(tmp_path / "none")], cwd=REPO,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no CIFAR-10 in" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_CIFAR10 / "train").is_dir(), reason=f"the CIFAR-10 JPEG copy is not at {SHARED_CIFAR10}"
)
def test_smoke_protocol_runs_on_cpu(tmp_path):
    out = tmp_path / "protocol"
    done = subprocess.run(["bash", str(SCRIPT), "--smoke", "--data-root", str(SHARED_CIFAR10), "--out", str(out)],
                          cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary) == ["imc-blocks", "mbv3", "nax"]
    for figures in summary.values():
        assert figures["device"] == "cpu" and figures["format"] == "imagefolder" and figures["image_size"] == 16
        assert figures["per_class"] == 10 and figures["train_seconds"] > 0
        assert 0.0 <= figures["smallest_test_accuracy"] <= 1.0 and 0.0 <= figures["largest_test_accuracy"] <= 1.0
    assert summary["imc-blocks"]["split"] == "stages" and summary["mbv3"]["split"] == "none"

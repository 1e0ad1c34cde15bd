"""benchmarks/bench_nax.py: the CPU-sizing options for CIFAR-10 (refused before any data is read; the analog
calibration subset is the first N calibration images)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_nax.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--analog-calib-images", "0"],
         "--analog-calib-images must be between 1 and 256 (the calibration images), got 0"),
        (["--analog-calib-images", "257"], "--analog-calib-images must be between 1 and 256"),
        (["--search-test-per-class", "10"],
         "--search-test-per-class selects cifar10 test images; --dataset is 'digits'"),
        (["--dataset", "cifar10", "--search-test-per-class", "0"], "--search-test-per-class must be at least 1, got 0"),
        (["--dataset", "cifar10", "--test-per-class", "20", "--search-test-per-class", "30"],
         "--search-test-per-class (30) must not exceed --test-per-class (20)"),
    ],
)
def test_inconsistent_sizes_are_refused_before_any_work(tmp_path: Path, args: list[str], message: str) -> None:
    cache = tmp_path / "supernets"
    result = run_script(*args, "--cache-dir", str(cache), "--json", str(tmp_path / "out.json"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not cache.exists()  # no supernet was trained
    assert not (tmp_path / "out.json").exists()


def test_analog_calibration_takes_the_first_images_across_batches() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_nax
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    first, second = torch.arange(5.0).view(5, 1), torch.arange(5.0, 8.0).view(3, 1)
    evaluator = SimpleNamespace(calib_batches=[first, second])
    assert bench_nax.analog_calibration(evaluator, None) is evaluator.calib_batches  # default: all, unchanged
    cut = bench_nax.analog_calibration(evaluator, 6)
    assert [b.flatten().tolist() for b in cut] == [[0, 1, 2, 3, 4], [5]]
    assert [b.flatten().tolist() for b in bench_nax.analog_calibration(evaluator, 2)] == [[0, 1]]


def test_remeasure_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    result = run_script("--remeasure", str(tmp_path / "none.json"), "--cache-dir", str(tmp_path / "supernets"))
    assert result.returncode == 2
    assert f"--remeasure {tmp_path / 'none.json'}: no such file; pass the --json of an earlier run" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "supernets").exists()


def test_genome_from_row_rebuilds_the_networks_of_an_earlier_run() -> None:
    from rnc.search.spaces import get_space

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_nax
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    space = get_space("nax", input_shape=[3, 16, 16])
    names = [slot.name for slot in space.slots]
    assert len(names) == 19  # ResNet-20: the stem, 3 stages x 3 blocks x 2 convs
    resnet20 = {"kernels": [3] * 19, "crossbars": dict.fromkeys(names, 128)}
    assert bench_nax.genome_from_row(space, resnet20).tolist() == [0, 1] * 19  # kernel 3 and crossbar 128: index 0, 1
    kernels = [7, 5, 3] * 6 + [5]
    sides = [64, 256] * 9 + [128]
    row = {"kernels": kernels, "crossbars": dict(zip(names, sides, strict=True))}
    genome = bench_nax.genome_from_row(space, row)
    assert list(space.kernels(genome)) == kernels
    assert list(space.crossbars(genome).values()) == sides

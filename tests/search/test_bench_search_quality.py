"""benchmarks/bench_search_quality.py: options that are checked before any supernet is loaded or trained."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_search_quality.py"


@pytest.mark.parametrize("value", ["0", "513"])
def test_calib_images_out_of_range_is_refused_with_one_line(value: str) -> None:
    # the calibration split holds at most 512 images (rnc.search.supernet.evaluate); 0 would skip recalibration
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--problem", "zdt", "--evaluations", "4", "--calib-images", value],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert f"--calib-images must be between 1 and 512 (the calibration split), got {value}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hypervolume" not in result.stdout  # refused before any search ran


def test_calib_images_in_range_runs_the_search() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--problem", "zdt", "--searchers", "random", "--seeds", "0",
         "--evaluations", "4", "--batch", "2", "--calib-images", "256"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "hypervolume" in result.stdout

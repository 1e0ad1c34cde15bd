"""Shared set-up of the platform tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml


def _write_simulator_launch(root: Path, *, name: str, seed: int, evaluations: int, batch_size: int,
                            searchers: Sequence[str], budgets: Sequence[int]) -> Path:
    data = {
        "name": name,
        "seed": seed,
        "space": {"name": "mbv3", "options": {"resolution": 32}},
        "hardware": {"preset": "rnc", "budgets": list(budgets)},
        "searchers": [{"name": s} for s in searchers],
        "objectives": [{"name": "latency"}, {"name": "energy"}],
        "search": {"evaluations": evaluations, "batch_size": batch_size, "reference_samples": 8},
        "pools": {"simulators": 1, "max_concurrent_trials": 1},
        "storage_path": str(root / "ray"),
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
    }
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def simulator_launch_config() -> Callable[..., Path]:
    """``write(root, name=, seed=, evaluations=, batch_size=, searchers=, budgets=)`` -> the path of a small
    simulator-only experiment (mbv3 at 32x32 on the rnc preset, latency and energy, local storage and SQLite
    MLflow store under ``root``)."""
    return _write_simulator_launch

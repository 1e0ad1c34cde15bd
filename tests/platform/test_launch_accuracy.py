"""The accuracy path of a launch, small enough for CI: the supernet trained in a Ray task on first use, the
SupernetEvaluator actors, the ``min_accuracy`` constraint and the Bayesian searcher -- all of which the embedded
default launch uses and the simulator-only launch tests never touch.

Checked against what the run itself cannot make up: the cached checkpoint exists with its manifest; every
candidate that fits its budget got an accuracy in [0, 1] from an evaluator, and the evaluators' counters add up
to exactly those candidates; feasibility follows the constraint as the docs define it (fits the budget and
accuracy >= min_accuracy); the launch's fronts contain only feasible candidates.
"""

from __future__ import annotations

import json

import pytest
import ray
import yaml

from rnc.platform.config import ExperimentConfig
from rnc.platform.launch import run_launch

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIN_ACCURACY = 0.12
EVALUATIONS, BATCH = 8, 4


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("accuracy")
    data = {
        "name": "accuracy-path",
        "seed": 1,
        "space": {"name": "mbv3", "options": {"resolution": 8, "width_mult": 0.25}},
        "dataset": {"name": "digits", "image_size": 8},
        "supernet": {"epochs": 1, "cache_dir": str(root / "supernets")},
        "hardware": {"preset": "rnc", "budgets": [64]},
        "searchers": [{"name": "bayes", "options": {"n_startup_trials": 4}}],
        "objectives": [{"name": "accuracy"}, {"name": "latency"}],
        "constraints": {"fit_budget": True, "min_accuracy": MIN_ACCURACY},
        "search": {"evaluations": EVALUATIONS, "batch_size": BATCH, "reference_samples": 4},
        "pools": {"simulators": 1, "evaluators": 1, "max_concurrent_trials": 1},
        "storage_path": str(root / "ray"),
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
    }
    (root / "exp.yaml").write_text(yaml.safe_dump(data))
    ray.init(num_cpus=3, include_dashboard=False, configure_logging=False)
    try:
        yield root, run_launch(ExperimentConfig.from_yaml(root / "exp.yaml"), show_progress=False)
    finally:
        ray.shutdown()


def test_supernet_was_trained_and_cached(launched) -> None:
    root, _ = launched
    manifests = list((root / "supernets").glob("mbv3-digits-*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["epochs"] == 1 and manifest["space"] == "mbv3"
    assert (manifests[0].parent / "supernet.pt").stat().st_size > 0


def test_evaluators_measured_every_candidate_that_fits(launched) -> None:
    _, result = launched
    df = result.candidates
    assert len(df) == EVALUATIONS
    fits = df["violation.fit_budget"] <= 0
    measured = df.loc[fits, "accuracy"]
    assert measured.notna().all() and measured.between(0.0, 1.0).all()
    assert df.loc[~fits, "accuracy"].isna().all()  # infeasible by budget: never sent to an evaluator
    evaluated = sum(s["evaluated"] for s in result.stats["evaluators"])
    # every candidate that fits, plus at most one hardware-accuracy evaluation per front member afterwards
    assert int(fits.sum()) <= evaluated <= int(fits.sum()) + int((df.pareto_budget | df.pareto_global).sum())


def test_min_accuracy_decides_feasibility(launched) -> None:
    _, result = launched
    df = result.candidates
    expected = (df["violation.fit_budget"] <= 0) & (df["accuracy"].fillna(0.0) >= MIN_ACCURACY)
    assert (df["feasible"] == expected).all()
    violation = MIN_ACCURACY - df["accuracy"]
    fits = df["violation.fit_budget"] <= 0
    assert (df.loc[fits, "violation.min_accuracy"] - violation[fits]).abs().max() < 1e-12


def test_fronts_hold_feasible_candidates_only(launched) -> None:
    _, result = launched
    df = result.candidates
    assert not (df.pareto_budget & ~df.feasible).any()
    assert not (df.pareto_global & ~df.feasible).any()

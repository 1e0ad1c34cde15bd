"""Launch building blocks without Ray: pool sizing, constraint violations, objective rows, batch splitting,
trial seeds, and the Pareto front columns against a brute-force sort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnc.platform.actors import PoolSizes, _split, default_concurrent_trials, default_pool_sizes
from rnc.platform.report import compute_fronts
from rnc.platform.tuning import hardware_violations, objective_row, trial_key, trial_seed


def test_pool_sizes_from_resources() -> None:
    two_cores = default_pool_sizes({"CPU": 2}, needs_accuracy=True)
    assert (two_cores.simulators, two_cores.evaluators, two_cores.evaluator_gpus) == (1, 1, 0.0)
    big = default_pool_sizes({"CPU": 16}, needs_accuracy=True)
    assert (big.simulators, big.evaluators) == (11, 4)
    gpus = default_pool_sizes({"CPU": 16, "GPU": 2}, needs_accuracy=True)
    # 16 CPUs - 2 evaluators x 1 CPU (Ray reserves them beside their GPU) - 1 for the trials = 13 simulators
    assert (gpus.simulators, gpus.evaluators, gpus.evaluator_gpus) == (13, 2, 1.0)
    pool_cpus = gpus.simulators * gpus.simulator_cpus + gpus.evaluators * gpus.evaluator_cpus
    assert pool_cpus <= 16 - 1  # the pools fit the cluster with a CPU left for the trials
    shared = default_pool_sizes({"CPU": 16, "GPU": 1}, needs_accuracy=True, evaluators=4)
    assert (shared.evaluators, shared.evaluator_gpus) == (4, 0.25)
    sim_only = default_pool_sizes({"CPU": 8}, needs_accuracy=False)
    assert (sim_only.simulators, sim_only.evaluators) == (7, 0)
    assert default_pool_sizes({"CPU": 8}, needs_accuracy=False, simulators=3).simulators == 3



def test_concurrent_trials_default() -> None:
    # the CPUs the pools leave free, at least two, at most the number of trials (worked out by hand)
    two_cores = PoolSizes(simulators=1, evaluators=0, simulator_cpus=1.0, evaluator_cpus=1.0, evaluator_gpus=0.0)
    assert default_concurrent_trials({"CPU": 2}, two_cores, 4) == 2  # 2 - 1 = 1 free -> 2
    assert default_concurrent_trials({"CPU": 2}, two_cores, 1) == 1  # one trial only
    cpu_pools = PoolSizes(simulators=11, evaluators=4, simulator_cpus=1.0, evaluator_cpus=1.0, evaluator_gpus=0.0)
    assert default_concurrent_trials({"CPU": 16}, cpu_pools, 8) == 2  # 16 - 11 - 4 = 1 free -> 2
    few_sims = PoolSizes(simulators=2, evaluators=0, simulator_cpus=2.0, evaluator_cpus=1.0, evaluator_gpus=0.0)
    assert default_concurrent_trials({"CPU": 16}, few_sims, 8) == 8  # 16 - 4 = 12 free, 8 trials
    assert default_concurrent_trials({"CPU": 16}, few_sims, 20) == 12
    gpu_evals = PoolSizes(simulators=10, evaluators=2, simulator_cpus=1.0, evaluator_cpus=1.0, evaluator_gpus=1.0)
    assert default_concurrent_trials({"CPU": 16, "GPU": 2}, gpu_evals, 8) == 4  # 16 - 10 - 2 = 4 free


def test_hardware_violations() -> None:
    fits = {"feasible": True, "min_crossbars": 48, "latency_ns": 2e6}
    too_big = {"feasible": False, "min_crossbars": 80, "latency_ns": 2e6}
    assert hardware_violations(fits, budget=64, fit_budget=True, max_latency_ns=None) == {"fit_budget": -0.25}
    assert hardware_violations(too_big, budget=64, fit_budget=True, max_latency_ns=None) == {"fit_budget": 0.25}
    assert hardware_violations(too_big, budget=0, fit_budget=True, max_latency_ns=None) == {"fit_budget": 0.0}
    # the compiler's verdict wins: infeasible although the count alone would fit
    odd = {"feasible": False, "min_crossbars": 60}
    assert hardware_violations(odd, budget=64, fit_budget=True, max_latency_ns=None)["fit_budget"] > 0
    lat = hardware_violations(fits, budget=64, fit_budget=False, max_latency_ns=1e6)
    assert lat == {"max_latency_ns": pytest.approx(1.0)}


def test_objective_row_signs_and_missing_values() -> None:
    objectives = [("accuracy", -1.0), ("latency_ns", 1.0)]
    assert objective_row({"accuracy": 0.9, "latency_ns": 5.0}, objectives, [0.0, 100.0]) == [-0.9, 5.0]
    assert objective_row({"accuracy": None, "latency_ns": float("nan")}, objectives, [0.0, 100.0]) == [0.0, 100.0]


def test_split_keeps_order_and_balance() -> None:
    items = list(range(11))
    parts = _split(items, 3)
    assert [len(p) for p in parts] == [4, 4, 3]
    assert [x for p in parts for x in p] == items
    assert _split(items[:2], 5) == [[0], [1]]
    assert _split([], 3) == [[]]


def test_trial_names_and_seeds() -> None:
    assert trial_key("nsga2", 64) == "nsga2-b64"
    assert trial_key("bayes", 0) == "bayes-bunl"
    seeds = [trial_seed(0, i) for i in range(8)]
    assert len(set(seeds)) == 8 and seeds == [trial_seed(0, i) for i in range(8)]
    assert trial_seed(1, 0) != trial_seed(0, 0)


def test_fronts_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame(
        {
            "candidate_id": [f"t/{i}" for i in range(n)],
            "budget": rng.choice([32, 64], n),
            "feasible": rng.random(n) > 0.2,
            "accuracy": rng.integers(0, 20, n) / 20,  # ties on purpose
            "latency_ns": rng.integers(1, 30, n) * 1e3,
        }
    )
    objectives = [("accuracy", "max"), ("latency_ns", "min")]
    out = compute_fronts(df, objectives)
    F = np.column_stack([-df.accuracy.to_numpy(), df.latency_ns.to_numpy()])

    def front(mask: np.ndarray) -> set[int]:
        idx = np.flatnonzero(mask & df.feasible.to_numpy())
        return {int(i) for i in idx if not any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in idx)}

    assert set(np.flatnonzero(out.pareto_global.to_numpy())) == front(np.ones(n, dtype=bool))
    expected = set()
    for b in (32, 64):
        expected |= front(df.budget.to_numpy() == b)
    assert set(np.flatnonzero(out.pareto_budget.to_numpy())) == expected


def test_front_tables_show_each_network_once_and_count_its_evaluations() -> None:
    """The same network evaluated three times on the front is one row; the title counts networks and candidates."""
    from rnc.platform.report import front_tables

    df = pd.DataFrame(
        {
            "candidate_id": ["t/0", "t/1", "t/2", "t/3"],
            "budget": [64, 64, 64, 64],
            "feasible": [True] * 4,
            "accuracy": [0.9, 0.9, 0.9, 0.8],
            "latency_ns": [2e3, 2e3, 2e3, 1e3],
            "crossbars_used": [10, 10, 10, 5],
            "utilization": [0.5, 0.5, 0.5, 0.4],
            "network_key": ["a", "a", "a", "b"],
        }
    )
    objectives = [("accuracy", "max"), ("latency_ns", "min")]
    tables = front_tables(compute_fronts(df, objectives), objectives)
    assert [t.row_count for t in tables] == [2, 2]
    assert all("(2 networks, 4 candidates)" in str(t.title) for t in tables)
    assert tables[0].columns[0]._cells == ["t/0", "t/3"]


def test_front_tables_fit_80_columns_with_units() -> None:
    from rich.console import Console

    from rnc.platform.report import print_fronts

    rng = np.random.default_rng(1)
    n = 40
    df = pd.DataFrame(
        {
            "candidate_id": [f"nsga2-b{96 if i < 20 else 160}/{i:05d}" for i in range(n)],
            "budget": [96] * 20 + [160] * 20,
            "feasible": [True] * n,
            "accuracy": rng.random(n),
            "latency_ns": rng.random(n) * 1e6,
            "energy_uj": rng.random(n) * 10,
            "crossbars_used": rng.integers(10, 160, n).astype(float),
            "utilization": rng.random(n),
            "network_key": [str(i) for i in range(n)],
            "label": ["d4.4.4.4 k7.0 e6.0 (a long label that has to wrap)"] * n,
        }
    )
    objectives = [("accuracy", "max"), ("latency_ns", "min"), ("energy_uj", "min")]
    console = Console(width=80, record=True)
    print_fronts(compute_fronts(df, objectives), objectives, console)
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "µs ↓" in text and "µJ ↓" in text and "% ↑" in text and "…" not in text
    assert any(line.lstrip().startswith("nsga2/") for line in text.splitlines())  # short ids, budget in the title
    # values shown in display units: latency_ns 2500 would read 2.5 (µs); check one row by hand
    row = df.iloc[int(np.argmin(df.latency_ns))]
    assert f"{row.latency_ns / 1e3:.4g}" in text

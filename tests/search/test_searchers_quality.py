"""Search quality on a discretized ZDT1 problem (Zitzler, Deb & Thiele 2000), integer genes.

Each searcher must improve hypervolume over its first batch, and NSGA-II and the Bayesian searcher must beat
random search on average over a few fixed seeds, by a margin well above the seed-to-seed spread of random.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnc.search.pareto import hypervolume
from rnc.search.searchers import make_searcher

N_GENES, N_CHOICES = 8, 6
REF = np.array([1.1, 11.0])  # ZDT1: f1 in [0, 1], f2 in [0, 10]
SEEDS = (0, 1, 2)
BATCH, BUDGET = 12, 120


def zdt1(genomes: list[np.ndarray]) -> np.ndarray:
    x = np.array(genomes, dtype=float) / (N_CHOICES - 1)
    f1 = x[:, 0]
    g = 1.0 + 9.0 * x[:, 1:].mean(axis=1)
    return np.stack([f1, g * (1.0 - np.sqrt(f1 / g))], axis=1)


def run(name: str, seed: int) -> tuple[float, float]:
    """(hypervolume after the first batch, hypervolume after the budget)."""
    s = make_searcher(name, [N_CHOICES] * N_GENES, 2, seed=seed, **({"pop_size": BATCH} if name == "nsga2" else {}))
    found = []
    while len(found) < BUDGET:
        genomes = s.ask(BATCH)
        f = zdt1(genomes)
        s.tell(genomes, f)
        found.extend(f)
        if len(found) == BATCH:
            first = hypervolume(found, REF)
    return first, hypervolume(found, REF)


@pytest.fixture(scope="module")
def results() -> dict[str, np.ndarray]:
    return {name: np.array([run(name, seed) for seed in SEEDS]) for name in ("random", "nsga2", "bayes")}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random", "nsga2", "bayes"])
def test_every_searcher_improves_on_its_first_batch(results, name):
    first, final = results[name].T
    assert np.all(final > first + 0.3), results[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nsga2", "bayes"])
def test_model_based_searchers_beat_random(results, name):
    random_final = results["random"][:, 1]
    final = results[name][:, 1]
    assert final.mean() > random_final.mean() + 0.5, (final, random_final)
    assert final.min() > random_final.max(), (final, random_final)

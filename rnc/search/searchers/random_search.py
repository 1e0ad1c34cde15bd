"""Uniform random search: the baseline every other searcher must beat.

Each gene's choice index is drawn uniformly and independently (``numpy.random.Generator.integers`` seeded by
``seed``); genomes asked before are redrawn (:func:`~rnc.search.searchers.base.draw_unasked`). Results are not
used except for bookkeeping.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rnc.search.searchers.base import GenomeKey, Searcher, draw_unasked


class RandomSearcher(Searcher):
    """No options."""

    name = "random"
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_choices, n_objectives, *, seed, n_constraints=0, **options) -> None:
        super().__init__(n_choices, n_objectives, seed=seed, n_constraints=n_constraints, **options)
        self._rng = np.random.default_rng(self.seed)

    def _restart(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._reset_log()

    def _ask(self, n: int) -> list[GenomeKey]:
        out: list[GenomeKey] = []
        taken: set[GenomeKey] = set()
        for _ in range(n):
            key = draw_unasked(self._rng, self.n_choices, [self._asked, taken])
            taken.add(key)
            out.append(key)
        return out

    def _tell(self, genomes: np.ndarray, objectives: np.ndarray, violations: np.ndarray, failed: np.ndarray) -> None:
        """Random search does not learn from results."""

"""NSGA-II (Deb et al., IEEE TEVC 2002) through pymoo's ask-and-tell interface.

pymoo conventions used here (pymoo 0.6.2, ``pymoo.algorithms.moo.nsga2.NSGA2``):

- Integer genes follow pymoo's recipe for integer variables: ``IntegerRandomSampling`` for the first
  population; simulated binary crossover and polynomial mutation run in floating point (``vtype=float``) and a
  ``RoundingRepair`` rounds offspring back to choice indices. Choice indices are ordered (smallest to largest
  choice), so neighbouring indices are neighbouring architectures.
- Constraints are pymoo inequality constraints ``G <= 0``; NSGA-II ranks feasible solutions first and
  infeasible ones by total violation (Deb's constrained domination).
- ``ask``/``tell``: ``algorithm.ask()`` returns one generation (``pop_size`` genomes first, ``n_offsprings``
  after); the results are attached with ``Evaluator().eval(StaticProblem(problem, F=F, G=G), pop)`` and handed
  back with ``algorithm.tell(infills=pop)``, as in pymoo's ask-and-tell documentation.

Adapter rules: :meth:`Searcher.ask` may ask any number of genomes. Genomes of the current generation are handed
out first; a generation is told to pymoo as soon as all its genomes are told; a new generation is bred only
then. When the caller asks for more genomes while some of the current generation are still outstanding, the
generation is topped up with extra individuals (more random samples in generation one, more offspring of the
current survivors afterwards), so any batch size works. Duplicate elimination compares offspring against the
population *and* against every genome this searcher ever asked, so no genome is evaluated twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.duplicate import DefaultDuplicateElimination
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.problems.static import StaticProblem

from rnc.search.searchers.base import GenomeKey, Searcher, SearcherError, draw_unasked


class _AskedDuplicateElimination(DefaultDuplicateElimination):
    """pymoo's duplicate elimination, extended to also drop genomes that were asked before.

    ``DuplicateElimination.do`` always compares a population with itself first (``to_itself``), which is where
    the asked-set check happens; the comparisons with the other populations are pymoo's own.
    """

    def __init__(self, asked: set[GenomeKey]) -> None:
        super().__init__()
        self.asked = asked

    def _do(self, pop, other, is_duplicate):
        is_duplicate = super()._do(pop, other, is_duplicate)
        if other is None:
            for i, x in enumerate(pop.get("X")):
                if tuple(int(v) for v in np.rint(x)) in self.asked:
                    is_duplicate[i] = True
        return is_duplicate


class NSGA2Searcher(Searcher):
    """Options: ``pop_size`` (20), ``n_offsprings`` (None: ``pop_size``), ``crossover_prob`` (1.0),
    ``crossover_eta`` (3.0), ``mutation_eta`` (3.0), ``mutation_prob_var`` (None: ``1 / n_genes``)."""

    name = "nsga2"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "pop_size": 20,
        "n_offsprings": None,
        "crossover_prob": 1.0,
        "crossover_eta": 3.0,
        "mutation_eta": 3.0,
        "mutation_prob_var": None,
    }

    def __init__(self, n_choices, n_objectives, *, seed, n_constraints=0, **options) -> None:
        super().__init__(n_choices, n_objectives, seed=seed, n_constraints=n_constraints, **options)
        pop_size = self.options["pop_size"]
        if not isinstance(pop_size, int) or pop_size < 2:
            raise SearcherError(f"nsga2: pop_size must be an int >= 2, got {pop_size!r}")
        n_off = self.options["n_offsprings"]
        if n_off is not None and (not isinstance(n_off, int) or n_off < 1):
            raise SearcherError(f"nsga2: n_offsprings must be a positive int or None, got {n_off!r}")
        pv = self.options["mutation_prob_var"]
        if pv is not None and not 0.0 < float(pv) <= 1.0:
            raise SearcherError(f"nsga2: mutation_prob_var must be in (0, 1] or None, got {pv!r}")
        self._problem = Problem(
            n_var=len(self.n_choices),
            n_obj=self.n_objectives,
            n_ieq_constr=self.n_constraints + 1,  # the last one: "evaluated" (violated by failed rows)
            xl=np.zeros(len(self.n_choices)),
            xu=np.array(self.n_choices, dtype=float) - 1.0,
            vtype=int,
        )
        self._build()

    def _build(self) -> None:
        o = self.options
        self._algorithm = NSGA2(
            pop_size=o["pop_size"],
            n_offsprings=o["n_offsprings"],
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=o["crossover_prob"], eta=o["crossover_eta"], vtype=float, repair=RoundingRepair()),
            mutation=PM(
                prob=1.0, prob_var=o["mutation_prob_var"], eta=o["mutation_eta"], vtype=float, repair=RoundingRepair()
            ),
            eliminate_duplicates=_AskedDuplicateElimination(self._asked),
            seed=self.seed,
        )
        self._algorithm.setup(self._problem, termination=NoTermination())
        self._generation: Population | None = None  # the current generation, as pymoo individuals
        self._handed_out = 0  # genomes of the current generation given to the caller
        self._gen_f: list[np.ndarray] = []  # told results of the current generation, in order
        self._gen_g: list[np.ndarray] = []
        self._generations_told = 0

    def _restart(self) -> None:
        self._reset_log()
        self._build()

    @property
    def algorithm(self) -> NSGA2:
        """The underlying pymoo algorithm (read it, don't drive it)."""
        return self._algorithm

    @property
    def generation(self) -> int:
        """Number of generations told to pymoo so far."""
        return self._generations_told

    # -- ask ------------------------------------------------------------------------------------------
    def _ask(self, n: int) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        while len(out) < n:
            if self._generation is None:
                self._start_generation(n - len(out))
            elif self._handed_out == len(self._generation):
                self._top_up(n - len(out))
            stop = min(len(self._generation), self._handed_out + n - len(out))
            for x in self._generation.get("X")[self._handed_out : stop]:
                out.append(np.rint(x).astype(np.int64))
            # mark as asked right away so that a top-up in this same call never breeds them again
            self._asked.update(tuple(int(v) for v in g) for g in out[len(out) - (stop - self._handed_out) :])
            self._handed_out = stop
        # the base class re-adds them with its bookkeeping; drop ours first to keep its duplicate check exact
        for g in out:
            self._asked.discard(tuple(int(v) for v in g))
        return out

    def _start_generation(self, n_needed: int) -> None:
        pop = self._algorithm.ask()
        if pop is None or len(pop) == 0:
            # pymoo's mating found no offspring that was not asked before (small or nearly exhausted space)
            self._algorithm.termination.force_termination = False
            pop = self._random_population(n_needed)
        self._generation, self._handed_out = pop, 0
        self._gen_f, self._gen_g = [], []

    def _top_up(self, n: int) -> None:
        algo = self._algorithm
        if not algo.is_initialized:
            extra = algo.initialization.do(self._problem, n, random_state=algo.random_state, algorithm=algo)
        else:
            extra = algo.mating.do(self._problem, algo.pop, n, algorithm=algo, random_state=algo.random_state)
        if len(extra) == 0:
            extra = self._random_population(n)
        extra.set("n_gen", algo.n_iter)
        extra.set("n_iter", algo.n_iter)
        self._generation = Population.merge(self._generation, extra)

    def _random_population(self, n: int) -> Population:
        """Fallback when pymoo cannot produce unasked genomes: uniform draws among the unasked ones."""
        taken: set[GenomeKey] = set()
        for _ in range(n):
            taken.add(draw_unasked(self._algorithm.random_state, self.n_choices, [self._asked, taken]))
        return Population.new(X=np.array(sorted(taken), dtype=float))

    # -- tell -----------------------------------------------------------------------------------------
    def _tell(self, genomes: np.ndarray, objectives: np.ndarray, violations: np.ndarray, failed: np.ndarray) -> None:
        self._gen_f.extend(objectives)
        self._gen_g.extend(np.column_stack([violations, failed.astype(float)]))
        assert self._generation is not None
        if len(self._gen_f) == self._handed_out == len(self._generation):
            f = np.array(self._gen_f, dtype=float)
            kwargs: dict[str, np.ndarray] = {"F": f, "G": np.array(self._gen_g, dtype=float)}
            Evaluator().eval(StaticProblem(self._problem, **kwargs), self._generation)
            self._algorithm.tell(infills=self._generation)
            self._generation = None
            self._generations_told += 1

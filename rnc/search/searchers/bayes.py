"""Multi-objective Bayesian optimization with Optuna (ask/tell API, in-memory study).

Samplers (Optuna 5.0):

- ``tpe`` (default): ``optuna.samplers.TPESampler`` — multi-objective tree-structured Parzen estimator (MOTPE,
  Ozaki et al., GECCO 2020 / JAIR 2022) with constraint handling (Watanabe & Hutter 2023: feasible trials
  first, infeasible ones ranked by total violation). ``multivariate=True`` models the genes jointly;
  ``constant_liar=True`` keeps a batch of trials asked before any is told from collapsing onto one point.
- ``gp``: ``optuna.samplers.GPSampler`` — Gaussian-process Bayesian optimization (log expected hypervolume
  improvement for several objectives, constrained by a GP per constraint). Much slower per ask; for small
  budgets.

Every gene ``i`` is ``trial.suggest_int("g{i}", 0, n_choices[i] - 1)`` (``encoding="int"``, the default: choice
indices are ordered, so an integer distribution lets the model share strength between neighbouring choices) or
``trial.suggest_categorical("g{i}", [0, ..., n_choices[i] - 1])`` (``encoding="categorical"``: about five times
cheaper per ask with TPE, somewhat weaker on ordered genes); genes with one choice are not suggested.
Constraint violations are set with ``Trial.set_constraint`` (Optuna's convention is the same as ours: ``<= 0``
feasible), which replaces the ``constraints_func`` argument deprecated in Optuna 5.0.

Duplicates: Optuna has no duplicate elimination, so a proposal equal to a genome already evaluated is told at
once with its known results (the model learns, no evaluation is spent) and the sampler is asked again; a
proposal equal to a genome still outstanding is told as failed (ignored by the samplers) and asked again.
After ``max_duplicate_retries`` such proposals in a row, an unasked genome drawn uniformly at random is
enqueued (``Study.enqueue_trial``) so the search always moves on.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.trial import Trial, TrialState

from rnc.search.searchers.base import GenomeKey, Searcher, SearcherError, draw_unasked

SAMPLERS = ("tpe", "gp")
ENCODINGS = ("int", "categorical")


class BayesSearcher(Searcher):
    """Options: ``sampler`` ("tpe" | "gp", default "tpe"), ``n_startup_trials`` (10, random trials before the
    model is used), ``n_ei_candidates`` (24, TPE only), ``max_duplicate_retries`` (20), ``encoding`` ("int" |
    "categorical", default "int")."""

    name = "bayes"
    OPTIONS: ClassVar[dict[str, Any]] = {
        "sampler": "tpe",
        "n_startup_trials": 10,
        "n_ei_candidates": 24,
        "max_duplicate_retries": 20,
        "encoding": "int",
    }

    def __init__(self, n_choices, n_objectives, *, seed, n_constraints=0, **options) -> None:
        super().__init__(n_choices, n_objectives, seed=seed, n_constraints=n_constraints, **options)
        o = self.options
        if o["sampler"] not in SAMPLERS:
            raise SearcherError(f"bayes: sampler must be one of {list(SAMPLERS)}, got {o['sampler']!r}")
        if o["encoding"] not in ENCODINGS:
            raise SearcherError(f"bayes: encoding must be one of {list(ENCODINGS)}, got {o['encoding']!r}")
        for key in ("n_startup_trials", "n_ei_candidates", "max_duplicate_retries"):
            if not isinstance(o[key], int) or o[key] < (0 if key != "n_ei_candidates" else 1):
                raise SearcherError(f"bayes: {key} must be a non-negative int, got {o[key]!r}")
        self._active = [i for i, c in enumerate(self.n_choices) if c > 1]
        self._build()

    def _build(self) -> None:
        o = self.options
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if o["sampler"] == "tpe":
                sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                    seed=self.seed,
                    n_startup_trials=o["n_startup_trials"],
                    n_ei_candidates=o["n_ei_candidates"],
                    multivariate=True,
                    constant_liar=True,
                )
            else:
                sampler = optuna.samplers.GPSampler(
                    seed=self.seed, n_startup_trials=o["n_startup_trials"], deterministic_objective=True
                )
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per searcher
        try:
            self._study = optuna.create_study(directions=["minimize"] * self.n_objectives, sampler=sampler)
        finally:
            optuna.logging.set_verbosity(verbosity)
        self._rng = np.random.default_rng([self.seed, 1])  # only for the enqueued fallback genomes
        self._trials: dict[GenomeKey, Trial] = {}  # outstanding genome -> its running trial
        self._results: dict[GenomeKey, tuple[list[float], list[float]]] = {}

    def _restart(self) -> None:
        self._reset_log()
        self._build()

    @property
    def study(self) -> optuna.Study:
        """The underlying Optuna study (read it, don't drive it)."""
        return self._study

    def _param(self, i: int) -> str:
        return f"g{i}"

    def _genome_of(self, trial: Trial) -> GenomeKey:
        genome = [0] * len(self.n_choices)
        for i in self._active:
            if self.options["encoding"] == "int":
                genome[i] = trial.suggest_int(self._param(i), 0, self.n_choices[i] - 1)
            else:
                genome[i] = trial.suggest_categorical(self._param(i), list(range(self.n_choices[i])))
        return tuple(genome)

    def _ask(self, n: int) -> list[GenomeKey]:
        out: list[GenomeKey] = []
        for _ in range(n):
            for _attempt in range(self.options["max_duplicate_retries"]):
                trial = self._study.ask()
                key = self._genome_of(trial)
                if key in self._results:
                    self._tell_trial(trial, *self._results[key])
                elif key in self._trials or key in out:
                    self._study.tell(trial, state=TrialState.FAIL)
                else:
                    break
            else:
                key = draw_unasked(self._rng, self.n_choices, [self._asked, set(out)])
                self._study.enqueue_trial({self._param(i): key[i] for i in self._active})
                trial = self._study.ask()
                got = self._genome_of(trial)
                if got != key:
                    raise RuntimeError(f"bayes: enqueued genome {list(key)} came back as {list(got)}")
            self._trials[key] = trial
            out.append(key)
        return out

    def _tell_trial(self, trial: Trial, objectives: list[float], violations: list[float], failed: bool) -> None:
        if failed:  # Optuna's state for a failed evaluation: no values, never on best_trials, not modelled
            self._study.tell(trial, state=TrialState.FAIL)
            return
        for j, v in enumerate(violations):
            trial.set_constraint(f"c{j}", float(v))
        self._study.tell(trial, values=[float(v) for v in objectives])

    def _tell(self, genomes: np.ndarray, objectives: np.ndarray, violations: np.ndarray, failed: np.ndarray) -> None:
        for x, f, g, bad in zip(genomes, objectives, violations, failed, strict=True):
            key = tuple(int(v) for v in x)
            trial = self._trials.pop(key)
            self._results[key] = (f.tolist(), g.tolist(), bool(bad))
            self._tell_trial(trial, *self._results[key])

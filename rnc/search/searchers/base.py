"""The ask/tell interface shared by every searcher (``nsga2``, ``bayes``, ``random``).

Conventions (the same for all searchers):

- A *genome* is a vector of integer choice indices, gene ``i`` taking a value in ``0 .. n_choices[i] - 1``
  (see :class:`rnc.search.spaces.base.SearchSpace`). Searchers hand out ``np.ndarray`` of ``int64``.
- ``tell`` takes objectives as an ``(n, m)`` array to **minimize** (the caller negates maximized metrics such as
  accuracy) and constraint violations as an ``(n, k)`` array where a value ``<= 0`` means satisfied and a
  positive value is the amount of violation (the pymoo and Optuna convention).
- Results are told **in ask order**: the genomes passed to ``tell`` must be the oldest asked-but-not-yet-told
  genomes, in the order they were asked (a prefix of the outstanding ones). Telling in completion order would
  make the search depend on timing; this rule makes one seed give one answer.
- Unmeasured objectives: a caller that skips an evaluation (for example the accuracy of a candidate that does
  not fit the crossbar budget) should pass a worst-case value (accuracy 0) together with a positive
  violation. As a safety net, ``NaN`` and ``+inf`` objectives are accepted and replaced by the worst (largest)
  finite value told so far in that objective, this batch included (``0.0`` when none has been seen);
  ``-inf`` (better than anything) is rejected. Violations must be finite.
- Failed evaluations: a row with a non-finite objective is a *failed* candidate and is infeasible in every
  searcher, whatever its told violations: its violations are raised to at least ``1.0``, NSGA-II sees one more
  constraint (``evaluated``, violated by failed rows; pymoo ranks feasible before infeasible), the Bayesian
  searcher tells Optuna the trial FAILED (Optuna's state for failed evaluations, never on ``best_trials``). So
  a failure filled with ``0.0`` can never dominate a measured candidate. :attr:`Searcher.told_failed` lists them.
- Duplicates: a searcher never asks a genome it has asked before, where its library allows; when the space
  is exhausted it raises :class:`SearchSpaceExhaustedError`.
- State: :meth:`Searcher.state_dict` records the configuration and the full ask/tell log (plain lists and
  numbers, JSON friendly). :meth:`Searcher.load_state_dict` rebuilds the library state by replaying that log
  through a fresh searcher with the same seed, and checks every replayed ask against the log, so a restored
  searcher asks exactly the genomes an uninterrupted one would have asked.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rnc.errors import UserError, check_names

STATE_FORMAT = "rnc.searcher/1"


class SearcherError(UserError, ValueError):
    """Bad input to a searcher: the message says what was wrong and what to do."""


class SearchSpaceExhaustedError(RuntimeError):
    """Every genome of the space has been asked (or the library cannot find an unasked one)."""


class StateMismatchError(RuntimeError):
    """A state dict that does not belong to this searcher, or whose replay diverged from its log."""


GenomeKey = tuple[int, ...]


def genome_key(genome: Sequence[int] | np.ndarray) -> GenomeKey:
    """The hashable form of a genome (a tuple of ints)."""
    return tuple(int(v) for v in np.asarray(genome).reshape(-1))


class Searcher(ABC):
    """Ask/tell multi-objective searcher over integer genomes.

    Subclasses implement :meth:`_ask` and :meth:`_tell`; this base class validates inputs, enforces the
    ask-order rule, cleans objectives, tracks what was asked and told, and provides exact resume.
    """

    name: ClassVar[str] = ""
    #: Option name -> default value; ``make_searcher`` rejects any other option.
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        n_choices: Sequence[int],
        n_objectives: int,
        *,
        seed: int,
        n_constraints: int = 0,
        **options: Any,
    ) -> None:
        self.n_choices = _check_n_choices(n_choices)
        if not isinstance(n_objectives, int | np.integer) or n_objectives < 1:
            raise SearcherError(f"n_objectives must be a positive int, got {n_objectives!r}")
        if not isinstance(n_constraints, int | np.integer) or n_constraints < 0:
            raise SearcherError(f"n_constraints must be a non-negative int, got {n_constraints!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise SearcherError(f"seed must be a non-negative int, got {seed!r}")
        check_names("option", sorted(set(options) - set(self.OPTIONS)), sorted(self.OPTIONS),
                    where=f"searcher {self.name!r}", error=SearcherError)
        self.n_objectives = int(n_objectives)
        self.n_constraints = int(n_constraints)
        self.seed = int(seed)
        self.options: dict[str, Any] = {**self.OPTIONS, **options}
        self.cardinality = math.prod(self.n_choices)
        self._reset_log()

    # -- bookkeeping ----------------------------------------------------------------------------------
    def _reset_log(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._outstanding: deque[GenomeKey] = deque()
        self._asked: set[GenomeKey] = set()
        self._told_x: list[GenomeKey] = []
        self._told_f: list[list[float]] = []
        self._told_g: list[list[float]] = []
        self._told_failed: list[bool] = []
        self._worst = np.full(self.n_objectives, -np.inf)

    @property
    def config(self) -> dict[str, Any]:
        """The arguments of :func:`rnc.search.searchers.make_searcher` that rebuild this searcher."""
        return {
            "name": self.name,
            "n_choices": list(self.n_choices),
            "n_objectives": self.n_objectives,
            "n_constraints": self.n_constraints,
            "seed": self.seed,
            "options": dict(self.options),
        }

    @property
    def n_asked(self) -> int:
        return len(self._asked)

    @property
    def n_told(self) -> int:
        return len(self._told_x)

    @property
    def n_outstanding(self) -> int:
        """Genomes asked but not told yet."""
        return len(self._outstanding)

    @property
    def told_failed(self) -> np.ndarray:
        """``(n_told,)`` booleans, in tell order: which told rows had a non-finite objective (failed, infeasible)."""
        return np.array(self._told_failed, dtype=bool)

    def is_asked(self, genome: Sequence[int] | np.ndarray) -> bool:
        return genome_key(genome) in self._asked

    def history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything told so far, in tell order: genomes ``(n, d)``, objectives ``(n, m)`` (cleaned, minimized)
        and violations ``(n, k)``."""
        d, m, k = len(self.n_choices), self.n_objectives, self.n_constraints
        x = np.array(self._told_x, dtype=np.int64).reshape(-1, d)
        f = np.array(self._told_f, dtype=float).reshape(-1, m)
        g = np.array(self._told_g, dtype=float).reshape(-1, k) if k else np.zeros((len(self._told_g), 0))
        return x, f, g

    # -- public API -----------------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[np.ndarray]:
        """``n`` new genomes (never asked before), each an ``int64`` vector of choice indices."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise SearcherError(f"ask(n): n must be a positive int, got {n!r}")
        if self.n_asked + int(n) > self.cardinality:
            raise SearchSpaceExhaustedError(
                f"searcher {self.name!r}: cannot ask {n} more genome(s); the space has {self.cardinality} genomes "
                f"and {self.n_asked} were already asked"
            )
        genomes = self._ask(int(n))
        keys = [self._accept(g) for g in genomes]
        self._events.append({"op": "ask", "genomes": [list(k) for k in keys]})
        return [np.array(k, dtype=np.int64) for k in keys]

    def tell(
        self,
        genomes: Sequence[Sequence[int] | np.ndarray] | np.ndarray,
        objectives: Sequence[Sequence[float]] | np.ndarray,
        constraint_violations: Sequence[Sequence[float]] | np.ndarray | None = None,
    ) -> None:
        """Report results for the oldest outstanding genomes, in ask order.

        ``objectives`` is ``(n, m)`` to minimize; ``constraint_violations`` is ``(n, k)`` (``<= 0`` satisfied) and
        may be omitted when the searcher has no constraints.
        """
        keys = [genome_key(g) for g in genomes]
        n = len(keys)
        if n == 0:
            return
        f = self._check_objectives(objectives, n)
        g = self._check_violations(constraint_violations, n)
        expected = list(self._outstanding)[:n]
        if keys != expected:
            for i, (got, want) in enumerate(zip(keys, expected + [None] * n, strict=False)):
                if got != want:
                    raise SearcherError(
                        f"searcher {self.name!r}: results must be told in ask order; position {i} of this tell is "
                        f"genome {list(got)} but the next outstanding genome is "
                        f"{list(want) if want is not None else 'none (nothing left to tell)'}"
                    )
        failed = ~np.all(np.isfinite(f), axis=1)
        f = self._clean_objectives(f)
        if failed.any() and g.shape[1]:
            g = np.where(failed[:, None], np.maximum(g, 1.0), g)
        self._tell(np.array(keys, dtype=np.int64).reshape(n, -1), f, g, failed)
        for _ in range(n):
            self._outstanding.popleft()
        self._told_x.extend(keys)
        self._told_f.extend(f.tolist())
        self._told_g.extend(g.tolist())
        self._told_failed.extend(bool(x) for x in failed)
        event: dict[str, Any] = {"op": "tell", "objectives": f.tolist(), "violations": g.tolist()}
        if failed.any():
            event["failed"] = [bool(x) for x in failed]
        self._events.append(event)

    def state_dict(self) -> dict[str, Any]:
        """Configuration plus the full ask/tell log: plain lists and numbers (JSON and pickle friendly)."""
        return {
            "format": STATE_FORMAT,
            "config": self.config,
            "events": [{key: _plain(value) for key, value in e.items()} for e in self._events],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`: replay the log through this (same-configuration) searcher."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StateMismatchError(
                f"not a searcher state dict (expected format {STATE_FORMAT!r}, got "
                f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r})"
            )
        theirs = _normalize_config(state["config"])
        ours = _normalize_config(self.config)
        if theirs != ours:
            diff = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
            raise StateMismatchError(
                f"state dict was saved by a differently configured searcher; (this, saved) differ in {diff}. "
                "Rebuild the searcher with searcher_from_state(state) or make_searcher(**state['config'])"
            )
        self._restart()
        for i, event in enumerate(state["events"]):
            if event["op"] == "ask":
                logged = [genome_key(g) for g in event["genomes"]]
                replayed = [genome_key(g) for g in self.ask(len(logged))]
                if replayed != logged:
                    raise StateMismatchError(
                        f"searcher {self.name!r}: replay diverged at event {i}: asked {replayed[:3]}... but the log "
                        f"says {logged[:3]}...; the state was saved with a different library version or options"
                    )
            elif event["op"] == "tell":
                keys = list(self._outstanding)[: len(event["objectives"])]
                violations = event["violations"] if self.n_constraints else None
                objectives = np.array(event["objectives"], dtype=float).reshape(len(keys), -1)
                if "failed" in event:  # replay the failure itself, so the fill and the infeasibility are redone
                    objectives[np.array(event["failed"], dtype=bool)] = np.nan
                self.tell([list(k) for k in keys], objectives, violations)
            else:
                raise StateMismatchError(f"unknown event {event['op']!r} at position {i} of the state log")

    # -- subclass hooks -------------------------------------------------------------------------------
    @abstractmethod
    def _ask(self, n: int) -> list[Sequence[int] | np.ndarray]:
        """Exactly ``n`` genomes that were never asked before (``self._asked``) and are distinct."""

    @abstractmethod
    def _tell(self, genomes: np.ndarray, objectives: np.ndarray, violations: np.ndarray, failed: np.ndarray) -> None:
        """Feed finite, cleaned results (shapes ``(n, d)``, ``(n, m)``, ``(n, k)``) to the library; ``failed``
        ``(n,)`` marks rows whose evaluation failed, which the library must treat as infeasible."""

    @abstractmethod
    def _restart(self) -> None:
        """Forget everything: rebuild the library objects from ``self.seed`` and call ``_reset_log``."""

    # -- helpers --------------------------------------------------------------------------------------
    def _accept(self, genome: Sequence[int] | np.ndarray) -> GenomeKey:
        key = genome_key(genome)
        if len(key) != len(self.n_choices) or any(not 0 <= v < c for v, c in zip(key, self.n_choices, strict=False)):
            raise RuntimeError(f"searcher {self.name!r} produced an out-of-range genome {list(key)}")
        if key in self._asked:
            raise RuntimeError(f"searcher {self.name!r} produced genome {list(key)} twice")
        self._asked.add(key)
        self._outstanding.append(key)
        return key

    def _check_objectives(self, objectives: Any, n: int) -> np.ndarray:
        f = np.asarray(objectives, dtype=float)
        if f.ndim == 1 and self.n_objectives == 1:
            f = f.reshape(-1, 1)
        if f.shape != (n, self.n_objectives):
            raise SearcherError(
                f"searcher {self.name!r}: objectives must have shape (n_genomes, n_objectives) = "
                f"({n}, {self.n_objectives}), got {f.shape}"
            )
        if np.any(np.isneginf(f)):
            rows = sorted({int(r) for r in np.argwhere(np.isneginf(f))[:, 0]})
            raise SearcherError(
                f"searcher {self.name!r}: objectives of rows {rows} are -inf (better than anything); pass a finite "
                "value, or NaN for an unmeasured objective"
            )
        return f

    def _check_violations(self, violations: Any, n: int) -> np.ndarray:
        if violations is None:
            if self.n_constraints:
                raise SearcherError(
                    f"searcher {self.name!r} was built with n_constraints={self.n_constraints}: pass "
                    f"constraint_violations of shape ({n}, {self.n_constraints})"
                )
            return np.zeros((n, 0))
        g = np.asarray(violations, dtype=float)
        if g.ndim == 1 and self.n_constraints == 1:
            g = g.reshape(-1, 1)
        if g.shape != (n, self.n_constraints):
            raise SearcherError(
                f"searcher {self.name!r}: constraint_violations must have shape (n_genomes, n_constraints) = "
                f"({n}, {self.n_constraints}), got {g.shape}; build the searcher with n_constraints=k to use k"
            )
        if not np.all(np.isfinite(g)):
            raise SearcherError(
                f"searcher {self.name!r}: constraint violations must be finite (<= 0 satisfied, > 0 violated by "
                "that amount); replace NaN/inf by a finite positive amount such as 1.0"
            )
        return g

    def _clean_objectives(self, f: np.ndarray) -> np.ndarray:
        finite = np.isfinite(f)
        with np.errstate(invalid="ignore"):
            batch_worst = np.where(finite, f, -np.inf).max(axis=0)
        self._worst = np.maximum(self._worst, batch_worst)
        if finite.all():
            return f
        fill = np.where(np.isfinite(self._worst), self._worst, 0.0)
        return np.where(finite, f, fill[None, :])


#: Consecutive redraws of already-asked genomes before falling back to enumerating the unasked ones.
MAX_REDRAWS = 1000
#: Largest space whose unasked genomes are enumerated when redrawing keeps failing.
MAX_ENUMERATED = 2_000_000


def draw_unasked(
    rng: np.random.Generator, n_choices: Sequence[int], excluded: set[GenomeKey] | Sequence[set[GenomeKey]]
) -> GenomeKey:
    """A genome drawn uniformly at random among those not in ``excluded`` (one set or several).

    Rejection sampling first; after :data:`MAX_REDRAWS` misses in a row, the unasked genomes of a space of at most
    :data:`MAX_ENUMERATED` genomes are enumerated and one is drawn from them."""
    sets = [excluded] if isinstance(excluded, set) else list(excluded)
    high = np.array(n_choices, dtype=np.int64)
    for _ in range(MAX_REDRAWS):
        key = tuple(int(v) for v in rng.integers(0, high))
        if not any(key in s for s in sets):
            return key
    cardinality = math.prod(int(c) for c in n_choices)
    n_excluded = len(set().union(*sets))
    if cardinality > MAX_ENUMERATED:
        raise SearchSpaceExhaustedError(
            f"drew {MAX_REDRAWS} already-asked genomes in a row ({n_excluded} asked of {cardinality}); "
            "the space is nearly exhausted"
        )
    unasked = [
        idx
        for idx in range(cardinality)
        if not any(tuple(int(v) for v in np.unravel_index(idx, tuple(n_choices))) in s for s in sets)
    ]
    if not unasked:
        raise SearchSpaceExhaustedError(f"all {cardinality} genomes of the space were asked")
    idx = unasked[int(rng.integers(len(unasked)))]
    return tuple(int(v) for v in np.unravel_index(idx, tuple(n_choices)))


def _plain(value: Any) -> Any:
    """A copy of an event value: lists of rows copied row by row, flat lists and scalars as they are."""
    if isinstance(value, list):
        return [list(row) if isinstance(row, list) else row for row in value]
    return value


def _check_n_choices(n_choices: Sequence[int]) -> list[int]:
    try:
        values = [int(c) for c in n_choices]
        ok = len(values) > 0 and all(c >= 1 and c == float(o) for c, o in zip(values, n_choices, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SearcherError(
            f"n_choices must be a non-empty list of positive ints (choices per gene), got {n_choices!r}; "
            "use SearchSpace.n_choices"
        )
    return values


def _normalize_config(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    out["n_choices"] = [int(c) for c in out.get("n_choices", [])]
    out["options"] = dict(out.get("options", {}))
    return out

"""Multi-objective searchers over integer genomes, one ask/tell interface (see ``base.py`` for conventions).

    >>> s = make_searcher("nsga2", [3, 3, 3], 2, seed=0)
    >>> genomes = s.ask(4)
    >>> s.tell(genomes, [[float(g.sum()), float(-g[0])] for g in genomes])

Names: ``nsga2`` (pymoo NSGA-II), ``bayes`` (Optuna TPE or GP sampler), ``random`` (uniform baseline).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rnc.search.searchers.base import (
    STATE_FORMAT,
    Searcher,
    SearcherError,
    SearchSpaceExhaustedError,
    StateMismatchError,
    genome_key,
)

if TYPE_CHECKING:
    from rnc.search.searchers.bayes import BayesSearcher
    from rnc.search.searchers.nsga2 import NSGA2Searcher
    from rnc.search.searchers.random_search import RandomSearcher

_CLASSES = {
    "nsga2": ("rnc.search.searchers.nsga2", "NSGA2Searcher"),
    "bayes": ("rnc.search.searchers.bayes", "BayesSearcher"),
    "random": ("rnc.search.searchers.random_search", "RandomSearcher"),
}


class _Registry(Mapping[str, "type[Searcher]"]):
    """Searcher name -> class, each module imported on first use (pymoo and Optuna take seconds to import, and a
    process running one searcher needs one of them)."""

    def __getitem__(self, name: str) -> type[Searcher]:
        module, cls = _CLASSES[name]
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


SEARCHERS: Mapping[str, type[Searcher]] = _Registry()


def __getattr__(name: str) -> Any:
    for key, (_, cls) in _CLASSES.items():
        if cls == name:
            return SEARCHERS[key]
    raise AttributeError(f"module 'rnc.search.searchers' has no attribute {name!r}")


def make_searcher(
    name: str,
    n_choices: Sequence[int],
    n_objectives: int,
    *,
    seed: int,
    n_constraints: int = 0,
    **options: Any,
) -> Searcher:
    """Build the searcher ``name`` over genomes with ``n_choices[i]`` choices for gene ``i``.

    ``n_objectives`` objectives are minimized; ``n_constraints`` violations (``<= 0`` satisfied) are told with
    each result. ``options`` are searcher specific (``SEARCHERS[name].OPTIONS`` lists them with defaults).
    """
    from rnc.errors import check_names

    check_names("searcher", [name], sorted(SEARCHERS), where="searchers", error=SearcherError)
    try:
        cls = SEARCHERS[name]
    except (KeyError, TypeError):
        raise SearcherError(f"unknown searcher {name!r}; valid names are {sorted(SEARCHERS)}") from None
    return cls(n_choices, n_objectives, seed=seed, n_constraints=n_constraints, **options)


def searcher_from_state(state: dict[str, Any]) -> Searcher:
    """Rebuild a searcher from :meth:`Searcher.state_dict` (same configuration, replayed log)."""
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or "config" not in state:
        raise StateMismatchError(f"not a searcher state dict (expected format {STATE_FORMAT!r})")
    config = dict(state["config"])
    options = dict(config.pop("options", {}))
    searcher = make_searcher(
        config["name"],
        config["n_choices"],
        config["n_objectives"],
        seed=config["seed"],
        n_constraints=config.get("n_constraints", 0),
        **options,
    )
    searcher.load_state_dict(state)
    return searcher


__all__ = [
    "SEARCHERS",
    "BayesSearcher",
    "NSGA2Searcher",
    "RandomSearcher",
    "SearchSpaceExhaustedError",
    "Searcher",
    "SearcherError",
    "StateMismatchError",
    "genome_key",
    "make_searcher",
    "searcher_from_state",
]

"""Ask/tell contract of the searchers: validation, ask order, duplicates, seeds, constraints, exact resume."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from rnc.search.searchers import (
    SEARCHERS,
    SearcherError,
    SearchSpaceExhaustedError,
    StateMismatchError,
    make_searcher,
    searcher_from_state,
)

NAMES = sorted(SEARCHERS)
N_CHOICES = [4, 3, 5, 2, 4, 3]


def objectives(genomes: list[np.ndarray]) -> np.ndarray:
    """Two conflicting objectives on choice indices (both minimized)."""
    g = np.array(genomes, dtype=float)
    return np.stack([g[:, 0] + 0.1 * g[:, 1:].sum(axis=1), (3 - g[:, 0]) + 0.2 * g[:, 2:].sum(axis=1)], axis=1)


def violations(genomes: list[np.ndarray]) -> np.ndarray:
    g = np.array(genomes, dtype=float)
    return (g[:, 1:2] + g[:, 3:4]) - 2.0  # feasible iff gene1 + gene3 <= 2


def drive(searcher, batches: list[int]) -> list[list[tuple[int, ...]]]:
    asked = []
    for n in batches:
        genomes = searcher.ask(n)
        kw = {"constraint_violations": violations(genomes)} if searcher.n_constraints else {}
        searcher.tell(genomes, objectives(genomes), **kw)
        asked.append([tuple(int(v) for v in g) for g in genomes])
    return asked


# -- construction and errors -------------------------------------------------------------------------


def test_unknown_searcher_lists_valid_names():
    with pytest.raises(SearcherError, match=r"'nsga3'; did you mean 'nsga2'\?; valid names: bayes, nsga2, random"):
        make_searcher("nsga3", N_CHOICES, 2, seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_lists_valid_options(name):
    with pytest.raises(SearcherError, match=r"unknown option 'popsize'.*valid names: "):
        make_searcher(name, N_CHOICES, 2, seed=0, popsize=10)
    if name == "nsga2":  # the example: a close match is named
        with pytest.raises(SearcherError, match=r"unknown option 'pop_sise'; did you mean 'pop_size'\?"):
            make_searcher(name, N_CHOICES, 2, seed=0, pop_sise=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_choices": []}, "n_choices must be a non-empty list"),
        ({"n_choices": [3, 0]}, "n_choices must be a non-empty list"),
        ({"n_choices": [3, 2.5]}, "n_choices must be a non-empty list"),
        ({"n_objectives": 0}, "n_objectives must be a positive int"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"seed": None}, "seed must be a non-negative int"),
        ({"n_constraints": -2}, "n_constraints must be a non-negative int"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"n_choices": N_CHOICES, "n_objectives": 2, "seed": 0, **kwargs}
    with pytest.raises(SearcherError, match=message):
        make_searcher("random", args.pop("n_choices"), args.pop("n_objectives"), **args)


def test_bad_option_values():
    with pytest.raises(SearcherError, match="pop_size must be an int >= 2"):
        make_searcher("nsga2", N_CHOICES, 2, seed=0, pop_size=1)
    with pytest.raises(SearcherError, match=r"sampler must be one of \['tpe', 'gp'\]"):
        make_searcher("bayes", N_CHOICES, 2, seed=0, sampler="botorch")


@pytest.mark.parametrize("name", NAMES)
def test_tell_validates_shapes_and_order(name):
    s = make_searcher(name, N_CHOICES, 2, seed=0, n_constraints=1)
    genomes = s.ask(3)
    with pytest.raises(SearcherError, match=r"objectives must have shape .* \(3, 2\), got \(3, 3\)"):
        s.tell(genomes, np.zeros((3, 3)), np.zeros((3, 1)))
    with pytest.raises(SearcherError, match="pass constraint_violations of shape"):
        s.tell(genomes, np.zeros((3, 2)))
    with pytest.raises(SearcherError, match="must be finite"):
        s.tell(genomes, np.zeros((3, 2)), np.full((3, 1), np.nan))
    with pytest.raises(SearcherError, match="-inf"):
        s.tell(genomes, np.full((3, 2), -np.inf), np.zeros((3, 1)))
    with pytest.raises(SearcherError, match="told in ask order; position 0"):
        s.tell(genomes[::-1], np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(SearcherError, match="nothing left to tell"):
        s.tell([*genomes, genomes[0]], np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(SearcherError, match="n must be a positive int"):
        s.ask(0)
    # a prefix in ask order is fine, then the rest
    s.tell(genomes[:1], np.zeros((1, 2)), np.zeros((1, 1)))
    s.tell(genomes[1:], np.ones((2, 2)), np.ones((2, 1)))
    assert s.n_told == 3 and s.n_outstanding == 0


# -- behaviour ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_genomes_in_range_and_never_repeated(name):
    s = (
        make_searcher(name, N_CHOICES, 2, seed=3, pop_size=8)
        if name == "nsga2"
        else make_searcher(name, N_CHOICES, 2, seed=3)
    )
    asked = [g for batch in drive(s, [8, 5, 11, 8, 8]) for g in batch]
    assert len(asked) == len(set(asked)) == 40
    arr = np.array(asked)
    assert arr.dtype.kind == "i"
    assert (arr >= 0).all() and (arr < np.array(N_CHOICES)).all()


@pytest.mark.parametrize("name", NAMES)
def test_small_space_is_exhausted_without_repeats(name):
    n_choices = [3, 2, 2]  # 12 genomes
    opts = {"pop_size": 4} if name == "nsga2" else {}
    s = make_searcher(name, n_choices, 2, seed=1, **opts)
    asked = [g for batch in drive(s, [4, 4, 3, 1]) for g in batch]
    assert len(set(asked)) == 12
    with pytest.raises(SearchSpaceExhaustedError, match="12 genomes"):
        s.ask(1)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_answer_other_seed_differs(name):
    runs = [drive(make_searcher(name, N_CHOICES, 2, seed=seed), [10, 10, 10]) for seed in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", NAMES)
def test_asking_more_before_telling(name):
    """Several asks before any tell (a caller filling a pool of workers) still gives distinct genomes."""
    s = make_searcher(name, N_CHOICES, 2, seed=0)
    first, second = s.ask(15), s.ask(30)
    keys = {tuple(g) for g in first + second}
    assert len(keys) == 45
    s.tell(first + second, objectives(first + second))
    assert len(s.ask(5)) == 5


@pytest.mark.parametrize("name", NAMES)
def test_unmeasured_objectives_get_worst_seen_values(name):
    s = make_searcher(name, N_CHOICES, 2, seed=0, n_constraints=1)
    genomes = s.ask(4)
    f = np.array([[1.0, 5.0], [3.0, 2.0], [np.nan, np.inf], [2.0, np.nan]])
    s.tell(genomes, f, [[0.0], [0.0], [1.0], [0.5]])
    _, told_f, _ = s.history()
    np.testing.assert_array_equal(told_f, [[1.0, 5.0], [3.0, 2.0], [3.0, 5.0], [2.0, 5.0]])
    genomes = s.ask(4)  # the searcher keeps working on the cleaned values
    s.tell(genomes, objectives(genomes), violations(genomes))
    assert s.n_told == 8


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pickled", [False, True])
def test_state_dict_round_trip_resumes_identically(name, pickled):
    opts = {"pop_size": 6} if name == "nsga2" else {"n_startup_trials": 5} if name == "bayes" else {}
    a = make_searcher(name, N_CHOICES, 2, seed=11, n_constraints=1, **opts)
    drive(a, [6, 4])
    outstanding = a.ask(5)  # interrupted mid-batch: 5 asked, 2 told
    a.tell(outstanding[:2], objectives(outstanding[:2]), violations(outstanding[:2]))
    state = a.state_dict()
    state = pickle.loads(pickle.dumps(state)) if pickled else json.loads(json.dumps(state))
    b = searcher_from_state(state)
    assert b.n_told == a.n_told == 12 and b.n_outstanding == a.n_outstanding == 3
    rest = outstanding[2:]
    for s in (a, b):
        s.tell(rest, objectives(rest), violations(rest))
    assert drive(a, [6, 7]) == drive(b, [6, 7])


def test_load_state_dict_rejects_other_configuration():
    a = make_searcher("nsga2", N_CHOICES, 2, seed=0)
    drive(a, [5])
    with pytest.raises(StateMismatchError, match="differently configured"):
        make_searcher("nsga2", N_CHOICES, 2, seed=1).load_state_dict(a.state_dict())
    with pytest.raises(StateMismatchError, match="not a searcher state dict"):
        make_searcher("nsga2", N_CHOICES, 2, seed=0).load_state_dict({"events": []})


def test_nsga2_tells_pymoo_whole_generations():
    s = make_searcher("nsga2", N_CHOICES, 2, seed=0, pop_size=6)
    drive(s, [6])
    assert s.generation == 1 and len(s.algorithm.pop) == 6
    drive(s, [4, 2])  # one generation of offspring in two asks
    assert s.generation == 2
    drive(s, [9])  # more than one generation in one ask: topped up, told as one
    assert s.generation == 3 and len(s.algorithm.pop) == 6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nsga2", "bayes"])
def test_constraints_steer_the_search_to_feasible_genomes(name):
    """Feasible iff genes 1, 3 and 5 are at their smallest choice (1 genome in 18); the objectives reward the
    opposite, so only the told violations can pull the search towards feasible genomes."""
    n_choices = [6, 3, 6, 2, 6, 3]

    def viol(genomes):
        g = np.array(genomes, dtype=float)
        return np.stack([g[:, 1], g[:, 3], g[:, 5]], axis=1)

    def objs(genomes):
        return objectives(genomes) - viol(genomes).sum(axis=1, keepdims=True)

    share = {}
    for n_constraints in (3, 0):
        shares = []
        for seed in range(2):
            s = make_searcher(name, n_choices, 2, seed=seed, n_constraints=n_constraints)
            for _ in range(6):
                genomes = s.ask(15)
                s.tell(genomes, objs(genomes), viol(genomes) if n_constraints else None)
            last = [g for g in s.history()[0][-30:]]
            shares.append(np.mean(np.all(viol(last) <= 0, axis=1)))
        share[n_constraints] = float(np.mean(shares))
    assert share[3] >= 0.25, share
    assert share[0] <= 0.1, share


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_bayes_gp_sampler_with_constraints(one_torch_thread):
    """Optuna's GPSampler path: the GP model (after 4 random trials) proposes new, valid genomes."""
    s = make_searcher("bayes", N_CHOICES, 2, seed=0, n_constraints=1, sampler="gp", n_startup_trials=4)
    asked = [g for batch in drive(s, [4, 1]) for g in batch]
    assert len(set(asked)) == 5
    assert len(s.study.trials) >= 5
    assert all(t.constraints for t in s.study.trials if t.state.is_finished() and t.values is not None)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_constraints", [0, 1])
def test_failed_evaluation_is_infeasible_and_never_on_a_front(name, n_constraints):
    """The issue's example: a failed evaluation (NaN objectives) told first is filled with [0, 0], which would
    dominate every measured candidate; it must be infeasible instead, in the searcher's library too."""
    opts = {"pop_size": 4} if name == "nsga2" else {}
    s = make_searcher(name, N_CHOICES, 2, seed=0, n_constraints=n_constraints, **opts)
    genomes = s.ask(4)
    g = [[0.0]] if n_constraints else None
    s.tell(genomes[:1], [[np.nan, np.nan]], g)  # failed; nothing finite seen yet
    measured = [[1.0, 5.0], [3.0, 2.0], [2.0, 4.0]]
    s.tell(genomes[1:], measured, [[0.0]] * 3 if n_constraints else None)
    assert s.told_failed.tolist() == [True, False, False, False]
    _, told_f, told_g = s.history()
    np.testing.assert_array_equal(told_f[0], [0.0, 0.0])  # the fill: better than everything...
    if n_constraints:
        assert told_g[0, 0] >= 1.0  # ...so it must be infeasible
    failed_key = tuple(int(v) for v in genomes[0])
    if name == "nsga2":
        front = {tuple(int(v) for v in np.rint(x)) for x in s.algorithm.opt.get("X")}
        assert failed_key not in front and len(front) == 3
        assert s.algorithm.opt.get("CV").max() <= 0
    elif name == "bayes":
        best = {s._genome_of(t) for t in s.study.best_trials}
        assert failed_key not in best and len(best) == 3
    # and by the project's own front computation over what the searcher was told
    from rnc.search.pareto import non_dominated

    violations = np.column_stack([told_g, s.told_failed.astype(float)])
    assert not non_dominated(told_f, violations)[0]
    # resume replays the failure: the restored searcher agrees
    restored = make_searcher(name, N_CHOICES, 2, seed=0, n_constraints=n_constraints, **opts)
    restored.load_state_dict(s.state_dict())
    assert restored.told_failed.tolist() == s.told_failed.tolist()

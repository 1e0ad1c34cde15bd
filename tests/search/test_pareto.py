"""Pareto tools against independent brute-force definitions and hand-computed hypervolumes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rnc.search.pareto import (
    feasible_mask,
    hypervolume,
    hypervolume_curve,
    minimization_matrix,
    non_dominated,
    normalize,
    pareto_ranks,
    reference_point,
)


def brute_non_dominated(F: np.ndarray) -> np.ndarray:
    n = len(F)
    return np.array(
        [not any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(n) if j != i) for i in range(n)],
        dtype=bool,
    )


def brute_ranks(F: np.ndarray) -> np.ndarray:
    ranks = np.full(len(F), -1)
    left = np.arange(len(F))
    rank = 0
    while len(left):
        front = brute_non_dominated(F[left])
        ranks[left[front]] = rank
        left = left[~front]
        rank += 1
    return ranks


small_int_matrices = arrays(
    np.float64,
    st.tuples(st.integers(1, 25), st.integers(2, 3)),
    elements=st.integers(0, 5).map(float),
)


@settings(max_examples=60, deadline=None)
@given(small_int_matrices)
def test_non_dominated_matches_brute_force(F):
    np.testing.assert_array_equal(non_dominated(F), brute_non_dominated(F))


@settings(max_examples=40, deadline=None)
@given(small_int_matrices)
def test_pareto_ranks_match_repeated_peeling(F):
    np.testing.assert_array_equal(pareto_ranks(F), brute_ranks(F))


def test_duplicates_are_all_on_the_front():
    F = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])
    assert non_dominated(F).tolist() == [True, True, True, False]


def test_infeasible_and_unmeasured_rows_are_never_on_the_front():
    F = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0], [np.nan, 0.0], [3.0, 3.0]])
    G = np.array([[0.5], [0.0], [-1.0], [0.0], [0.0]])
    assert non_dominated(F, G).tolist() == [False, True, True, False, False]
    assert pareto_ranks(F, G).tolist() == [-1, 0, 0, -1, 1]
    assert feasible_mask(F, G).tolist() == [False, True, True, False, True]
    assert not non_dominated(F, np.ones((5, 1))).any()
    with pytest.raises(ValueError, match="violations has 2 rows but F has 5"):
        non_dominated(F, np.ones((2, 1)))


def test_hypervolume_of_known_fronts():
    # union of [1,4]x[2,4] and [2,4]x[1,4]: 3*2 + 2*1 = 8
    assert hypervolume([[1, 2], [2, 1], [3, 3]], [4, 4]) == pytest.approx(8.0)
    # 3-D: two boxes [0,2]^3 (8) and [1,2]x[1,2]x[-1,2] adds 1*1*1 below z=0 -> 9
    assert hypervolume([[0, 0, 0], [1, 1, -1]], [2, 2, 2]) == pytest.approx(9.0)
    # points outside the reference box, infeasible points and empty sets contribute nothing
    assert hypervolume([[5, 0], [1, 1]], [2, 2]) == pytest.approx(1.0)
    assert hypervolume([[0, 0], [1, 1]], [2, 2], violations=[[1.0], [0.0]]) == pytest.approx(1.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0
    with pytest.raises(ValueError, match="reference point has 3 values but F has 2"):
        hypervolume([[0, 0]], [1, 1, 1])


@settings(max_examples=30, deadline=None)
@given(small_int_matrices)
def test_hypervolume_is_monotone_and_ignores_dominated_rows(F):
    ref = np.full(F.shape[1], 6.0)
    front = F[non_dominated(F)]
    assert hypervolume(F, ref) == pytest.approx(hypervolume(front, ref))
    assert hypervolume(F, ref) >= hypervolume(F[: max(1, len(F) // 2)], ref) - 1e-12


def test_hypervolume_curve_is_cumulative():
    rng = np.random.default_rng(0)
    F = rng.random((40, 2))
    G = rng.normal(size=(40, 1))
    ref = [1.1, 1.1]
    curve = hypervolume_curve(F, ref, G)
    assert np.all(np.diff(curve) >= -1e-12)
    for i in (0, 9, 25, 39):
        assert curve[i] == pytest.approx(hypervolume(F[: i + 1], ref, G[: i + 1]))


def test_reference_point_and_normalize():
    F = np.array([[0.0, 10.0], [2.0, 10.0], [1.0, 10.0]])
    ref = reference_point(F, margin=0.5)
    np.testing.assert_allclose(ref, [3.0, 15.0])  # range 2 -> +1; zero range -> 0.5 * |10|
    assert hypervolume(F, ref) > 0
    with pytest.raises(ValueError, match="no feasible row"):
        reference_point(F, violations=np.ones((3, 1)))
    np.testing.assert_allclose(normalize(F, [0.0, 10.0], [2.0, 10.0]), [[0, 0], [1, 0], [0.5, 0]])


def test_minimization_matrix_negates_maximized_metrics():
    records = [{"accuracy": 0.9, "latency_ns": 100.0}, {"accuracy": None, "latency_ns": 50.0}, {"latency_ns": 1.0}]
    F = minimization_matrix(records, [("accuracy", "max"), ("latency_ns", "min")])
    np.testing.assert_array_equal(F[:, 1], [100.0, 50.0, 1.0])
    assert F[0, 0] == -0.9 and np.isnan(F[1:, 0]).all()
    assert non_dominated(F).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="sense must be one of"):
        minimization_matrix(records, [("accuracy", "maximize")])

"""Typed records: canonical network identity in every space, the Candidate record's params and row, the metric
table read by config validation, and the frozen TrialPlan."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from rnc.platform.config import validate_config
from rnc.platform.metrics import METRIC_BY_OBJECTIVE, METRIC_NAMES, OBJECTIVE_NAMES, metric
from rnc.platform.records import Candidate, Genome
from rnc.platform.report import candidates_frame
from rnc.search.spaces import SPACES, get_space


def _candidate(space, genome: np.ndarray, index: int) -> Candidate:
    return Candidate(
        candidate_id=f"t/{index:05d}",
        trial="t",
        searcher="random",
        budget=64,
        index=index,
        generation=0,
        genome=Genome(genome),
        network_key=space.key(genome),
        label=space.label(genome),
        genes=space.active_genes(genome),
        hardware="hw",
        metrics={name: None for name in METRIC_NAMES},
    )


def _with_inactive_genes_changed(space, genome: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    other = genome.copy()
    inactive = np.flatnonzero(~space.active_mask(genome))
    for i in inactive:
        other[i] = rng.integers(space.n_choices[i])
    return other


@pytest.mark.parametrize("name", sorted(SPACES))
def test_genomes_differing_in_inactive_genes_are_one_network(name: str) -> None:
    space = get_space(name)
    rng = np.random.default_rng(7)
    changed = 0
    for _ in range(40):
        genome = space.sample(rng)
        other = _with_inactive_genes_changed(space, genome, rng)
        changed += int(not np.array_equal(genome, other))
        assert space.key(other) == space.key(genome)
        # independent check: the simulator workload built from either genome is the same network
        assert space.workload(other) == space.workload(genome)
        a, b = _candidate(space, genome, 0), _candidate(space, other, 1)
        assert a.to_params() == b.to_params()
        assert a.label == b.label
        rows = candidates_frame([a, b])
        assert rows.drop_duplicates(["budget", "network_key"]).shape[0] == 1
    if name != "nax":  # nax has no elastic depth: every gene is always active
        assert changed > 10


@pytest.mark.parametrize("name", sorted(SPACES))
def test_active_genes_change_the_key(name: str) -> None:
    space = get_space(name)
    rng = np.random.default_rng(3)
    genome = space.sample(rng)
    mask = space.active_mask(genome)
    for i in np.flatnonzero(mask)[:10]:
        other = genome.copy()
        other[i] = (other[i] + 1) % space.n_choices[i]
        if space.n_choices[i] > 1:
            assert space.key(other) != space.key(genome)


def test_mbv3_inactive_blocks_by_hand() -> None:
    """mbv3 stage 1 at depth 2 (index 0): genes of blocks 3 and 4 (positions 5..8) are inactive."""
    space = get_space("mbv3")
    genome = np.zeros(len(space.genes), dtype=np.int64)
    mask = space.active_mask(genome)
    assert mask[:5].all() and not mask[5:9].any() and mask[9]
    assert len(space.active_genes(genome)) == 4 * (1 + 2 * 2)  # 4 stages: depth gene + 2 blocks x (kernel, expand)


def test_candidate_row_and_json_round_trip() -> None:
    space = get_space("mbv3")
    genome = space.sample(np.random.default_rng(0))
    c = _candidate(space, genome, 3).with_updates(metrics={"latency_ns": 1500.0, "accuracy": 0.9}, feasible=False)
    assert Candidate.from_json(c.to_json()) == c
    row = c.to_row()
    assert row["latency_ns"] == 1500.0 and math.isnan(row["energy_uj"]) and row["feasible"] is False
    assert {k.removeprefix("gene.") for k in row if k.startswith("gene.")} == set(space.active_genes(genome))
    assert c.run_name().startswith("random b64 #003 d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.budget = 1  # type: ignore[misc]
    g = Genome(np.array([1, 2, 3]))
    assert g == (1, 2, 3) and str(g) == "1-2-3" and hash(g) == hash((1, 2, 3))


def test_metric_table_drives_config_objectives() -> None:
    assert set(OBJECTIVE_NAMES) == {
        "accuracy", "hw_accuracy", "latency", "throughput", "energy", "area", "edap", "utilization", "crossbars_used"
    }
    for name in OBJECTIVE_NAMES:
        cfg = validate_config(
            {"name": "t", "space": {"name": "mbv3"}, "searchers": [{"name": "nsga2"}],
             "objectives": [{"name": name}, {"name": "area" if name != "area" else "edap"}]},
            where="t",
        )
        assert cfg.objectives[0].metric == METRIC_BY_OBJECTIVE[name].name
        assert cfg.objectives[0].goal == METRIC_BY_OBJECTIVE[name].goal
    lat = metric("latency_ns")
    assert lat.axis_label == "latency (µs)" and lat.display(2500.0) == "2.5"
    assert metric("accuracy").display(0.8766) == "87.7"
    assert metric("edap").rounded(123456.0) == 123000.0
    with pytest.raises(KeyError, match="valid metrics"):
        metric("speed")

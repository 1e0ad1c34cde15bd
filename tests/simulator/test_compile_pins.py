"""The compiler's plans and PPA are pinned: every speed-up must leave them unchanged, bit for bit.

``data/compile_pins.json`` was written by ``data/make_compile_pins.py`` on the compiler as it stood before the
speed work of issue 13 (commit 7bf8d2e): squeezenet1_1, mobilenet_v3_small, mobilenet_v2 and mnasnet0_5 (3x64x64
input) at several budgets, with the default options, each duplication policy, each depthwise mapping, no stop
rule, other restarts and seed, 256x256 4-bit crossbars, ``isaac`` and heterogeneous crossbar sizes; and a
``compile_many`` mix. Each case compares the summary (floats exactly) and SHA-256 digests of the totals, the
per-layer table, the placements, the box table and the crossbar classes.

A change meant to alter plans (a new mapping rule, a different tie-break) regenerates the pins with the script and
says so in its commit; a speed-up never does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rnc.simulator import HardwareConfig, Workload, compile_many, compile_workload
from rnc.simulator.compiler import clear_compile_cache

DATA = json.loads((Path(__file__).parent / "data" / "compile_pins.json").read_text())
VARIANTS = {"rnc128": {}, "rnc256_4bit": {"crossbar_rows": 256, "crossbar_cols": 256, "cell_bits": 4},
            "hetero": {}}
WORKLOADS = {name: Workload.from_dict(d) for name, d in DATA["workloads"].items()}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _hardware(case: dict) -> HardwareConfig:
    extra = {}
    if "layer_crossbar_sizes" in case:
        extra["layer_crossbar_sizes"] = {k: tuple(v) for k, v in case["layer_crossbar_sizes"].items()}
    return HardwareConfig.preset("rnc").with_updates(crossbars=case["budget"], **VARIANTS[case["variant"]], **extra)


@pytest.mark.parametrize("network", sorted(DATA["workloads"]))
def test_plans_and_ppa_equal_the_pinned_ones(network: str) -> None:
    clear_compile_cache()
    w = WORKLOADS[network]
    cases = [c for c in DATA["cases"] if c["network"] == network]
    assert len(cases) > 10
    for case in cases:
        r = compile_workload(w, _hardware(case), case["strategy"], **case["options"])
        where = f"{network} {case['variant']} budget {case['budget']} {case['strategy']} {case['options']}"
        got = json.loads(json.dumps(r.summary()))
        assert got == case["summary"], where
        assert _digest(r._totals) == case["totals"], where
        assert _digest(r._layer_table) == case["layers"], where
        assert _digest(r._placements) == case["placements"], where
        assert _digest(r._boxes) == case["boxes"], where
        assert _digest(r._crossbar_class) == case["crossbar_class"], where


def test_compile_many_equals_the_pinned_summaries() -> None:
    clear_compile_cache()
    pairs = [(WORKLOADS[n], HardwareConfig.preset("rnc").with_updates(crossbars=b, **VARIANTS[v]))
             for n, v, b in DATA["many"]["pairs"]]
    got = json.loads(json.dumps(compile_many(pairs)))
    assert got == DATA["many"]["summaries"]

"""Write ``compile_pins.json``: the compiler's outputs for a few networks, budgets and options, pinned.

    PYTHONPATH=<tree> python tests/simulator/data/make_compile_pins.py

Run once on the compiler as it was before the speed work of issue 13 (commit 7bf8d2e); the test
``tests/simulator/test_compile_pins.py`` then checks that every later version gives the same plans and PPA, bit
for bit (summaries, per-layer tables, placements, box tables and crossbar classes, as SHA-256 of the arrays).
The workloads are stored with the pins, so the check does not depend on tracing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torchvision

from rnc.simulator import HardwareConfig, compile_many, compile_workload, trace_workload

NETWORKS = ("squeezenet1_1", "mobilenet_v3_small", "mobilenet_v2", "mnasnet0_5")
BUDGETS = {"squeezenet1_1": (48, 96, 128, 256, 512), "mobilenet_v3_small": (96, 128, 132, 160, 256, 384, 512),
           "mobilenet_v2": (128, 256, 512), "mnasnet0_5": (96, 160, 256)}
OPTIONS = ({}, {"duplication": "balance"}, {"duplication": "latency"}, {"depthwise_mapping": "channel-serial"},
           {"depthwise_mapping": "block-diagonal"}, {"depthwise_mapping": "parallel"}, {"min_gain": 0.0},
           {"restarts": 1, "seed": 3})
VARIANTS = {"rnc128": {}, "rnc256_4bit": {"crossbar_rows": 256, "crossbar_cols": 256, "cell_bits": 4}}
PATH = Path(__file__).with_name("compile_pins.json")


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def pin(result) -> dict:
    s = result.summary()
    return {"summary": s, "totals": digest(result._totals), "layers": digest(result._layer_table),
            "placements": digest(result._placements), "boxes": digest(result._boxes),
            "crossbar_class": digest(result._crossbar_class)}


def cases(workloads: dict) -> list[dict]:
    out = []
    for name in workloads:
        for vname in VARIANTS:
            for budget in BUDGETS[name]:
                for opt in OPTIONS if vname == "rnc128" else ({},):
                    out.append({"network": name, "variant": vname, "budget": budget, "strategy": "rnc",
                                "options": opt})
            out.append({"network": name, "variant": vname, "budget": BUDGETS[name][-1], "strategy": "isaac",
                        "options": {"duplicate": True}})
    return out


def hardware(variant: str, budget: int) -> HardwareConfig:
    hw = HardwareConfig.preset("rnc").with_updates(crossbars=budget, **VARIANTS[variant])
    return hw


def main() -> None:
    workloads = {n: trace_workload(getattr(torchvision.models, n)(num_classes=10), (3, 64, 64), name=n)
                 for n in NETWORKS}
    rows = []
    for case in cases(workloads):
        w = workloads[case["network"]]
        hw = hardware(case["variant"], case["budget"])
        rows.append({**case, **pin(compile_workload(w, hw, case["strategy"], **case["options"]))})
    # heterogeneous crossbar sizes: the first two layers of mobilenet_v3_small on 64x64 crossbars
    w = workloads["mobilenet_v3_small"]
    sizes = {w.layers[0].name: (64, 64), w.layers[1].name: (64, 64)}
    hetero = HardwareConfig.preset("rnc").with_updates(crossbars=256, layer_crossbar_sizes=sizes)
    rows.append({"network": "mobilenet_v3_small", "variant": "hetero", "budget": 256, "strategy": "rnc",
                 "options": {}, "layer_crossbar_sizes": {k: list(v) for k, v in sizes.items()},
                 **pin(compile_workload(w, hetero))})
    # compile_many over a mix (summaries only)
    mix = [(workloads[n], hardware(v, b)) for n in ("squeezenet1_1", "mobilenet_v3_small")
           for v in VARIANTS for b in (0, 64, 128, 256)]
    many = compile_many(mix)
    data = {"made_by": "tests/simulator/data/make_compile_pins.py on commit 7bf8d2e (before the issue-13 speed work)",
            "workloads": {n: w.to_dict() for n, w in workloads.items()}, "cases": rows,
            "many": {"pairs": [[n, v, b] for n in ("squeezenet1_1", "mobilenet_v3_small") for v in VARIANTS
                               for b in (0, 64, 128, 256)], "summaries": many}}
    PATH.write_text(json.dumps(data, sort_keys=True) + "\n")
    print(f"{len(rows)} cases, {len(many)} compile_many pairs -> {PATH}")


if __name__ == "__main__":
    main()

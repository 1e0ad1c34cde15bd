"""Cold compile time of the default ``compile_workload`` (rnc preset, 128x128, 3x64x64 input), one line per case.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/bench_compile_cold.py --label new

Run it once per source tree (``PYTHONPATH=<tree>``), back to back, to compare two versions of the compiler side
by side; each line is ``label network budget median_ms min_ms`` over ``--repeats`` cold compiles (base packing
cache cleared before each), after one warm-up compile (JIT load).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
import torch
import torchvision

from rnc.simulator import HardwareConfig, compile_workload, trace_workload
from rnc.simulator.compiler import clear_compile_cache

torch.set_num_threads(1)
NETWORKS = ("squeezenet1_1", "mobilenet_v3_small", "mobilenet_v2")
BUDGETS = (128, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="tree")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    for name in NETWORKS:
        w = trace_workload(getattr(torchvision.models, name)(num_classes=10), (3, 64, 64), name=name)
        for budget in BUDGETS:
            hw = HardwareConfig.preset("rnc").with_updates(crossbars=budget)
            compile_workload(w, hw).summary()
            times = []
            for _ in range(args.repeats):
                clear_compile_cache()
                t0 = time.perf_counter()
                compile_workload(w, hw).summary()
                times.append(time.perf_counter() - t0)
            ms = np.array(times) * 1e3
            print(f"{args.label} {name} {budget} {np.median(ms):.3f} {ms.min():.3f}", flush=True)


if __name__ == "__main__":
    main()

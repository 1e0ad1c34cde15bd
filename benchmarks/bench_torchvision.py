"""Every torchvision classification model on the crossbars: the summary table of benchmarks/RESULTS.md.

    python benchmarks/bench_torchvision.py                       # hardware preset rnc, both strategies
    python benchmarks/bench_torchvision.py --hardware isaac --models vit_b_16 convnext_tiny

Each model is built with its parameters on ``meta`` (no weights allocated) and traced at 3x224x224
(:mod:`rnc.simulator.zoo`), then compiled with the ``isaac`` and ``rnc`` strategies (unlimited budget unless
``--crossbars``). Prints a markdown table: crossbars, utilization, latency, energy, and the share of latency
and energy spent on the digital unit (:mod:`rnc.simulator.digital`).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import torch

from rnc.simulator import HardwareConfig, compile_workload
from rnc.simulator.zoo import classification_models, input_shape_for, torchvision_workload

torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hardware", default="rnc")
    parser.add_argument("--crossbars", type=int, default=None)
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args()
    hw = HardwareConfig.resolve(args.hardware)
    names = args.models or classification_models()
    print(f"hardware {hw.name}, budget {args.crossbars if args.crossbars is not None else hw.crossbars} "
          "(0 = unlimited)\n")
    print("| model | input | layers | weights (M) | strategy | crossbars | utilization | latency (ms) | energy (mJ) "
          "| digital latency share | digital energy share |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workload = torchvision_workload(name)
        shape = "x".join(map(str, input_shape_for(name)))
        for strategy in ("isaac", "rnc"):
            r = compile_workload(workload, hw, strategy, crossbars=args.crossbars)
            s = r.summary()
            print(f"| {name} | {shape} | {len(workload)} | {workload.total_weights / 1e6:.1f} | {strategy} "
                  f"| {s['crossbars_used']:,} | {s['utilization']:.1%} | {s['latency_ns'] / 1e6:,.2f} "
                  f"| {s['energy_pj'] / 1e9:,.3f} | {s['digital_latency_ns'] / s['latency_ns']:.1%} "
                  f"| {s['digital_energy_pj'] / s['energy_pj']:.1%} |", flush=True)
    print(f"\n{len(names)} models x 2 strategies in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

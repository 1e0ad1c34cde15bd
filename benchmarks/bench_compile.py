"""Benchmark the crossbar compiler: speed of compile + PPA, batched throughput, and the RNC-paper comparison.

    python benchmarks/bench_compile.py            # everything (a few minutes on 2 cores)
    python benchmarks/bench_compile.py --quick    # fewer repetitions and pairs
    taskset -c 1 python benchmarks/bench_compile.py   # pinned to one core

Speedups are against two baselines: the issue's ``isaac`` (every layer and every depthwise group on its own
crossbars, so depthwise layers run fully parallel) and ``rnc partition only`` (RNC's own mapping without
packing or duplication: depthwise layers one channel at a time).

Prints markdown tables (pasted into benchmarks/RESULTS.md). Single-threaded: Numba kernels run on one core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
import torch
import torchvision
from rich.progress import track

from rnc.simulator import HardwareConfig, Workload, compile_many, compile_workload, trace_workload
from rnc.simulator.compiler import clear_compile_cache

torch.set_num_threads(1)
BUDGETS = (48, 64, 96, 128, 160, 192, 256)
WIDE_BUDGETS = (320, 384, 512)  # budget sweep beyond the RNC paper's table
PAPER_BUDGETS = (64, 96, 128, 132, 136, 144, 160, 192, 256, 320, 384, 512)  # mobilenet_v3_small (issue 13)


def workloads():
    return {
        name: trace_workload(getattr(torchvision.models, name)(num_classes=10), (3, 64, 64), name=name)
        for name in ("squeezenet1_1", "mobilenet_v3_small")
    }


def _times_ms(fn, repeats: int) -> np.ndarray:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def bench_single(nets, repeats: int) -> None:
    hw = HardwareConfig.preset("rnc").with_updates(crossbars=256)
    print(f"\nLoad average at start: {os.getloadavg()[0]:.2f}; CPU affinity: {sorted(os.sched_getaffinity(0))}")
    print("\n### Time per compile + PPA (rnc, duplication + packing, budget 256, 128x128, after JIT warm-up)\n")
    print("cold = base packing cache cleared before every compile (partitioning + packing + duplication + PPA); "
          "cached = the budget-independent base packings reused (what compile_many and budget sweeps see). "
          "`auto` = the default (depthwise mapping chosen among RNC's and 4 block-diagonal candidates, RNC's "
          "balanced and the latency-driven duplication); `channel-serial` = RNC's depthwise mapping only.\n")
    print("| network | depthwise mapping | layers | boxes placed | cold median ms | cold min ms | cached median ms | "
          "cached min ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, w in nets.items():
        for mapping in ("auto", "channel-serial"):
            if mapping == "channel-serial" and not any(lay.is_depthwise for lay in w.layers):
                continue
            result = compile_workload(w, hw, depthwise_mapping=mapping)  # warm-up (JIT compile or cache load)
            result.summary()

            def cold(w=w, mapping=mapping):
                clear_compile_cache()
                compile_workload(w, hw, depthwise_mapping=mapping).summary()

            cold_ms = _times_ms(cold, repeats)
            compile_workload(w, hw, depthwise_mapping=mapping)
            warm_ms = _times_ms(lambda w=w, mapping=mapping: compile_workload(w, hw, depthwise_mapping=mapping)
                                .summary(), repeats)
            print(f"| {name} | {mapping} | {len(w)} | {len(result._placements)} | {np.median(cold_ms):.3f} | "
                  f"{cold_ms.min():.3f} | {np.median(warm_ms):.3f} | {warm_ms.min():.3f} |")


def _variants():
    base = HardwareConfig.preset("rnc")
    return [base.with_updates(crossbar_rows=size, crossbar_cols=size, cell_bits=cell_bits, crossbars=budget)
            for size in (128, 256) for cell_bits in (4, 8) for budget in (0, 48, 64, 96, 128, 160, 192, 256)]


def bench_batch(nets, n_pairs: int, n_fresh: int) -> None:
    rng = np.random.default_rng(0)
    variants = _variants()
    names = list(nets)
    pairs = [(nets[names[int(rng.integers(len(names)))]], variants[int(rng.integers(len(variants)))])
             for _ in range(n_pairs)]
    compile_many(pairs[:50])  # warm-up (JIT)
    clear_compile_cache()  # the timed call builds its own base packings
    t0 = time.perf_counter()
    out = compile_many(pairs)
    dt = time.perf_counter() - t0
    feasible = sum(r["feasible"] for r in out)
    print(f"\n### compile_many over {n_pairs:,} (workload, hardware) pairs\n")
    print(f"{len(names)} networks x {len(variants)} hardware variants (128/256 crossbars, 4/8-bit cells, "
          f"budgets 0-256), rnc strategy: {dt:.2f} s, **{n_pairs / dt:,.0f} evaluations/s** on one core "
          f"({feasible:,} feasible; {len(names) * len(variants)} distinct pairs, so a pair seen again reuses its "
          "summary).")
    print(f"\n### compile_many where every pair needs a fresh packing ({n_fresh} pairs)\n")
    print("Each pair is a new copy of the workload (a new object: no cached base packing, no reused summary), "
          "hardware drawn from the same variants.\n")
    print("| network | depthwise mapping | pairs | s | evaluations/s |")
    print("|---|---|---:|---:|---:|")
    for name, w in nets.items():
        for mapping in ("auto", "channel-serial"):
            if mapping == "channel-serial" and not any(lay.is_depthwise for lay in w.layers):
                continue
            fresh = [(Workload.from_dict(w.to_dict()), variants[int(rng.integers(len(variants)))])
                     for _ in range(n_fresh)]
            t0 = time.perf_counter()
            compile_many(fresh, depthwise_mapping=mapping)
            dt = time.perf_counter() - t0
            print(f"| {name} | {mapping} | {n_fresh} | {dt:.2f} | {n_fresh / dt:,.0f} |")


def bench_paper(nets) -> None:
    hw = HardwareConfig.preset("rnc")
    print("\n### RNC-paper comparison (64x64 input, 128x128 crossbars, 8-bit weights, one weight per cell)\n")
    for name, w in nets.items():
        isaac = compile_workload(w, hw, strategy="isaac")
        plain = compile_workload(w, hw, strategy="rnc", duplicate=False, pack=False)
        packed = compile_workload(w, hw, strategy="rnc", duplicate=False)
        print(f"\n**{name}** -- isaac: {isaac.crossbars_used} crossbars, {isaac.utilization:.1%} utilization, "
              f"latency {isaac.latency_ns / 1e3:,.1f} us; rnc partition only (no packing, no duplication): "
              f"{plain.crossbars_used} crossbars, {plain.utilization:.1%}, {plain.latency_ns / 1e3:,.1f} us; "
              f"rnc packing alone: {packed.crossbars_used} crossbars, **{packed.utilization:.1%}** utilization.\n")
        depthwise = any(lay.is_depthwise for lay in w.layers)
        print("rnc, default options (mapping chosen by the compiler, stop rule min_gain 0.005):\n")
        print("| budget | crossbars used | utilization | latency us | throughput img/s | energy uJ | "
              "speedup vs isaac | speedup vs rnc partition only | throughput vs isaac | depthwise reads/position |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        budgets = PAPER_BUDGETS if depthwise else BUDGETS + WIDE_BUDGETS
        for budget in track(budgets, description=name, transient=True):
            r = compile_workload(w, hw, strategy="rnc", crossbars=budget)
            if not r.feasible:
                print(f"| {budget} | infeasible (needs {r.min_crossbars}) | | | | | | | | |")
                continue
            seq = [row["sequential_channels"] for row in r.layers if row["kind"] == "depthwise"]
            print(f"| {budget} | {r.crossbars_used} | {r.utilization:.1%} | {r.latency_ns / 1e3:,.1f} | "
                  f"{r.throughput_ips:,.0f} | {r.energy_pj / 1e6:.3f} | {isaac.latency_ns / r.latency_ns:.2f}x | "
                  f"{plain.latency_ns / r.latency_ns:.2f}x | {r.throughput_ips / isaac.throughput_ips:.2f}x | "
                  f"{'-' if not seq else f'{min(seq)}-{max(seq)}'} |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and pairs")
    parser.add_argument("--fresh", type=int, default=100, help="pairs per row of the fresh-packing table")
    args = parser.parse_args()
    nets = workloads()
    bench_single(nets, repeats=50 if args.quick else 300)
    bench_batch(nets, n_pairs=1_000 if args.quick else 10_000, n_fresh=20 if args.quick else args.fresh)
    bench_paper(nets)


if __name__ == "__main__":
    main()

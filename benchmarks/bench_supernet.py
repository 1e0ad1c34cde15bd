"""Supernet benchmark on digits: training time, largest/smallest accuracy, evaluation time, ranking fidelity.

Usage (the defaults are those of the embedded launch: mbv3 at 16x16, 10 epochs, one torch thread)::

    python benchmarks/bench_supernet.py --out /tmp/bench-supernet.json
    python benchmarks/bench_supernet.py --checkpoint DIR --standalone 12 --standalone-epochs 10
    python benchmarks/bench_supernet.py --checkpoint DIR --standalone 12 --only-standalone   # one process per part

Ranking fidelity: ``--standalone N`` subnets are drawn at random (seeded) from 400 random genomes, N of them
evenly spaced in MACs so that the sample spans the space's size range; each is evaluated with inherited
weights (batch-norm recalibrated) and trained from scratch with the same recipe
(:func:`rnc.search.supernet.training.train_standalone`); Kendall tau compares the two accuracy rankings.
Times are wall-clock and process CPU seconds (the CPU figure is robust to a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _pick_genomes(space, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = [space.sample(rng) for _ in range(400)]
    macs = np.array([space.workload(g).total_macs for g in pool])
    order = np.argsort(macs, kind="stable")
    picks = np.linspace(0, len(pool) - 1, n).round().astype(int)
    return [pool[order[i]] for i in picks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="Reuse this supernet checkpoint instead of training one.")
    parser.add_argument("--train-dir", type=Path, default=Path("/tmp/rnc-bench-supernet"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--standalone", type=int, default=0, help="Subnets trained from scratch (Kendall tau).")
    parser.add_argument("--standalone-epochs", type=int, default=10)
    parser.add_argument(
        "--standalone-json", type=Path,
        help='Reuse stand-alone accuracies: {"standalone_accuracy": [acc or null per pick]} (e.g. from split runs).',
    )
    parser.add_argument("--only-standalone", action="store_true", help="Only train the stand-alone subnets.")
    parser.add_argument("--standalone-range", default=None, help="START:STOP, train only these picks (split runs).")
    parser.add_argument("--eval-repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rnc.search.datasets import load_dataset
    from rnc.search.spaces import get_space
    from rnc.search.supernet import SubnetEvaluator, load_manifest
    from rnc.search.supernet.training import train_standalone, train_supernet

    splits = load_dataset("digits", image_size=args.image_size, seed=args.seed)
    space = get_space("mbv3", input_shape=splits.input_shape)
    figures: dict = {"threads": args.threads, "image_size": args.image_size}

    if not args.only_standalone:
        if args.checkpoint is None:
            wall, cpu = time.perf_counter(), time.process_time()
            train_supernet(
                space, splits, epochs=args.epochs, seed=args.seed, out_dir=args.train_dir, lr=args.lr, progress=True
            )
            figures["train_wall_s"] = time.perf_counter() - wall
            figures["train_cpu_s"] = time.process_time() - cpu
            args.checkpoint = args.train_dir
        manifest = load_manifest(args.checkpoint)
        figures["checkpoint"] = str(args.checkpoint)
        figures["manifest_metrics"] = manifest["metrics"]
        figures["epochs"] = manifest["epochs"]
        evaluator = SubnetEvaluator(args.checkpoint, device="cpu", splits=splits)
        rng = np.random.default_rng(args.seed)
        timings: dict[str, list[float]] = {"largest": [], "smallest": [], "random": []}
        cpu_timings: dict[str, list[float]] = {"largest": [], "smallest": [], "random": []}
        accuracy = {}
        for label in timings:
            for _ in range(args.eval_repeats):
                genome = {"largest": space.largest(), "smallest": space.smallest()}.get(label)
                genome = space.sample(rng) if genome is None else genome
                start, cpu_start = time.perf_counter(), time.process_time()
                result = evaluator.evaluate(genome)
                timings[label].append(time.perf_counter() - start)
                cpu_timings[label].append(time.process_time() - cpu_start)
                accuracy.setdefault(label, result["accuracy"])
        figures["largest_accuracy"] = accuracy["largest"]
        figures["smallest_accuracy"] = accuracy["smallest"]
        figures["eval_ms_median"] = {k: 1000 * statistics.median(v) for k, v in timings.items()}
        figures["eval_ms_min"] = {k: 1000 * min(v) for k, v in timings.items()}
        figures["eval_cpu_ms_median"] = {k: 1000 * statistics.median(v) for k, v in cpu_timings.items()}
        print(json.dumps({k: figures[k] for k in ("largest_accuracy", "smallest_accuracy", "eval_cpu_ms_median")}))

    if args.standalone:
        genomes = _pick_genomes(space, args.standalone, args.seed + 2026)
        if args.standalone_json:  # null entries (picks not trained) are left out of the ranking
            standalone = json.loads(args.standalone_json.read_text())["standalone_accuracy"]
            genomes = [g for g, acc in zip(genomes, standalone, strict=True) if acc is not None]
            standalone = [acc for acc in standalone if acc is not None]
        else:
            standalone = []
            cpu = time.process_time()
            start, stop = (int(v) for v in (args.standalone_range or f"0:{len(genomes)}").split(":"))
            for i, genome in enumerate(genomes):
                if not start <= i < stop:
                    continue
                _, acc = train_standalone(space, genome, splits, epochs=args.standalone_epochs, seed=args.seed)
                standalone.append(acc)
                print(f"stand-alone {i + 1}/{len(genomes)} {space.key(genome)}: {acc:.4f}", flush=True)
            figures["standalone_cpu_s"] = time.process_time() - cpu
        figures["standalone_accuracy"] = standalone
        figures["standalone_epochs"] = args.standalone_epochs
        figures["genomes"] = [space.key(g) for g in genomes]
        figures["macs"] = [space.workload(g).total_macs for g in genomes]
        if not args.only_standalone:
            from scipy.stats import kendalltau

            inherited = [evaluator.evaluate(g)["accuracy"] for g in genomes]
            figures["inherited_accuracy"] = inherited
            figures["kendall_tau"] = float(kendalltau(inherited, standalone).statistic)
            print(f"Kendall tau (inherited vs stand-alone, {len(genomes)} subnets): {figures['kendall_tau']:.3f}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

"""NAX (Negi et al., DAC 2022) reproduced at a small scale: searched kernel-size and crossbar-size networks against
ResNet-20 trained under the same protocol, compared by accuracy on the crossbars (with non-idealities) and EDAP.

Protocol (every step seeded):

1. The ``nax`` space (ResNet-20 with a kernel size 3/5/7 and a crossbar size 64/128/256 per conv layer) on
   ``--dataset`` at ``--image-size``; its supernet is trained on first use and cached
   (``rnc.search.supernet.ensure_supernet``).
2. NSGA-II (``--evaluations`` candidates) minimizes ``-accuracy`` and EDAP (energy x delay x area of the
   ISAAC-like mapping on the ``isaac`` preset, each layer on its own crossbar size). The search reads the
   supernet's *float* accuracy: an analog simulation per candidate is beyond a 2-core CPU, so the crossbar genes
   act on EDAP during the search and on accuracy only in step 4 (NAX searches with non-ideal accuracy).
3. The searched networks: the front's lowest-EDAP network whose supernet accuracy is at least ResNet-20's
   (the ``all kernels 3, all crossbars 128`` genome), and the front's most accurate network.
4. ResNet-20 and the searched networks are trained stand-alone with the same recipe and epochs, then measured on
   the crossbars: ``rnc.simulator.to_analog`` with the genome's per-layer crossbar sizes and the non-idealities
   of ``--set`` (default: IR drop, wire segment / R_on = 1e-4, and 5% conductance variation), mean over
   ``--chips`` chips (seeds).

With ``--search-on-crossbars`` step 2 reads the supernet's accuracy on the crossbars instead (NAX's objective: one
analog simulation per candidate), and step 3 compares with ResNet-20's inherited accuracy on the crossbars.

    python benchmarks/bench_nax.py --image-size 8 --epochs 30 --standalone-epochs 30 --json nax.json
    python benchmarks/bench_nax.py --image-size 8 --epochs 8 --search-on-crossbars --evaluations 40 --batch 10
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from rnc.search.datasets import load_dataset
from rnc.search.pareto import non_dominated
from rnc.search.searchers import make_searcher
from rnc.search.spaces import get_space
from rnc.search.supernet import SubnetEvaluator, ensure_supernet
from rnc.search.supernet.evaluate import top1_accuracy
from rnc.search.supernet.training import train_standalone
from rnc.simulator import HardwareConfig, compile_workload
from rnc.simulator.analog import to_analog

DEFAULT_SET = ["nonideal.wire_resistance_ratio=1e-4", "nonideal.conductance_sigma=0.05"]


def resnet20_genome(space) -> np.ndarray:
    """ResNet-20 in the nax space: every conv 3x3, every layer on 128x128 crossbars (the base hardware's)."""
    values = {g.name: (3 if g.name.endswith(".kernel") else 128) for g in space.genes}
    return space.encode(values)


def edap(space, genome: np.ndarray, hw: HardwareConfig) -> dict[str, float]:
    summary = compile_workload(space.workload(genome), space.hardware_for(genome, hw), "isaac", seed=0).summary()
    return {k: float(summary[k]) for k in ("edap", "energy_pj", "latency_ns", "area_mm2", "crossbars_used")}


def inherited_accuracy(evaluator: SubnetEvaluator, genome, hw: HardwareConfig | None) -> float:
    """Supernet accuracy of ``genome``: float (``hw`` None) or on the crossbars of ``hw`` (chip seed 0)."""
    result = evaluator.evaluate(genome, hw)
    return float(result["accuracy"] if hw is None else result["hw_accuracy"])


def search(space, evaluator: SubnetEvaluator, hw: HardwareConfig, evaluations: int, batch: int, seed: int,
           on_crossbars: bool = False):
    """NSGA-II over (-supernet accuracy, EDAP), the accuracy float or on the crossbars (``on_crossbars``);
    returns genomes, accuracies, EDAPs of every candidate."""
    searcher = make_searcher("nsga2", space.n_choices, 2, seed=seed, pop_size=batch)
    genomes, acc, cost = [], [], []
    while len(genomes) < evaluations:
        asked = searcher.ask(min(batch, evaluations - len(genomes)))
        a = [inherited_accuracy(evaluator, g, hw if on_crossbars else None) for g in asked]
        e = [edap(space, g, hw)["edap"] for g in asked]
        searcher.tell(asked, np.column_stack([-np.array(a), np.array(e)]))
        genomes += [np.asarray(g) for g in asked]
        acc += a
        cost += e
    return genomes, np.array(acc), np.array(cost)


def hw_accuracy(model, space, genome, hw, evaluator: SubnetEvaluator, chips: Sequence[int]) -> list[float]:
    hardware = space.hardware_for(genome, hw)
    model = model.to("cpu").eval()
    calib, test = evaluator.calib_batches, evaluator.test_batches
    return [top1_accuracy(to_analog(model, hardware, seed=chip, calibration=calib), test) for chip in chips]


def measure(space, networks, splits, evaluator: SubnetEvaluator, hw: HardwareConfig, args, console) -> list[dict]:
    """Train every ``(label, genome)`` stand-alone and measure it: float and crossbar accuracy, EDAP and PPA."""
    chips = list(range(args.chips))
    rows = []
    for label, genome in networks:
        t0 = time.perf_counter()
        model, float_acc = train_standalone(
            space, genome, splits, epochs=args.standalone_epochs, seed=args.seed, device="cpu"
        )
        analog = hw_accuracy(model, space, genome, hw, evaluator, chips)
        rows.append({
            "network": label,
            "kernels": space.kernels(genome),
            "crossbars": space.crossbars(genome),
            "inherited_accuracy": float(evaluator.evaluate(genome)["accuracy"]),
            "standalone_accuracy": float(float_acc),
            "hw_accuracy_chips": analog,
            "hw_accuracy": float(np.mean(analog)),
            **edap(space, genome, hw),
            "seconds": time.perf_counter() - t0,
        })
        console.log(f"{label}: float {float_acc:.4f}, on the crossbars {np.mean(analog):.4f}")
    ref = rows[0]
    for r in rows:
        r["hw_accuracy_diff_points"] = 100 * (r["hw_accuracy"] - ref["hw_accuracy"])
        r["edap_ratio"] = r["edap"] / ref["edap"]
    return rows


def results_table(rows: list[dict]) -> Table:
    table = Table(title="NAX: searched networks against ResNet-20 (same protocol)")
    for col in ("network", "float acc", "hw acc (mean of chips)", "hw acc - ResNet-20", "EDAP ratio",
                "energy uJ", "latency us", "area mm2"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["network"], f"{r['standalone_accuracy']:.4f}", f"{r['hw_accuracy']:.4f}",
                      f"{r['hw_accuracy_diff_points']:+.2f} pts", f"{r['edap_ratio']:.3f}",
                      f"{r['energy_pj'] / 1e6:.3f}", f"{r['latency_ns'] / 1e3:.1f}", f"{r['area_mm2']:.3f}")
    return table


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--per-class", type=int, default=None, help="cifar10: training images per class")
    parser.add_argument("--test-per-class", type=int, default=None, help="cifar10: test images per class")
    parser.add_argument("--image-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30, help="supernet epochs")
    parser.add_argument("--standalone-epochs", type=int, default=30)
    parser.add_argument("--evaluations", type=int, default=200)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chips", type=int, default=3, help="chips (non-ideality seeds) per analog accuracy")
    parser.add_argument("--set", nargs="*", default=DEFAULT_SET, help="isaac preset overrides, KEY=VALUE")
    parser.add_argument("--cache-dir", default="rnc-runs/supernets")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--search-on-crossbars", action="store_true",
        help="search on the supernet's accuracy on the crossbars (NAX's objective; one analog simulation per "
        "candidate) instead of its float accuracy",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    console = Console()
    t_start = time.perf_counter()

    options = {"input_shape": [3, args.image_size, args.image_size]}
    data = {"data_format": "auto", "per_class": args.per_class, "test_per_class": args.test_per_class}
    data = {k: v for k, v in data.items() if v not in (None, "auto")}
    space = get_space("nax", **options)
    t0 = time.perf_counter()
    checkpoint = ensure_supernet(
        "nax", options, args.dataset, epochs=args.epochs, seed=args.seed, cache_dir=args.cache_dir,
        image_size=args.image_size, data_root=args.data_root, **data,
    )
    supernet_s = time.perf_counter() - t0
    splits = load_dataset(args.dataset, root=args.data_root, image_size=args.image_size, seed=args.seed, **data)
    evaluator = SubnetEvaluator(checkpoint, device="cpu", splits=splits)
    hw = HardwareConfig.preset("isaac").set_values(list(args.set)).with_updates(crossbars=0)
    console.print(f"nax on {args.dataset} {args.image_size}x{args.image_size}, supernet {checkpoint} "
                  f"({supernet_s:.0f} s), hardware isaac {' '.join(args.set)}")

    base = resnet20_genome(space)
    base_inherited = inherited_accuracy(evaluator, base, hw if args.search_on_crossbars else None)
    t0 = time.perf_counter()
    genomes, acc, cost = search(
        space, evaluator, hw, args.evaluations, args.batch, args.seed, on_crossbars=args.search_on_crossbars
    )
    search_s = time.perf_counter() - t0
    front = np.flatnonzero(non_dominated(np.column_stack([-acc, cost])))
    eligible = [i for i in front if acc[i] >= base_inherited]
    picks = {}
    if eligible:
        picks["searched, lowest EDAP at >= ResNet-20 accuracy"] = min(eligible, key=lambda i: cost[i])
    picks["searched, most accurate"] = max(front, key=lambda i: acc[i])
    console.print(f"search: {len(genomes)} candidates in {search_s:.0f} s, front {len(front)}, "
                  f"ResNet-20 inherited accuracy {base_inherited:.4f}")

    rows = measure(space, [("ResNet-20", base), *((k, genomes[i]) for k, i in picks.items())], splits,
                   evaluator, hw, args, console)
    console.print(results_table(rows))
    result = {
        "dataset": args.dataset, "image_size": args.image_size, "per_class": args.per_class,
        "test_per_class": args.test_per_class, "supernet": str(checkpoint), "supernet_s": supernet_s,
        "supernet_epochs": args.epochs, "standalone_epochs": args.standalone_epochs, "evaluations": args.evaluations,
        "search_s": search_s, "search_on_crossbars": args.search_on_crossbars, "hardware_set": list(args.set),
        "chips": args.chips, "rows": rows,
        "wall_s": time.perf_counter() - t_start,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else o))
    return result


if __name__ == "__main__":
    main()

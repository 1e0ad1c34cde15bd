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

CPU-sized CIFAR-10 options (an analog simulation of a 7x7 layer on 64x64 crossbars costs about 0.4 s of one core
per 16x16 image, 20 times ResNet-20's): ``--search-test-per-class`` scores the search's candidates on a smaller
balanced test subset (a subset of the final one: the same seeded per-class draws), and ``--analog-calib-images``
calibrates the crossbars' input and ADC ranges on the first N of the 256 batch-norm calibration images (default:
all of them, as ``SubnetEvaluator.evaluate`` does).

    python benchmarks/bench_nax.py --image-size 8 --epochs 30 --standalone-epochs 30 --json nax.json
    python benchmarks/bench_nax.py --image-size 8 --epochs 8 --search-on-crossbars --evaluations 40 --batch 10
    python benchmarks/bench_nax.py --dataset cifar10 --data-root ../shared/datasets/cifar10-jpeg --image-size 16 \
        --per-class 100 --test-per-class 50 --search-test-per-class 10 --analog-calib-images 64 \
        --search-on-crossbars --evaluations 40 --batch 10 --chips 1
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
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
CALIB_IMAGES = 256  # SubnetEvaluator's batch-norm calibration images, which also calibrate the crossbars


def resnet20_genome(space) -> np.ndarray:
    """ResNet-20 in the nax space: every conv 3x3, every layer on 128x128 crossbars (the base hardware's)."""
    values = {g.name: (3 if g.name.endswith(".kernel") else 128) for g in space.genes}
    return space.encode(values)


def edap(space, genome: np.ndarray, hw: HardwareConfig) -> dict[str, float]:
    summary = compile_workload(space.workload(genome), space.hardware_for(genome, hw), "isaac", seed=0).summary()
    return {k: float(summary[k]) for k in ("edap", "energy_pj", "latency_ns", "area_mm2", "crossbars_used")}


def analog_calibration(evaluator: SubnetEvaluator, images: int | None) -> list[torch.Tensor]:
    """The evaluator's calibration batches cut to their first ``images`` images (None: all of them): what
    ``to_analog`` calibrates the input and ADC ranges on. Batch-norm recalibration always reads all of them."""
    if images is None:
        return evaluator.calib_batches
    batches, left = [], images
    for batch in evaluator.calib_batches:
        if left <= 0:
            break
        batches.append(batch[:left])
        left -= len(batches[-1])
    return batches


def inherited_accuracy(evaluator: SubnetEvaluator, genome, hw: HardwareConfig | None,
                       calibration: list[torch.Tensor] | None = None) -> float:
    """Supernet accuracy of ``genome``: float (``hw`` None) or on the crossbars of ``hw`` (chip seed 0), their
    ranges calibrated on ``calibration`` (None: the evaluator's batch-norm calibration batches)."""
    if hw is not None and calibration is not None:
        hardware = evaluator.space.hardware_for(evaluator.space.validate(genome), hw)
        analog = to_analog(evaluator.subnet(genome), hardware, seed=0, calibration=calibration,
                           check_layer_names=False)
        return float(top1_accuracy(analog, evaluator.test_batches))
    result = evaluator.evaluate(genome, hw)
    return float(result["accuracy"] if hw is None else result["hw_accuracy"])


def search(space, evaluator: SubnetEvaluator, hw: HardwareConfig, evaluations: int, batch: int, seed: int,
           on_crossbars: bool = False, calibration: list[torch.Tensor] | None = None,
           log: Callable[[str], None] | None = None):
    """NSGA-II over (-supernet accuracy, EDAP), the accuracy float or on the crossbars (``on_crossbars``, ranges
    calibrated on ``calibration``); returns genomes, accuracies, EDAPs of every candidate. ``log`` receives one
    line per candidate (progress)."""
    searcher = make_searcher("nsga2", space.n_choices, 2, seed=seed, pop_size=batch)
    genomes, acc, cost = [], [], []
    t0 = time.perf_counter()
    while len(genomes) < evaluations:
        asked = searcher.ask(min(batch, evaluations - len(genomes)))
        a, e = [], []
        for g in asked:
            a.append(inherited_accuracy(evaluator, g, hw if on_crossbars else None, calibration))
            e.append(edap(space, g, hw)["edap"])
            if log is not None:
                log(f"candidate {len(genomes) + len(a)}/{evaluations}: {space.label(g)}, accuracy {a[-1]:.4f}, "
                    f"EDAP {e[-1]:.3e}, {time.perf_counter() - t0:.0f} s")
        searcher.tell(asked, np.column_stack([-np.array(a), np.array(e)]))
        genomes += [np.asarray(g) for g in asked]
        acc += a
        cost += e
    return genomes, np.array(acc), np.array(cost)


def hw_accuracy(model, space, genome, hw, evaluator: SubnetEvaluator, chips: Sequence[int],
                calibration: list[torch.Tensor] | None = None) -> list[float]:
    """Top-1 on the evaluator's test split through ``to_analog`` for every chip seed; ranges calibrated on
    ``calibration`` (None: the evaluator's calibration batches)."""
    hardware = space.hardware_for(genome, hw)
    model = model.to("cpu").eval()
    calib = evaluator.calib_batches if calibration is None else calibration
    test = evaluator.test_batches
    return [top1_accuracy(to_analog(model, hardware, seed=chip, calibration=calib), test) for chip in chips]


def measure(space, networks, splits, evaluator: SubnetEvaluator, hw: HardwareConfig, args, console) -> list[dict]:
    """Train every ``(label, genome)`` stand-alone and measure it: float and crossbar accuracy, EDAP and PPA."""
    chips = list(range(args.chips))
    rows = []
    calibration = analog_calibration(evaluator, args.analog_calib_images)
    for label, genome in networks:
        t0, cpu0 = time.perf_counter(), time.process_time()
        model, float_acc = train_standalone(
            space, genome, splits, epochs=args.standalone_epochs, seed=args.seed, device="cpu"
        )
        train_cpu_s = time.process_time() - cpu0
        analog = hw_accuracy(model, space, genome, hw, evaluator, chips, calibration)
        extra = {}
        if args.remeasure is not None:
            extra["inherited_hw_accuracy"] = inherited_accuracy(evaluator, genome, hw, calibration)
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
            "train_cpu_s": train_cpu_s,
            "eval_cpu_s": time.process_time() - cpu0 - train_cpu_s,  # on the crossbars, float, EDAP
            **extra,
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


def search_and_pick(space, search_evaluator: SubnetEvaluator, hw: HardwareConfig, args, console):
    """Steps 2-3: the search, then ResNet-20 and the searched networks as ``(label, genome)`` pairs, and the
    search's record (times, ResNet-20's accuracy in the search, every candidate)."""
    base = resnet20_genome(space)
    calibration = analog_calibration(search_evaluator, args.analog_calib_images)
    base_inherited = inherited_accuracy(search_evaluator, base, hw if args.search_on_crossbars else None,
                                        calibration)
    console.log(f"ResNet-20 inherited accuracy {'on the crossbars' if args.search_on_crossbars else 'float'}: "
                f"{base_inherited:.4f} ({search_evaluator.test_size} test images)")
    t0, cpu0 = time.perf_counter(), time.process_time()
    genomes, acc, cost = search(
        space, search_evaluator, hw, args.evaluations, args.batch, args.seed, on_crossbars=args.search_on_crossbars,
        calibration=calibration, log=console.log,
    )
    search_s, search_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    front = np.flatnonzero(non_dominated(np.column_stack([-acc, cost])))
    eligible = [i for i in front if acc[i] >= base_inherited]
    picks = {}
    if eligible:
        picks["searched, lowest EDAP at >= ResNet-20 accuracy"] = min(eligible, key=lambda i: cost[i])
    picks["searched, most accurate"] = max(front, key=lambda i: acc[i])
    console.print(f"search: {len(genomes)} candidates in {search_s:.0f} s, front {len(front)}, "
                  f"ResNet-20 inherited accuracy {base_inherited:.4f}")
    info = {
        "evaluations": args.evaluations, "search_on_crossbars": args.search_on_crossbars,
        "search_s": search_s, "search_cpu_s": search_cpu_s, "resnet20_search_accuracy": base_inherited,
        "candidates": [{"genes": space.label(g), "accuracy": float(a), "edap": float(c)}
                       for g, a, c in zip(genomes, acc, cost, strict=True)],
    }
    return [("ResNet-20", base), *((k, genomes[i]) for k, i in picks.items())], info


def genome_from_row(space, row: dict) -> np.ndarray:
    """The genome of a ``rows`` entry of an earlier ``--json``: its per-layer ``kernels`` (in slot order) and
    ``crossbars`` (layer name -> side)."""
    values = {f"{slot.name}.kernel": int(k) for slot, k in zip(space.slots, row["kernels"], strict=True)}
    values.update({f"{name}.crossbar": int(side) for name, side in row["crossbars"].items()})
    return space.encode(values)


def networks_from_json(space, path: Path) -> list[tuple[str, np.ndarray]]:
    """``(label, genome)`` of every network an earlier run measured (ResNet-20 first)."""
    return [(row["network"], genome_from_row(space, row)) for row in json.loads(path.read_text())["rows"]]


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse inconsistent sizes before any data is read or any supernet trained (exit 2, one line)."""
    if args.analog_calib_images is not None and not 1 <= args.analog_calib_images <= CALIB_IMAGES:
        parser.error(f"--analog-calib-images must be between 1 and {CALIB_IMAGES} (the calibration images), "
                     f"got {args.analog_calib_images}")
    if args.remeasure is not None and not args.remeasure.is_file():
        parser.error(f"--remeasure {args.remeasure}: no such file; pass the --json of an earlier run")
    if args.search_test_per_class is None:
        return
    if args.dataset != "cifar10":
        parser.error(f"--search-test-per-class selects cifar10 test images; --dataset is {args.dataset!r}")
    if args.search_test_per_class < 1:
        parser.error(f"--search-test-per-class must be at least 1, got {args.search_test_per_class}")
    if args.test_per_class is not None and args.search_test_per_class > args.test_per_class:
        parser.error(f"--search-test-per-class ({args.search_test_per_class}) must not exceed --test-per-class "
                     f"({args.test_per_class}): the search's images are a subset of the final test split")


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
    parser.add_argument(
        "--search-test-per-class", type=int, default=None,
        help="cifar10: score the search's candidates on this many test images per class (a subset of the final "
        "test split; default: the final test split)",
    )
    parser.add_argument(
        "--analog-calib-images", type=int, default=None,
        help=f"calibrate the crossbars' input and ADC ranges on the first N of the {CALIB_IMAGES} calibration "
        "images (default: all)",
    )
    parser.add_argument(
        "--remeasure", type=Path, default=None,
        help="skip the search: train and measure again the networks of an earlier --json (e.g. with more --chips); "
        "also reports their supernet accuracy on the crossbars on the final test split",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    check_args(parser, args)
    torch.set_num_threads(args.threads)
    console = Console()
    t_start, cpu_start = time.perf_counter(), time.process_time()

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
    search_evaluator = evaluator
    if args.search_test_per_class is not None:
        search_splits = load_dataset(args.dataset, root=args.data_root, image_size=args.image_size, seed=args.seed,
                                     **{**data, "test_per_class": args.search_test_per_class})
        search_evaluator = SubnetEvaluator(checkpoint, device="cpu", splits=search_splits)
    hw = HardwareConfig.preset("isaac").set_values(list(args.set)).with_updates(crossbars=0)
    console.print(f"nax on {args.dataset} {args.image_size}x{args.image_size}, supernet {checkpoint} "
                  f"({supernet_s:.0f} s), hardware isaac {' '.join(args.set)}; test images: "
                  f"{search_evaluator.test_size} in the search, {evaluator.test_size} for the final networks")

    if args.remeasure is None:
        networks, info = search_and_pick(space, search_evaluator, hw, args, console)
    else:
        networks, info = networks_from_json(space, args.remeasure), {"remeasured_from": str(args.remeasure)}
    rows = measure(space, networks, splits, evaluator, hw, args, console)
    console.print(results_table(rows))
    result = {
        "dataset": args.dataset, "image_size": args.image_size, "per_class": args.per_class,
        "test_per_class": args.test_per_class, "supernet": str(checkpoint), "supernet_s": supernet_s,
        "supernet_epochs": args.epochs, "standalone_epochs": args.standalone_epochs, "hardware_set": list(args.set),
        "chips": args.chips, "rows": rows,
        "wall_s": time.perf_counter() - t_start, "cpu_s": time.process_time() - cpu_start,
        "search_test_images": search_evaluator.test_size, "test_images": evaluator.test_size,
        "analog_calib_images": args.analog_calib_images, **info,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else o))
    return result


if __name__ == "__main__":
    main()

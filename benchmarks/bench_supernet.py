"""Supernet benchmark (digits by default): training time, largest/smallest accuracy, evaluation time, ranking fidelity.

Usage (the defaults are those of the embedded launch: mbv3 at 16x16 on digits, 10 epochs, one torch thread; training
and stand-alone runs use a GPU when torch sees one)::

    python benchmarks/bench_supernet.py --out /tmp/bench-supernet.json
    python benchmarks/bench_supernet.py --checkpoint DIR --standalone 12 --standalone-epochs 10
    python benchmarks/bench_supernet.py --checkpoint DIR --standalone 12 --only-standalone   # one process per part
    python benchmarks/bench_supernet.py --image-size 8 --train-subset 360 --epochs 20 --standalone 12 \
        --standalone-epochs 20 --threads 2   # ranking-fidelity protocol without the ceiling effect
    python benchmarks/bench_supernet.py --dataset cifar10 --data-root DIR --image-size 64 --epochs 100 \
        --standalone 10 --standalone-epochs 60 --device cuda   # CIFAR-10 at RNC's 64x64 (a GPU)
    python benchmarks/bench_supernet.py --dataset cifar10 --data-root DIR --image-size 16 --per-class 100 \
        --test-per-class 100 --checkpoint DIR --standalone 20 --standalone-seeds 2   # CPU CIFAR-10 subset
    python benchmarks/bench_supernet.py ... --standalone-json SA.json --recipe shrink=progressive \
        --recipe distill=none   # retrain only the supernet with another recipe (docs/search.md, "Recipe options")

Ranking fidelity: ``--standalone N`` subnets are drawn at random (seeded) from 400 random genomes, N of them
evenly spaced in MACs so that the sample spans the space's size range; each is evaluated with inherited
weights (batch-norm recalibrated) and trained from scratch with the same recipe
(:func:`rnc.search.supernet.training.train_standalone`); Kendall tau compares the two accuracy rankings.
Times are wall-clock and process CPU seconds (the CPU figure is robust to a shared machine).

On the full digits training split every subnet trained alone reaches 99-100% of the 359 test images (a ceiling:
the stand-alone "ranking" is one to three images of noise). ``--train-subset N`` trains both the supernet and
every stand-alone subnet on the same fixed seeded subset of N training images (batch-norm recalibration uses
the same N images without augmentation; the test split is unchanged and never seen), and ``--image-size 8``
keeps the digits at their native resolution; both lower the accuracies so that subnets really differ.
With per-image test results of both sides, tau comes with a bootstrap confidence interval (``--bootstrap``
resamples of the test images and the subnets, percentile 95%) and with the test-set noise ceiling: the
expected tau between two independent measurements of the stand-alone accuracies on test sets of the same size
(binomial noise only), i.e. the tau a perfect proxy would reach given this many test images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rnc.options import OptionError, parse_key_values


def _pick_genomes(space, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = [space.sample(rng) for _ in range(400)]
    macs = np.array([space.workload(g).total_macs for g in pool])
    order = np.argsort(macs, kind="stable")
    picks = np.linspace(0, len(pool) - 1, n).round().astype(int)
    return [pool[order[i]] for i in picks]


def _subset_splits(splits, n: int, seed: int, *, test_rest: bool = False):
    """``splits`` with ``train`` and ``calib`` restricted to one fixed seeded subset of ``n`` training images
    (``calib``: the same images without augmentation); ``test`` unchanged, or with ``test_rest`` extended by the
    training images outside the subset (no model ever trains or calibrates on them)."""
    from rnc.search.datasets import DatasetSplits, TensorImages

    train = splits.train
    if not isinstance(train, TensorImages):
        raise SystemExit("--train-subset needs a dataset held in memory (digits)")
    if not 2 <= n <= len(train):
        raise SystemExit(f"--train-subset must be between 2 and {len(train)} (training images), got {n}")
    idx = torch.as_tensor(np.sort(np.random.default_rng(seed + 7).permutation(len(train))[:n]))
    background = float(train._padded[0, 0, 0, 0]) if train.max_shift else 0.0
    images, labels = train.images[idx], train.labels[idx]
    sub_train = TensorImages(images, labels, max_shift=train.max_shift, background=background)
    sub_calib = TensorImages(images[:256], labels[:256])
    config = {**splits.config, "train_subset": n}
    test = splits.test
    if test_rest:
        rest = torch.as_tensor(np.setdiff1d(np.arange(len(train)), idx.numpy()))
        test = TensorImages(torch.cat([test.images, train.images[rest]]), torch.cat([test.labels, train.labels[rest]]))
        config["test_rest"] = True
    return DatasetSplits(sub_train, sub_calib, test, splits.num_classes, splits.input_shape, splits.name, config)


@torch.no_grad()
def _correct(model, batches) -> np.ndarray:
    """Per-test-image correctness (bool array) of ``model`` in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    return np.concatenate([(model(x.to(device)).argmax(1).cpu() == y.cpu()).numpy() for x, y in batches])


def _tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)  # nan when one side is constant (resamples: left out)


def _tau_statistics(inherited: np.ndarray, standalone: np.ndarray, resamples: int, seed: int) -> dict:
    """Bootstrap CI of Kendall tau (resampling test images and subnets) and the test-set noise ceiling.

    ``inherited`` and ``standalone``: (subnets, test images) boolean correctness matrices.
    """
    rng = np.random.default_rng(seed)
    n_nets, n_images = standalone.shape
    taus = []
    for _ in range(resamples):
        images = rng.integers(0, n_images, n_images)
        nets = rng.integers(0, n_nets, n_nets)
        taus.append(_tau(inherited[nets][:, images].mean(1), standalone[nets][:, images].mean(1)))
    p = standalone.mean(1)
    ceiling = [_tau(rng.binomial(n_images, p) / n_images, rng.binomial(n_images, p) / n_images)
               for _ in range(resamples)]
    return {
        "kendall_tau_ci95": [float(np.nanpercentile(taus, 2.5)), float(np.nanpercentile(taus, 97.5))],
        "bootstrap_resamples": resamples,
        "noise_ceiling_tau_mean": float(np.nanmean(ceiling)),
        "noise_ceiling_tau_ci95": [float(np.nanpercentile(ceiling, 2.5)), float(np.nanpercentile(ceiling, 97.5))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="Reuse this supernet checkpoint instead of training one.")
    parser.add_argument("--train-dir", type=Path, default=Path("/tmp/rnc-bench-supernet"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument(
        "--dataset", default="digits",
        help="digits (bundled), cifar10, cifar100 or imagefolder (files under --data-root; see docs/search.md).",
    )
    parser.add_argument("--data-root", type=Path, default=None, help="Dataset folder (cifar*, imagefolder).")
    parser.add_argument("--data-format", default="auto", help="cifar10: auto, torchvision or imagefolder.")
    parser.add_argument("--per-class", type=int, default=None, help="cifar10: seeded training images per class.")
    parser.add_argument("--test-per-class", type=int, default=None, help="cifar10: seeded test images per class.")
    parser.add_argument(
        "--device", default="cpu",
        help="Where subnets are evaluated (cpu: the 100 ms target; cuda for GPU figures). Training uses the GPU "
        "whenever torch sees one.",
    )
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument(
        "--batch-size", type=int, default=64, help="Supernet training batch (stand-alone training keeps 64)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--supernet-seed", type=int, default=None,
        help="Seed of the supernet training only (default --seed; the data subset and the picks keep --seed).",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--standalone", type=int, default=0, help="Subnets trained from scratch (Kendall tau).")
    parser.add_argument("--standalone-epochs", type=int, default=10)
    parser.add_argument(
        "--standalone-json", type=Path, nargs="+",
        help="Reuse stand-alone results from --out files of earlier runs (split runs are merged pick by pick).",
    )
    parser.add_argument("--only-standalone", action="store_true", help="Only train the stand-alone subnets.")
    parser.add_argument("--standalone-range", default=None, help="START:STOP, train only these picks (split runs).")
    parser.add_argument("--eval-repeats", type=int, default=10)
    parser.add_argument(
        "--calib-images", type=int, default=256,
        help="Calibration images for batch-norm recalibration of every evaluated subnet (the calib split: <= 512).",
    )
    parser.add_argument(
        "--train-subset", type=int, default=0,
        help="Train supernet and stand-alone subnets on this fixed seeded subset of the training split (0: all).",
    )
    parser.add_argument(
        "--test-rest", action="store_true",
        help="With --train-subset: the training images outside the subset join the test split (never trained on).",
    )
    parser.add_argument(
        "--standalone-seeds", type=int, default=1,
        help="Train every stand-alone subnet with this many seeds; the reference is their mean accuracy, and the "
        "tau between two seeds' rankings measures how reproducible stand-alone training itself is.",
    )
    parser.add_argument("--space", default="mbv3", help="Search space (default mbv3).")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="Space option, VALUE in JSON (e.g. max_stages=3, widths=[16,32,64]); repeatable.",
    )
    parser.add_argument(
        "--recipe", action="append", default=[], metavar="KEY=VALUE",
        help="Supernet training recipe option (rnc.search.supernet.recipe.SupernetRecipe: full_epochs, "
        "random_subnets, distill=inplace|none, kd_temperature, shrink=none|progressive, balance=none|stages, "
        "teacher=largest|per-stage); repeatable.",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="Bootstrap resamples for the tau CI.")
    parser.add_argument("--out", type=Path, help="Write the figures as JSON here.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rnc.search.datasets import DatasetError, load_dataset
    from rnc.search.spaces import get_space
    from rnc.search.supernet import SubnetEvaluator, load_manifest
    from rnc.search.supernet.recipe import RecipeError, SupernetRecipe
    from rnc.search.supernet.training import train_standalone, train_supernet

    try:
        recipe = SupernetRecipe.from_options(parse_key_values(args.recipe, flag="--recipe"))
    except (RecipeError, TypeError, ValueError) as exc:
        raise SystemExit(f"bench_supernet: --recipe: {exc}") from None

    try:
        cifar = {"data_format": args.data_format, "per_class": args.per_class, "test_per_class": args.test_per_class}
        splits = load_dataset(
            args.dataset, root=args.data_root, image_size=args.image_size, seed=args.seed,
            **(cifar if args.dataset == "cifar10" else {}),
        )
    except DatasetError as exc:
        raise SystemExit(f"bench_supernet: {exc}") from None
    if args.train_subset:
        splits = _subset_splits(splits, args.train_subset, args.seed, test_rest=args.test_rest)
    elif args.test_rest:
        raise SystemExit("--test-rest needs --train-subset")
    try:
        options = parse_key_values(args.option, flag="--option")
    except OptionError as exc:
        raise SystemExit(f"bench_supernet: {exc}") from None
    space = get_space(args.space, input_shape=splits.input_shape, **options)
    try:
        recipe.check_space(space)
    except RecipeError as exc:
        raise SystemExit(f"bench_supernet: --recipe: {exc}") from None
    figures: dict = {
        "space": args.space, "space_options": options, "threads": args.threads, "image_size": args.image_size,
        "train_images": len(splits.train), "test_images": len(splits.test), "recipe": recipe.changed(),
    }

    if not args.only_standalone:
        if args.checkpoint is None:
            wall, cpu = time.perf_counter(), time.process_time()
            supernet_seed = args.seed if args.supernet_seed is None else args.supernet_seed
            train_supernet(
                space, splits, epochs=args.epochs, seed=supernet_seed, out_dir=args.train_dir, lr=args.lr,
                progress=True, batch_size=args.batch_size, recipe=recipe,
            )
            figures["supernet_seed"] = supernet_seed
            figures["train_wall_s"] = time.perf_counter() - wall
            figures["train_cpu_s"] = time.process_time() - cpu
            args.checkpoint = args.train_dir
        manifest = load_manifest(args.checkpoint)
        figures["checkpoint"] = str(args.checkpoint)
        figures["manifest_metrics"] = manifest["metrics"]
        figures["epochs"] = manifest["epochs"]
        evaluator = SubnetEvaluator(args.checkpoint, device=args.device, splits=splits, calib_images=args.calib_images)
        figures["calib_images"] = sum(int(x.shape[0]) for x in evaluator.calib_batches)
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
        n_picks = len(genomes)
        per_seed: list = [None] * n_picks  # per pick: [accuracy per seed]
        correct: list = [None] * n_picks  # per pick: [per-test-image correctness string per seed]
        if args.standalone_json:  # merge split runs: for every pick, the first file that trained it
            for path in args.standalone_json:
                saved = json.loads(path.read_text())
                accs = saved.get("standalone_accuracy_per_seed") or [
                    None if a is None else [a] for a in saved["standalone_accuracy"]
                ]
                strings = saved.get("standalone_correct") or [None] * len(accs)
                if len(accs) != n_picks:
                    raise SystemExit(f"{path}: {len(accs)} picks, expected {n_picks} (same --standalone N?)")
                for i, (acc, text) in enumerate(zip(accs, strings, strict=True)):
                    if per_seed[i] is None and acc is not None:
                        per_seed[i] = acc
                        correct[i] = [text] if isinstance(text, str) else text
        else:
            from rnc.search.supernet.evaluate import _materialize

            channels_last = torch.channels_last
            test_batches = [(x.contiguous(memory_format=channels_last), y) for x, y in _materialize(splits.test, 512)]
            cpu = time.process_time()
            start, stop = (int(v) for v in (args.standalone_range or f"0:{n_picks}").split(":"))
            for i, genome in enumerate(genomes):
                if not start <= i < stop:
                    continue
                per_seed[i], correct[i] = [], []
                for seed in range(args.seed, args.seed + args.standalone_seeds):
                    model, acc = train_standalone(space, genome, splits, epochs=args.standalone_epochs, seed=seed)
                    per_seed[i].append(acc)
                    correct[i].append("".join("1" if c else "0" for c in _correct(model, test_batches)))
                    print(f"stand-alone {i + 1}/{n_picks} seed {seed} {space.key(genome)}: {acc:.4f}", flush=True)
            figures["standalone_cpu_s"] = time.process_time() - cpu
        figures["standalone_accuracy_per_seed"] = per_seed
        figures["standalone_correct"] = correct
        figures["standalone_accuracy"] = [None if a is None else float(np.mean(a)) for a in per_seed]
        keep = [a is not None for a in per_seed]  # picks not trained (split runs) are left out of the ranking
        genomes = [g for g, k in zip(genomes, keep, strict=True) if k]
        per_seed = [a for a in per_seed if a is not None]
        correct = [c for c in correct if c is not None]
        standalone = [float(np.mean(a)) for a in per_seed]
        seeds = min((len(a) for a in per_seed), default=0)
        if seeds >= 2 and len(per_seed) >= 2:
            pairs = [(a, b) for a in range(seeds) for b in range(a + 1, seeds)]
            seed_taus = [_tau([p[a] for p in per_seed], [p[b] for p in per_seed]) for a, b in pairs]
            figures["standalone_seed_to_seed_tau"] = float(np.mean(seed_taus))
            print(f"stand-alone seed-to-seed tau ({seeds} seeds, {len(per_seed)} subnets): {np.mean(seed_taus):.3f}")
        figures["standalone_epochs"] = args.standalone_epochs
        figures["genomes"] = [space.key(g) for g in genomes]
        figures["macs"] = [space.workload(g).total_macs for g in genomes]
        if not args.only_standalone:
            inherited = [evaluator.evaluate(g)["accuracy"] for g in genomes]
            figures["inherited_accuracy"] = inherited
            figures["kendall_tau"] = _tau(inherited, standalone)
            print(f"Kendall tau (inherited vs stand-alone, {len(genomes)} subnets): {figures['kendall_tau']:.3f}")
            if args.bootstrap and all(all(t is not None for t in row) for row in correct):
                inherited_matrix = np.stack([_correct(evaluator.subnet(g), evaluator.test_batches) for g in genomes])
                standalone_matrix = np.array(
                    [np.mean([[c == "1" for c in text] for text in row], axis=0) for row in correct]
                )
                figures.update(_tau_statistics(inherited_matrix, standalone_matrix, args.bootstrap, args.seed))
                print(
                    f"tau 95% CI {figures['kendall_tau_ci95']}, test-set noise ceiling "
                    f"{figures['noise_ceiling_tau_mean']:.3f} {figures['noise_ceiling_tau_ci95']}"
                )
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

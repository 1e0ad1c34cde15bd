"""Search quality: hypervolume against evaluations for NSGA-II, Bayesian (Optuna TPE) and random search.

Problem ``mbv3`` (default): the MobileNetV3 (RNC) space at ``--resolution`` (default 32; the embedded default
experiment uses 16 with a 10-epoch supernet) on scikit-learn's digits upsampled to the same size; objectives are the
supernet accuracy of the subnet (maximized), and its latency and energy compiled onto a crossbar budget of the RNC
hardware preset (``rnc.simulator.compile_workload``, strategy ``rnc``); one constraint, the network fits the
budget (violation ``(min_crossbars - budget) / budget``, as in the platform). Candidates that do not fit are not
sent to accuracy evaluation: they are told with the worst-case accuracy 0 and their violation. The supernet is
trained on first use and cached (``rnc.search.supernet.ensure_supernet``).

Problem ``zdt`` (development fallback, no training): discretized ZDT1 (Zitzler, Deb & Thiele 2000) over the same
genome shape as ``mbv3`` (36 genes x 3 choices), two objectives, no constraint.

Hypervolume: objectives are normalized with bounds shared by every run of the benchmark (accuracy 0..1; other
objectives the min/max over every feasible candidate found by any run), reference point 1.1 per objective; only
feasible candidates count. Each run asks batches of ``--batch`` genomes and tells them in ask order.

    python benchmarks/bench_search_quality.py                         # mbv3, 300 evaluations, seeds 0 1 2
    python benchmarks/bench_search_quality.py --resolution 16 --epochs 10   # supernet of the embedded default
    python benchmarks/bench_search_quality.py --problem zdt --json out.json
    python benchmarks/bench_search_quality.py --space imc-blocks --resolution 8 --option max_stages=3 \
        --option 'widths=[16,32,64]' --epochs 60 --budget 0 --objectives accuracy latency --searchers bayes random

The final hypervolume gets a Student-t 95% confidence interval over the seeds, and every searcher a paired
(same seed) difference to random search with its 95% CI.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rnc.options import OptionError, parse_key_values
from rnc.search.pareto import hypervolume_curve, normalize
from rnc.search.searchers import make_searcher

REF = 1.1
#: Objective name -> the compile summary field it reads.
OBJECTIVE_KEYS = {"accuracy": "accuracy", "latency": "latency_ns", "energy": "energy_pj"}


class ZdtProblem:
    """Discretized ZDT1 over ``n_genes`` genes of ``n_choices`` choices (both objectives minimized)."""

    name = "zdt"

    def __init__(self, n_genes: int = 36, n_choices: int = 3) -> None:
        self.n_choices = [n_choices] * n_genes
        self.objective_names = ["f1", "f2"]
        self.n_constraints = 0
        self.fixed_bounds: dict[int, tuple[float, float]] = {}
        self.evaluate_s = 0.0

    def describe(self) -> str:
        return f"discretized ZDT1, {len(self.n_choices)} genes x {self.n_choices[0]} choices"

    def evaluate(self, genomes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array(genomes, dtype=float) / (self.n_choices[0] - 1)
        f1 = x[:, 0]
        g = 1.0 + 9.0 * x[:, 1:].mean(axis=1)
        return np.stack([f1, g * (1.0 - np.sqrt(f1 / g))], axis=1), np.zeros((len(genomes), 0))


class Mbv3Problem:
    """Supernet accuracy (max) x compiled latency and/or energy (min), fits-the-budget constraint.

    ``space`` / ``options`` / ``dataset`` choose the supernet (default: ``mbv3`` on digits at ``resolution``);
    ``objectives`` any of ``accuracy``, ``latency``, ``energy`` (accuracy first); a budget of 0 means unlimited
    crossbars and no constraint.
    """

    name = "mbv3"

    def __init__(
        self,
        *,
        budget: int,
        epochs: int,
        cache_dir: str,
        resolution: int = 32,
        calib_images: int = 128,
        space: str = "mbv3",
        options: dict[str, Any] | None = None,
        dataset: str = "digits",
        data_root: str | None = None,
        objectives: Sequence[str] = ("accuracy", "latency", "energy"),
        checkpoint: str | None = None,
    ) -> None:
        import torch

        from rnc.search.spaces import get_space
        from rnc.search.supernet import SubnetEvaluator, ensure_supernet
        from rnc.simulator import HardwareConfig

        torch.set_num_threads(1)
        options = dict(options or {})
        if space == "mbv3":
            options = {"resolution": resolution, **options}
        else:
            options = {"input_shape": [3, resolution, resolution], **options}
        self.space_name, self.dataset = space, dataset
        self.space = get_space(space, **options)
        self.n_choices = self.space.n_choices
        unknown = [o for o in objectives if o not in OBJECTIVE_KEYS]
        if unknown or objectives[0] != "accuracy":
            raise SystemExit(f"--objectives: accuracy first, then any of latency, energy; got {list(objectives)}")
        self.objectives = list(objectives)
        self.objective_names = ["-accuracy", *(OBJECTIVE_KEYS[o] for o in objectives[1:])]
        self.n_constraints = 1 if budget > 0 else 0
        self.fixed_bounds = {0: (-1.0, 0.0)}
        self.resolution = resolution
        self.calib_images = calib_images
        self.budget = budget
        self.hw = HardwareConfig.preset("rnc").with_updates(crossbars=budget)
        if checkpoint is None:
            checkpoint = ensure_supernet(
                space, options, dataset, epochs=epochs, seed=0, cache_dir=cache_dir, image_size=resolution,
                data_root=data_root,
            )
        self.checkpoint = Path(checkpoint)
        self.evaluator = SubnetEvaluator(checkpoint, device="cpu", calib_images=calib_images, data_root=data_root)
        if tuple(self.evaluator.space.n_choices) != tuple(self.n_choices):
            raise SystemExit(f"--checkpoint {checkpoint}: its space differs from --space/--option/--resolution")
        self._cache: dict[tuple[int, ...], tuple[list[float], list[float]]] = {}
        self.evaluate_s = 0.0
        self.accuracy_evaluations = 0

    def describe(self) -> str:
        budget = f"{self.budget} crossbars" if self.budget else "unlimited crossbars"
        return (
            f"{self.space_name} (resolution {self.resolution}, {len(self.n_choices)} genes, "
            f"{self.space.cardinality:.3g} networks) on {self.dataset}, "
            f"supernet {self.checkpoint.name}, RNC preset with {budget}, objectives {', '.join(self.objectives)}"
            + (f", batch-norm recalibration on {self.calib_images} images" if self.calib_images != 128 else "")
        )

    def _one(self, genome: np.ndarray) -> tuple[list[float], list[float]]:
        from rnc.simulator import compile_workload

        key = tuple(int(v) for v in genome)
        if key not in self._cache:
            summary = compile_workload(self.space.workload(genome), self.hw, "rnc", seed=0).summary()
            violation = 0.0
            if self.budget:
                need = float(summary["min_crossbars"])
                violation = (need - self.budget) / self.budget
                violation = max(violation, 1.0 / self.budget) if not summary["feasible"] else min(violation, 0.0)
            accuracy = 0.0  # worst case for candidates that are not evaluated
            if violation <= 0:
                accuracy = float(self.evaluator.evaluate(genome)["accuracy"])
                self.accuracy_evaluations += 1
            f = [-accuracy, *(float(summary[OBJECTIVE_KEYS[o]]) for o in self.objectives[1:])]
            self._cache[key] = (f, [violation] if self.budget else [])
        return self._cache[key]

    def evaluate(self, genomes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        rows = [self._one(g) for g in genomes]
        self.evaluate_s += time.perf_counter() - t0
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows]).reshape(len(rows), self.n_constraints)


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean of ``values`` (one value per seed); a point for one value."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return (float(x.mean()), float(x.mean()))
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return (float(x.mean() - half), float(x.mean() + half))


def parse_searcher(spec: str) -> tuple[str, dict[str, Any]]:
    """``"bayes"`` or ``"bayes:n_ei_candidates=96,encoding=categorical"`` -> (name, options); values are JSON when
    they parse as JSON, strings otherwise."""
    name, _, rest = spec.partition(":")
    return name, parse_key_values(filter(None, rest.split(",")), flag=f"--searchers {name}:")


def run_search(problem: Any, spec: str, seed: int, evaluations: int, batch: int, progress: Progress, task: Any):
    name, options = parse_searcher(spec)
    if name == "nsga2":
        options.setdefault("pop_size", batch)
    searcher = make_searcher(
        name, problem.n_choices, len(problem.objective_names), seed=seed, n_constraints=problem.n_constraints, **options
    )
    F, G = [], []
    searcher_s = 0.0
    while len(F) < evaluations:
        t0 = time.perf_counter()
        genomes = searcher.ask(min(batch, evaluations - len(F)))
        searcher_s += time.perf_counter() - t0
        f, g = problem.evaluate(genomes)
        t0 = time.perf_counter()
        searcher.tell(genomes, f, g if problem.n_constraints else None)
        searcher_s += time.perf_counter() - t0
        F.extend(f.tolist())
        G.extend(g.tolist())
        progress.advance(task, len(genomes))
    return np.array(F), np.array(G).reshape(len(F), problem.n_constraints), searcher_s


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", choices=["mbv3", "zdt"], default="mbv3")
    parser.add_argument(
        "--searchers",
        nargs="+",
        default=["nsga2", "bayes", "random"],
        help="searcher names, optionally with options: bayes:n_ei_candidates=96,encoding=categorical",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--budget", type=int, default=96, help="crossbar budget (mbv3)")
    parser.add_argument("--epochs", type=int, default=3, help="supernet training epochs (mbv3)")
    parser.add_argument(
        "--resolution",
        type=int,
        default=32,
        help="input resolution of the mbv3 space and image size of digits (mbv3; the embedded default uses 16)",
    )
    parser.add_argument("--cache-dir", default="rnc-runs/supernets", help="supernet checkpoint cache (mbv3)")
    parser.add_argument(
        "--checkpoint", default=None, help="reuse this supernet checkpoint (its dataset subsets come from its manifest)"
    )
    parser.add_argument(
        "--calib-images", type=int, default=128,
        help="calibration images for the batch-norm recalibration of every evaluated subnet (1-512; default 128, the "
        "digits figures'; bench_supernet.py uses 256, which CIFAR-10 supernets need)",
    )
    parser.add_argument("--space", default="mbv3", help="search space of the supernet problem (mbv3, nax, imc-blocks)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="space option, VALUE in JSON (e.g. max_stages=3, widths=[16,32,64]); repeatable",
    )
    parser.add_argument("--dataset", default="digits", help="dataset of the supernet problem (digits, cifar10, ...)")
    parser.add_argument("--data-root", default=None, help="dataset folder (cifar10: the torchvision or JPEG copy)")
    parser.add_argument(
        "--objectives", nargs="+", default=["accuracy", "latency", "energy"],
        help="accuracy first, then latency and/or energy (e.g. --objectives accuracy energy)",
    )
    parser.add_argument("--json", type=Path, help="write curves and summary here")
    parser.add_argument(
        "--runs-file",
        type=Path,
        help="JSON-lines file of finished runs: each run is appended when done, runs already there are reused "
        "(resume an interrupted benchmark with the same arguments)",
    )
    args = parser.parse_args(argv)
    console = Console()

    if not 1 <= args.calib_images <= 512:
        parser.error(f"--calib-images must be between 1 and 512 (the calibration split), got {args.calib_images}")
    if args.problem == "mbv3":
        options = parse_key_values(args.option, flag="--option")
        problem: Any = Mbv3Problem(
            budget=args.budget, epochs=args.epochs, cache_dir=args.cache_dir, resolution=args.resolution,
            space=args.space, options=options, dataset=args.dataset, data_root=args.data_root,
            objectives=args.objectives, checkpoint=args.checkpoint, calib_images=args.calib_images,
        )
    else:
        problem = ZdtProblem()
    console.print(f"[bold]problem[/]: {problem.describe()}")

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.searchers}
    done: dict[tuple[str, int], dict[str, Any]] = {}
    signature = [problem.describe(), args.evaluations, args.batch]
    if args.runs_file and args.runs_file.exists():
        for line in args.runs_file.read_text().splitlines():
            row = json.loads(line)
            if row["signature"] == signature:
                done[(row["searcher"], row["seed"])] = row
    total = len(args.searchers) * len(args.seeds) * args.evaluations
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    started = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("evaluations", total=total)
        for seed in args.seeds:
            for name in args.searchers:
                progress.update(task, description=f"{name} seed {seed}")
                if (name, seed) in done:
                    row = done[(name, seed)]
                    F, G, searcher_s = np.array(row["F"]), np.array(row["G"]), row["searcher_s"]
                    G = G.reshape(len(F), problem.n_constraints)
                    progress.advance(task, args.evaluations)
                else:
                    F, G, searcher_s = run_search(problem, name, seed, args.evaluations, args.batch, progress, task)
                    if args.runs_file:
                        row = {
                            "signature": signature,
                            "searcher": name,
                            "seed": seed,
                            "F": F.tolist(),
                            "G": G.tolist(),
                            "searcher_s": searcher_s,
                        }
                        with args.runs_file.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                    console.log(f"{name} seed {seed}: done, searcher {searcher_s:.1f} s")
                runs[name].append({"seed": seed, "F": F, "G": G, "searcher_s": searcher_s})
    wall_s = time.perf_counter() - started

    # shared normalization bounds: every feasible candidate of every run
    all_f = np.concatenate([r["F"] for rs in runs.values() for r in rs])
    all_g = np.concatenate([r["G"] for rs in runs.values() for r in rs])
    ok = np.all(all_g <= 0, axis=1) & np.all(np.isfinite(all_f), axis=1)
    ideal, nadir = all_f[ok].min(axis=0), all_f[ok].max(axis=0)
    for j, (lo, hi) in problem.fixed_bounds.items():
        ideal[j], nadir[j] = lo, hi
    ref = [REF] * all_f.shape[1]
    marks = [m for m in (20, 50, 100, 150, 200, 300, 500, 1000) if m <= args.evaluations]
    if args.evaluations not in marks:
        marks.append(args.evaluations)

    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        curves = np.array([hypervolume_curve(normalize(r["F"], ideal, nadir), ref, r["G"]) for r in rs])
        feasible = [float(np.mean(np.all(r["G"] <= 0, axis=1))) for r in rs]
        summary[name] = {
            "curves": curves,
            "at": {m: (float(curves[:, m - 1].mean()), float(curves[:, m - 1].std())) for m in marks},
            "final": curves[:, -1].tolist(),
            "final_ci95": confidence_interval(curves[:, -1]),
            "feasible_share": float(np.mean(feasible)),
            "searcher_s": float(np.mean([r["searcher_s"] for r in rs])),
        }
        # two-objective fronts inside a search of more objectives: objective 0 (accuracy) against each other one
        if all_f.shape[1] > 2:
            projections = {}
            for j in range(1, all_f.shape[1]):
                cols = [0, j]
                finals = [
                    float(hypervolume_curve(normalize(r["F"][:, cols], ideal[cols], nadir[cols]), ref[:2], r["G"])[-1])
                    for r in rs
                ]
                projections[problem.objective_names[j]] = {"final": finals, "final_ci95": confidence_interval(finals)}
            summary[name]["projections"] = projections

    table = Table(title=f"hypervolume (normalized, ref {REF}) against evaluations, mean ± std over seeds {args.seeds}")
    table.add_column("searcher")
    for m in marks:
        table.add_column(str(m), justify="right")
    table.add_column("final per seed", justify="right")
    table.add_column("final 95% CI", justify="right")
    table.add_column("feasible", justify="right")
    table.add_column("searcher s/run", justify="right")
    for name, s in summary.items():
        table.add_row(
            name,
            *[f"{s['at'][m][0]:.4f} ± {s['at'][m][1]:.4f}" for m in marks],
            " ".join(f"{v:.4f}" for v in s["final"]),
            "[{:.4f}, {:.4f}]".format(*s["final_ci95"]),
            f"{100 * s['feasible_share']:.0f}%",
            f"{s['searcher_s']:.1f}",
        )
    console.print(table)
    for name, s in summary.items():
        for objective, pr in s.get("projections", {}).items():
            lo, hi = pr["final_ci95"]
            console.print(
                f"{name}: accuracy x {objective} front, final hypervolume per seed "
                f"{' '.join(f'{v:.4f}' for v in pr['final'])}, mean {np.mean(pr['final']):.4f}, "
                f"95% CI [{lo:.4f}, {hi:.4f}]"
            )
    verdicts = {}
    if "random" in summary:
        base = np.mean(summary["random"]["final"])
        for name in summary:
            if name != "random":
                verdicts[name] = bool(np.mean(summary[name]["final"]) > base)
                if len(summary[name]["final"]) == len(summary["random"]["final"]) > 1:
                    diff = np.array(summary[name]["final"]) - np.array(summary["random"]["final"])
                    summary[name]["paired_diff_vs_random_ci95"] = confidence_interval(diff)
                    lo, hi = summary[name]["paired_diff_vs_random_ci95"]
                    console.print(
                        f"{name} - random, paired by seed: mean {diff.mean():+.4f}, 95% CI [{lo:+.4f}, {hi:+.4f}]"
                    )
                console.print(
                    f"{name}: final mean {np.mean(summary[name]['final']):.4f} vs random {base:.4f} -> "
                    f"{'beats' if verdicts[name] else 'does NOT beat'} random "
                    f"(ratio {np.mean(summary[name]['final']) / base:.3f})"
                )
    extra = ""
    if isinstance(problem, Mbv3Problem):
        extra = f", {problem.accuracy_evaluations} accuracy evaluations, evaluation {problem.evaluate_s:.0f} s"
    console.print(f"wall {wall_s:.0f} s{extra}")
    result = {
        "problem": problem.describe(),
        "objectives": problem.objective_names,
        "ideal": ideal.tolist(),
        "nadir": nadir.tolist(),
        "marks": marks,
        "wall_s": wall_s,
        "verdicts": verdicts,
        "searchers": {
            name: {**{k: v for k, v in s.items() if k != "curves"}, "curves": s["curves"].tolist()}
            for name, s in summary.items()
        },
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    try:
        main()
    except OptionError as exc:
        raise SystemExit(f"bench_search_quality: {exc}") from None

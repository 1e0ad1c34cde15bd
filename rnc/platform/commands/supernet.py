"""``rnc-platform supernet train|eval``: train a weight-sharing supernet; measure any of its subnets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rnc.options import parse_key_values

GENOME_HELP = (
    "largest, smallest, random (seeded by --seed), a JSON list of choice indices, or a JSON object of gene "
    "values (see `rnc-platform spaces --json`)."
)


def register(app: typer.Typer) -> None:
    supernet_app = typer.Typer(
        help="Train a weight-sharing supernet and evaluate its subnets.", no_args_is_help=True, add_completion=False
    )
    app.add_typer(supernet_app, name="supernet")

    @supernet_app.command("train")
    def train_command(
        space: str = typer.Option("mbv3", "--space", help="Search space (see `rnc-platform spaces`)."),
        dataset: str = typer.Option("digits", "--dataset", help="digits, cifar10, cifar100 or imagefolder."),
        epochs: int = typer.Option(..., "--epochs", min=1, help="Training epochs."),
        out: Path = typer.Option(..., "--out", help="Checkpoint directory to write (weights + manifest.json)."),
        image_size: int | None = typer.Option(None, "--image-size", min=8, help="Input resolution (digits: 32)."),
        data_root: Path | None = typer.Option(None, "--data-root", help="Dataset folder (cifar*, imagefolder)."),
        download: bool = typer.Option(False, "--download", help="Download cifar10/cifar100 when missing."),
        data_format: str = typer.Option(
            "auto", "--data-format", help="cifar10 source: auto, torchvision (official files) or imagefolder."
        ),
        per_class: int | None = typer.Option(
            None, "--per-class", min=1, help="cifar10: seeded subset of N training images per class."
        ),
        test_per_class: int | None = typer.Option(
            None, "--test-per-class", min=1, help="cifar10: seeded subset of N test images per class."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of weights, data order, augmentation, subnets."),
        batch_size: int = typer.Option(64, "--batch-size", min=2, help="Batch size per worker."),
        lr: float = typer.Option(0.05, "--lr", min=0.0, help="Peak learning rate (SGD, cosine decay)."),
        options: list[str] = typer.Option([], "--option", help="Space option KEY=VALUE (repeatable)."),
        recipe: list[str] = typer.Option(
            [], "--recipe",
            help="Training recipe option KEY=VALUE (repeatable): distill=inplace|none, kd_temperature=T, "
            "shrink=none|progressive, full_epochs=N, random_subnets=N, balance=none|stages, "
            "teacher=largest|per-stage, split=none|stages, split_epoch=N (docs/search.md).",
        ),
        workers: int = typer.Option(1, "--workers", min=1, help="Ray Train workers (1: a plain local process)."),
        gpu: bool = typer.Option(False, "--gpu", help="Train on GPUs (one per worker, through Ray Train)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress display."),
    ) -> None:
        """Train SPACE's supernet on DATASET (sandwich rule, in-place distillation) into --out."""
        from rnc.errors import check_names
        from rnc.platform.storage import check_writable_dir
        from rnc.platform.training import train_supernet_job
        from rnc.search.datasets import DATASETS, check_dataset_files
        from rnc.search.spaces import SPACES, UnknownSpaceError, get_space
        from rnc.search.supernet.checkpoint import SupernetSpec, load_manifest

        check_names("search space", [space], sorted(SPACES), where="--space", error=UnknownSpaceError)
        check_names("dataset", [dataset], DATASETS, where="--dataset")
        space_options = parse_key_values(options, flag="--option", example="width_mult=0.5")
        recipe_options = parse_key_values(recipe, flag="--recipe", example="random_subnets=8")
        from rnc.search.supernet.recipe import RecipeError, SupernetRecipe

        try:
            chosen_recipe = SupernetRecipe.from_options(recipe_options)
        except (RecipeError, TypeError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--recipe") from None
        chosen_space = get_space(space, **space_options)  # unknown or bad options fail here, before any training
        try:
            chosen_recipe.check_space(chosen_space)
            chosen_recipe.check_epochs(epochs)
        except RecipeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--recipe") from None
        check_dataset_files(dataset, root=data_root, download=download, data_format=data_format)
        check_writable_dir(out, "--out")
        spec = SupernetSpec(
            space=space, space_options=space_options, dataset=dataset, image_size=image_size,
            data_root=None if data_root is None else str(data_root), epochs=epochs, seed=seed,
            batch_size=batch_size, lr=lr, download=download, data_format=data_format, per_class=per_class,
            test_per_class=test_per_class, recipe=recipe_options,
        )
        train_supernet_job(spec, out, num_workers=workers, use_gpu=gpu, progress=not quiet)
        manifest = load_manifest(out)
        console = Console()
        table = Table(title=f"supernet {space} on {dataset}: {out}", show_edge=False)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in sorted(manifest["metrics"].items()):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        console.print(table)

    @supernet_app.command("eval")
    def eval_command(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Checkpoint directory (supernet train --out)."),
        genome: str = typer.Option("largest", "--genome", help=GENOME_HELP),
        hardware: str | None = typer.Option(
            None, "--hardware", help="Also measure accuracy on crossbars: a preset (`hardware list`) or a YAML file."
        ),
        set_values: list[str] = typer.Option([], "--set", help="Override a hardware field, KEY=VALUE (repeatable)."),
        seed: int = typer.Option(0, "--seed", help="Seed of --genome random and of the analog non-idealities."),
        data_root: Path | None = typer.Option(None, "--data-root", help="Dataset folder, if it moved."),
        device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
        json_out: bool = typer.Option(False, "--json", help='Print {"accuracy": ..., "hw_accuracy": ...}.'),
    ) -> None:
        """Accuracy of one subnet: inherited weights, batch-norm recalibrated, top-1 on the held-out test split."""
        import numpy as np

        from rnc.search.spaces import get_space
        from rnc.search.supernet.checkpoint import load_manifest, read_weights
        from rnc.search.supernet.evaluate import SubnetEvaluator, resolve_genome
        from rnc.simulator import HardwareConfig

        hw = None
        if hardware is not None:
            hw = HardwareConfig.resolve(hardware)
            if set_values:
                hw = hw.set_values(list(set_values))
        if device is not None and device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise typer.BadParameter(f"{device!r}: expected cpu, cuda or cuda:N", param_hint="--device")
        # everything the user gave is checked before the data is loaded
        manifest = load_manifest(checkpoint)
        chosen = resolve_genome(
            get_space(manifest["space"], **manifest["space_options"]), genome, np.random.default_rng(seed)
        )
        read_weights(checkpoint)
        evaluator = SubnetEvaluator(checkpoint, device=device, data_root=data_root)
        result = evaluator.evaluate(chosen, hw=hw, seed=seed)
        if json_out:
            typer.echo(json.dumps({"accuracy": result["accuracy"], "hw_accuracy": result["hw_accuracy"]}))
            return
        console = Console()
        console.print(f"[bold]{evaluator.space.name}[/] subnet {evaluator.space.key(chosen)}")
        console.print(f"  genes: {json.dumps(evaluator.space.decode(chosen), default=str)}")
        console.print(f"  accuracy     {result['accuracy']:.4f}  (top-1, {evaluator.test_size} test images)")
        if result["hw_accuracy"] is not None:
            console.print(f"  hw_accuracy  {result['hw_accuracy']:.4f}  ({hardware}, seed {seed})")

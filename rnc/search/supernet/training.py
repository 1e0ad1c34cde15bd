"""Framework-free supernet training: sandwich rule with in-place distillation.

Schedule (once-for-all, Cai et al. ICLR 2020; BigNAS, Yu et al. ECCV 2020):

1. ``full_epochs`` (default a quarter of ``epochs``) train the largest subnet alone, as once-for-all trains
   the full network first;
2. every block's middle channels are then sorted by importance (:meth:`sort_channels` of the supernet, when
   it has one: L1 norm of the consumer's weights), so the first channels that small expand ratios keep are
   the most important ones;
3. the remaining epochs follow the *sandwich rule*: every step accumulates the gradients of the largest
   subnet (cross-entropy with label smoothing 0.1 on the labels), the smallest and ``random_subnets`` random
   ones (soft cross-entropy to the largest subnet's detached predictions: in-place distillation), then takes
   one optimizer step. ``random_subnets`` defaults to the space's ``supernet_random_subnets`` (2; 4 for
   ``imc-blocks``, whose paths share less).

A :class:`~rnc.search.supernet.recipe.SupernetRecipe` changes this: the students learn the labels instead of
the teacher (``distill="none"``) or a softened teacher (``kd_temperature``), and with ``shrink="progressive"``
the sandwich samples only the choices that once-for-all's progressive shrinking has opened by that epoch
(:class:`~rnc.search.supernet.recipe.ShrinkSchedule`: kernel/block, then depth, then width); channels are then
sorted when the width dimension opens rather than when the sandwich starts. With ``balance="stages"``
(:class:`~rnc.search.supernet.recipe.StageSandwich`, spaces with a ``num_stages`` gene) the step also trains
the largest and smallest subnet of every stage count and balances the random subnets' stage counts; with
``teacher="per-stage"`` the largest subnet of each stage count learns the labels and teaches the students
with that many stages (:func:`plan_step`, :func:`train_step`). With ``split="stages"`` the supernet is a
:class:`~rnc.search.supernet.split.StageSplitSupernet`, split into one part per stage count at the start of
epoch ``recipe.split_start(...)`` (few-shot NAS).

Optimizer: SGD, Nesterov momentum 0.9, weight decay ``weight_decay`` on conv/linear weights only, cosine
learning-rate decay per step after a one-epoch linear warm-up. Randomness (weights, data order,
augmentation, sampled subnets) follows ``seed``.

The loop imports no distributed framework. Inside a Ray Train worker (or any ``torch.distributed`` job) the
caller passes ``prepare_model`` (e.g. ``ray.train.torch.prepare_model`` with ``find_unused_parameters``: a
subnet leaves the rest of the supernet unused) and ``prepare_data_loader`` (e.g.
``ray.train.torch.prepare_data_loader``) and ``device``; every rank samples the same subnets (same
``seed``), only rank 0 shows progress and writes the checkpoint. ``report(metrics)`` is called after every
epoch on every rank (Ray Train's ``ray.train.report`` must be called by all workers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.utils.data import DataLoader

import rnc
from rnc.search.device import select_device
from rnc.search.supernet.recipe import ShrinkSchedule, StageSandwich, SupernetRecipe, warm_start_epochs
from rnc.search.supernet.split import build_supernet_for


@dataclass
class TrainResult:
    """What :func:`train_supernet` returns: the trained supernet, its metrics and where it was saved."""

    supernet: nn.Module
    metrics: dict[str, Any]
    checkpoint_dir: Path | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_weight = name == "weight" and param.dim() > 1
            (decay if is_weight else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def _clip_grad_norm(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Scale gradients so their global L2 norm is at most ``max_norm`` (as ``nn.utils.clip_grad_norm_``)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)


def _soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def student_loss(
    logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, recipe: SupernetRecipe
) -> torch.Tensor:
    """Loss of one smaller subnet of a sandwich step: ``logits`` (N, classes) against the teacher's detached
    ``teacher_logits`` (N, classes) with ``recipe.distill == "inplace"`` (soft cross-entropy at temperature
    ``T``, scaled by ``T ** 2``: Hinton et al. 2015), else against ``labels`` (N,) with label smoothing 0.1."""
    if recipe.distill == "none":
        return F.cross_entropy(logits, labels, label_smoothing=0.1)
    t = recipe.kd_temperature
    target = F.softmax(teacher_logits.detach() / t, dim=1)
    return _soft_cross_entropy(logits / t, target) * (t * t)


@dataclass(frozen=True)
class StepPlan:
    """The subnets of one training step: ``teachers`` learn the labels (``teachers[0]`` is the largest subnet,
    whose logits the step reports); ``students[i]`` learns from ``teachers[teacher_of[i]]`` (:func:`student_loss`)."""

    teachers: list[np.ndarray]
    students: list[np.ndarray] = field(default_factory=list)
    teacher_of: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        """How many subnets the step runs forward and backward (teachers and students)."""
        return len(self.teachers) + len(self.students)


def plan_step(
    schedule: ShrinkSchedule,
    stages: StageSandwich | None,
    recipe: SupernetRecipe,
    rng: np.random.Generator,
    epoch: int,
    random_subnets: int,
) -> StepPlan:
    """The subnets of one sandwich step at ``epoch``.

    Without stage balance (``stages is None``): the largest subnet teaches the smallest one allowed at ``epoch``
    and ``random_subnets`` random ones (drawn from ``rng`` exactly as before the recipe options existed). With
    a :class:`~rnc.search.supernet.recipe.StageSandwich`: the largest and smallest subnet of every stage count
    and ``random_subnets`` random ones with balanced stage counts; with ``recipe.teacher == "per-stage"`` the
    largest subnet of every stage count learns the labels and teaches the students with that many stages.
    """
    largest = schedule.space.largest()
    if stages is None:
        students = [schedule.smallest(epoch)] + [schedule.sample(rng, epoch) for _ in range(random_subnets)]
        return StepPlan([largest], students, [0] * len(students))
    randoms = stages.sample(rng, random_subnets)
    if recipe.teacher == "per-stage":
        # teachers[0]: the largest (all stages); teachers[n + 1]: the largest with n + 1 stages, n + 1 < S
        top = stages.n_stage_counts - 1
        teachers = [largest, *stages.largest[:top]]
        students = stages.smallest + randoms
        index = [0 if stages.stage_index(g) == top else stages.stage_index(g) + 1 for g in students]
        return StepPlan(teachers, students, index)
    students = stages.largest[:-1] + stages.smallest + randoms
    return StepPlan([largest], students, [0] * len(students))


def train_step(
    model: nn.Module, supernet: nn.Module, images: torch.Tensor, labels: torch.Tensor, plan: StepPlan,
    recipe: SupernetRecipe,
) -> torch.Tensor:
    """Accumulate the gradients of one step: every teacher of ``plan`` on the labels (cross-entropy, label
    smoothing 0.1), then every student against its teacher's detached logits (:func:`student_loss`); returns
    the first teacher's (the largest subnet's) logits, detached. The caller zeroes the gradients before and
    steps the optimizer after."""
    teacher_logits = []
    for genome in plan.teachers:
        supernet.set_active(genome)
        logits = model(images)
        F.cross_entropy(logits, labels, label_smoothing=0.1).backward()
        teacher_logits.append(logits.detach())
    for genome, teacher in zip(plan.students, plan.teacher_of, strict=True):
        supernet.set_active(genome)
        student_loss(model(images), labels, teacher_logits[teacher], recipe).backward()
    return teacher_logits[0]


def train_supernet(
    space,
    splits,
    *,
    epochs: int,
    seed: int = 0,
    out_dir: str | Path | None = None,
    batch_size: int = 64,
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    full_epochs: int | None = None,
    random_subnets: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    report: Callable[[dict[str, Any]], None] | None = None,
    prepare_model: Callable[[nn.Module], nn.Module] | None = None,
    prepare_data_loader: Callable[[DataLoader], DataLoader] | None = None,
    manifest_extra: dict[str, Any] | None = None,
    recipe: SupernetRecipe | None = None,
) -> TrainResult:
    """Train ``space``'s supernet on ``splits.train``; with ``out_dir``, write a checkpoint there.

    ``recipe`` (:class:`~rnc.search.supernet.recipe.SupernetRecipe`, default: the plain sandwich rule with
    in-place distillation) chooses distillation and progressive shrinking; ``full_epochs`` and
    ``random_subnets``, when given, override the recipe's.

    After training, the largest and smallest subnets are measured (batch-norm recalibrated on ``calib``,
    top-1 on ``test``) and written to the manifest's ``metrics`` with the training time and throughput.
    """
    from rnc.search.supernet.checkpoint import save_checkpoint
    from rnc.search.supernet.evaluate import _materialize, recalibrate_batchnorm, top1_accuracy

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (batch-norm), got {batch_size}")
    (recipe or SupernetRecipe()).check_space(space)  # RecipeError (a ValueError): balance=stages needs num_stages
    if tuple(splits.input_shape) != tuple(space.input_shape):
        raise ValueError(
            f"dataset input shape {tuple(splits.input_shape)} differs from space {space.name!r}'s "
            f"{tuple(space.input_shape)}; build the space with input_shape={tuple(splits.input_shape)}"
        )
    if splits.num_classes != space.num_classes:
        raise ValueError(f"dataset has {splits.num_classes} classes, space {space.name!r} {space.num_classes}")
    recipe = recipe or SupernetRecipe()
    full_epochs = warm_start_epochs(recipe.full_epochs if full_epochs is None else full_epochs, epochs)
    random_subnets = recipe.random_subnets if random_subnets is None else random_subnets
    if random_subnets is None:
        random_subnets = int(getattr(space, "supernet_random_subnets", 2))
    if random_subnets < 0:
        raise ValueError(f"random_subnets must be >= 0, got {random_subnets}")
    device = select_device(device)
    rank = _rank()
    show = progress and rank == 0

    torch.manual_seed(seed)
    arch_rng = np.random.default_rng(seed)
    split_at = recipe.split_start(epochs, full_epochs)  # RecipeError before any work when it is never reached
    supernet = build_supernet_for(space, recipe).to(device, memory_format=torch.channels_last)  # ~3x on CPU
    model = prepare_model(supernet) if prepare_model else supernet
    loader = DataLoader(
        splits.train, batch_size=batch_size, shuffle=True, drop_last=len(splits.train) > batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    if prepare_data_loader:
        loader = prepare_data_loader(loader)
    steps_per_epoch = len(loader)
    total_steps = epochs * steps_per_epoch
    warmup_steps = steps_per_epoch
    optimizer = torch.optim.SGD(_parameter_groups(supernet, weight_decay), lr=lr, momentum=0.9, nesterov=True)

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        progress_frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * lr * (1 + math.cos(math.pi * progress_frac))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step) / lr)
    parameters = list(supernet.parameters())
    largest = space.largest()
    schedule = ShrinkSchedule(space, epochs=epochs, full_epochs=full_epochs, progressive=recipe.shrink == "progressive")
    stages = StageSandwich(space) if recipe.balance == "stages" else None
    subnets_per_step = plan_step(schedule, stages, recipe, np.random.default_rng(0), full_epochs, random_subnets).size
    sort_at = next((p.start for p in schedule.phases if p.dimension == "width"), full_epochs)
    history: list[dict[str, float]] = []
    images_seen = 0
    started, cpu_started = time.perf_counter(), time.process_time()

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]supernet[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(f"{space.name}", total=total_steps, status="")
        for epoch in range(epochs):
            sandwich = epoch >= full_epochs
            if epoch == split_at:
                supernet.split()
            if sandwich and epoch == sort_at and hasattr(supernet, "sort_channels"):
                supernet.sort_channels(optimizer)
            if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for images, labels in loader:
                images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                labels = labels.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                plan = (
                    plan_step(schedule, stages, recipe, arch_rng, epoch, random_subnets)
                    if sandwich else StepPlan([largest])
                )
                logits = train_step(model, supernet, images, labels, plan, recipe)
                loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
                _clip_grad_norm(parameters, 5.0)
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * len(labels)
                correct += int((logits.detach().argmax(1) == labels).sum())
                seen += len(labels)
                bar.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {loss_sum / seen:.3f}")
            images_seen += seen
            metrics = {
                "epoch": epoch + 1, "train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen),
                "lr": scheduler.get_last_lr()[0], "phase": schedule.phase_name(epoch),
            }
            history.append(metrics)
            if show and not bar.console.is_terminal:  # a file or pipe gets one line per epoch
                elapsed = time.perf_counter() - started
                bar.console.print(
                    f"supernet {space.name}: epoch {epoch + 1}/{epochs}, loss {metrics['train_loss']:.3f}, "
                    f"{elapsed:.0f} s elapsed, about {elapsed / (epoch + 1) * (epochs - epoch - 1):.0f} s left"
                )
            if report is not None:
                report(dict(metrics))
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started  # this process's CPU time: robust to a shared machine

    supernet.eval()
    calib = [x.to(device, memory_format=torch.channels_last) for x, _ in _materialize(splits.calib, 256, 512)]
    test = [(x.to(device, memory_format=torch.channels_last), y.to(device)) for x, y in _materialize(splits.test, 512)]
    final: dict[str, Any] = {
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "torch_threads": torch.get_num_threads(),
        "train_images_per_second": images_seen * (1 + (subnets_per_step - 1) * (epochs - full_epochs) / epochs)
        / max(train_seconds, 1e-9),
        "final_train_loss": history[-1]["train_loss"],
    }
    for label, genome in (("largest", largest), ("smallest", space.smallest())):
        subnet = supernet.extract(genome).to(device, memory_format=torch.channels_last)
        subnet = recalibrate_batchnorm(subnet, calib)
        final[f"{label}_test_accuracy"] = top1_accuracy(subnet, test)
    supernet.set_active(largest)
    checkpoint_dir = None
    if out_dir is not None and rank == 0:
        options = getattr(space, "options", None) or {
            "input_shape": list(space.input_shape), "num_classes": space.num_classes,
        }
        manifest = {
            "space": space.name, "space_options": options, "dataset": getattr(splits, "config", {}),
            "epochs": epochs, "seed": seed,
            "training": {
                "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "full_epochs": full_epochs,
                "random_subnets": random_subnets,
                "rule": "sandwich+inplace-distillation" if recipe.distill == "inplace" else "sandwich",
                "subnets_per_step": subnets_per_step,
                "recipe": {**asdict(recipe), "full_epochs": full_epochs, "random_subnets": random_subnets},
                "shrink_phases": [asdict(p) for p in schedule.phases],
                "world_size": torch.distributed.get_world_size() if _distributed() else 1,
                "device": str(device),
            },
            "metrics": final, "history": history, "package_version": rnc.__version__,
            **(manifest_extra or {}),
        }
        checkpoint_dir = save_checkpoint(out_dir, supernet, manifest)
    return TrainResult(supernet, final, checkpoint_dir, history)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def prepare_training(spec, *, data_root: str | Path | None = None):
    """``(space, splits)`` for a :class:`~rnc.search.supernet.checkpoint.SupernetSpec`: the dataset at the
    space's resolution, the space with the dataset's input shape and class count."""
    from rnc.search.datasets import load_dataset
    from rnc.search.spaces import get_space

    options = dict(spec.space_options)
    image_size = spec.image_size
    if image_size is None and options.get("resolution"):
        image_size = int(options["resolution"])
    if image_size is None and options.get("input_shape"):
        image_size = int(options["input_shape"][-1])
    splits = load_dataset(
        spec.dataset, root=data_root or spec.data_root, image_size=image_size, seed=spec.seed,
        download=getattr(spec, "download", False), **spec.dataset_options(),
    )
    options.pop("resolution", None)
    given_shape = options.get("input_shape")
    if given_shape is not None and tuple(given_shape) != tuple(splits.input_shape):
        raise ValueError(
            f"space option input_shape={tuple(given_shape)} disagrees with dataset {spec.dataset!r} "
            f"at {tuple(splits.input_shape)}"
        )
    options["input_shape"] = tuple(splits.input_shape)
    options.setdefault("num_classes", splits.num_classes)
    return get_space(spec.space, **options), splits


def train_from_spec(spec, out_dir: str | Path, *, progress: bool = True, **kwargs: Any) -> TrainResult:
    """Load the data and space of ``spec`` and train its supernet into ``out_dir`` (one local process)."""
    space, splits = prepare_training(spec)
    return train_supernet(
        space, splits, epochs=spec.epochs, seed=spec.seed, out_dir=out_dir, batch_size=spec.batch_size,
        lr=spec.lr, progress=progress, manifest_extra={"key": spec.key()}, recipe=spec.training_recipe(), **kwargs,
    )


def train_standalone(
    space,
    genome,
    splits,
    *,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, float]:
    """Train ``space.build_module(genome)`` from scratch with the supernet's recipe (SGD, warm-up + cosine,
    label smoothing 0.1, same augmentation); returns the model and its top-1 on ``splits.test``.

    The reference against which supernet-inherited accuracy is judged (ranking fidelity, Kendall tau).
    """
    from rnc.search.supernet.evaluate import _materialize, top1_accuracy

    device = select_device(device)
    torch.manual_seed(seed)
    model = space.build_module(space.validate(genome)).to(device, memory_format=torch.channels_last)
    loader = DataLoader(
        splits.train, batch_size=batch_size, shuffle=True, drop_last=len(splits.train) > batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(_parameter_groups(model, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    total, warmup = epochs * len(loader), len(loader)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    parameters = list(model.parameters())
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            images = images.to(device).contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels.to(device), label_smoothing=0.1).backward()
            _clip_grad_norm(parameters, 5.0)
            optimizer.step()
            scheduler.step()
    test = [(x.to(device, memory_format=torch.channels_last), y.to(device)) for x, y in _materialize(splits.test, 512)]
    return model.eval(), top1_accuracy(model, test)

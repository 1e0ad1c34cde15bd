"""Supernet training on a Ray cluster: Ray Train's ``TorchTrainer`` around the framework-free loop.

:func:`train_supernet_job` trains the supernet of a :class:`~rnc.search.supernet.checkpoint.SupernetSpec` into a
checkpoint directory:

- ``num_workers <= 1`` and no GPU: one local process, no Ray (``rnc.search.supernet.training.train_from_spec``);
- otherwise ``TorchTrainer(ScalingConfig(num_workers, use_gpu))``: every worker runs the same loop with
  ``ray.train.torch.prepare_model`` (DDP with ``find_unused_parameters=True``, since a subnet leaves part of
  the supernet unused), ``prepare_data_loader`` (a ``DistributedSampler`` per worker) and its device; all
  workers sample the same subnets; rank 0 reports the finished checkpoint, which is copied to ``out_dir``.

The global batch is ``batch_size`` per worker times ``num_workers`` (data parallel). :func:`ray_train_fn`
adapts this to ``ensure_supernet(..., train_fn=...)``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rnc.search.supernet.checkpoint import SupernetSpec, TrainFn, load_manifest


def _worker_loop(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    import functools

    import ray.train
    import ray.train.torch
    import torch

    from rnc.search.supernet.training import train_from_spec

    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    spec = SupernetSpec(**config["spec"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    with tempfile.TemporaryDirectory(prefix="rnc-supernet-") as tmp:
        result = train_from_spec(
            spec,
            tmp,
            progress=bool(config.get("progress", False)) and rank == 0,
            device=ray.train.torch.get_device(),
            prepare_model=functools.partial(
                ray.train.torch.prepare_model, parallel_strategy_kwargs={"find_unused_parameters": True}
            ),
            prepare_data_loader=ray.train.torch.prepare_data_loader,
            report=lambda metrics: ray.train.report({k: v for k, v in metrics.items() if k != "phase"}),
        )
        checkpoint = ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None
        ray.train.report({"done": 1, **result.metrics}, checkpoint=checkpoint)


def train_supernet_job(
    spec: SupernetSpec,
    out_dir: str | Path,
    *,
    num_workers: int = 1,
    use_gpu: bool = False,
    storage_path: str | Path | None = None,
    progress: bool = True,
    threads_per_worker: int | None = None,
) -> Path:
    """Train ``spec``'s supernet into ``out_dir`` (locally, or with Ray Train for several workers or a GPU)."""
    out = Path(out_dir)
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    if num_workers == 1 and not use_gpu:
        from rnc.search.supernet.training import train_from_spec

        train_from_spec(spec, out, progress=progress)
        return out

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    started_ray = False
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=progress)
        started_ray = True
    try:
        storage = Path(storage_path) if storage_path else Path(tempfile.mkdtemp(prefix="rnc-ray-train-"))
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"spec": asdict(spec), "progress": progress, "threads": threads_per_worker},
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
            run_config=RunConfig(
                name=f"supernet-{spec.space}-{spec.dataset}-{spec.key()[:12]}", storage_path=str(storage.resolve())
            ),
        )
        result = trainer.fit()
        if result.error is not None:
            raise RuntimeError(f"supernet training failed on the Ray Train workers: {result.error}")
        if result.checkpoint is None:
            raise RuntimeError("supernet training finished without a checkpoint (rank 0 reports it)")
        with tempfile.TemporaryDirectory(prefix="rnc-supernet-ckpt-") as tmp:
            result.checkpoint.to_directory(tmp)
            load_manifest(tmp)  # a complete checkpoint, or a clear error
            out.mkdir(parents=True, exist_ok=True)
            for item in Path(tmp).iterdir():
                shutil.copy2(item, out / item.name)
        if storage_path is None:
            shutil.rmtree(storage, ignore_errors=True)
    finally:
        if started_ray:
            ray.shutdown()
    return out


def ray_train_fn(
    *, num_workers: int = 1, use_gpu: bool = False, storage_path: str | Path | None = None, progress: bool = False
) -> TrainFn:
    """A ``train_fn`` for :func:`rnc.search.supernet.ensure_supernet` that trains with :func:`train_supernet_job`."""

    def train(spec: SupernetSpec, out_dir: Path) -> None:
        train_supernet_job(
            spec, out_dir, num_workers=num_workers, use_gpu=use_gpu, storage_path=storage_path, progress=progress
        )

    return train

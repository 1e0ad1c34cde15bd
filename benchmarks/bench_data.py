"""Data benchmark: CIFAR-10 decode and cache times, loader rate vs supernet training rate, side by side.

Usage::

    python benchmarks/bench_data.py --data-root ../shared/datasets/cifar10-jpeg --out /tmp/bench-data.json
    python benchmarks/bench_data.py --data-root DIR --image-size 32 --space nax --steps 10

Measured in one process, one after the other, with one torch thread (``--threads``), CPU seconds of this
process (robust to a shared machine) and wall seconds:

1. decode: the JPEG files of ``--per-class`` images per class (train) and ``--test-per-class`` (test) into uint8
   tensors, into an empty cache folder; then the same load from the cache;
2. loader: iterate the training ``DataLoader`` (batch ``--batch-size``, shuffled, CIFAR augmentation and
   normalization, channels-last) for ``--loader-batches`` batches: images per CPU second;
3. training: ``--steps`` sandwich-rule steps of ``--space``'s supernet (largest subnet with label smoothing,
   smallest and the space's random subnets distilled from it; the step of
   :func:`rnc.search.supernet.train_supernet`) on one fixed batch: images per CPU second.

Training is compute-bound when the loader rate is many times the training rate (``loader_to_training_ratio``):
the data part of a training step is then ``1 / ratio`` of it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _train_steps(space, images: torch.Tensor, labels: torch.Tensor, steps: int) -> None:
    supernet = space.build_supernet().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(0)
    extra = int(getattr(space, "supernet_random_subnets", 2))
    supernet.train()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        supernet.set_active(space.largest())
        logits = supernet(images)
        F.cross_entropy(logits, labels, label_smoothing=0.1).backward()
        teacher = F.softmax(logits.detach(), dim=1)
        for genome in [space.smallest()] + [space.sample(rng) for _ in range(extra)]:
            supernet.set_active(genome)
            (-(teacher * F.log_softmax(supernet(images), dim=1)).sum(1).mean()).backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True, help="CIFAR-10 folder (torchvision or ImageFolder).")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loader-batches", type=int, default=100)
    parser.add_argument("--space", default="mbv3")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from torch.utils.data import DataLoader

    from rnc.search.datasets import DatasetError, load_dataset
    from rnc.search.spaces import get_space

    figures: dict = {"image_size": args.image_size, "per_class": args.per_class, "threads": args.threads,
                     "batch_size": args.batch_size, "space": args.space}
    with tempfile.TemporaryDirectory() as cache:
        def load():
            return load_dataset("cifar10", root=args.data_root, image_size=args.image_size, per_class=args.per_class,
                                test_per_class=args.test_per_class, cache_dir=cache)

        try:
            splits, wall, cpu = _timed(load)
        except DatasetError as exc:
            raise SystemExit(f"bench_data: {exc}") from None
        figures["decode_wall_s"], figures["decode_cpu_s"] = wall, cpu
        figures["decoded_images"] = len(splits.train) + len(splits.test)
        _, wall, cpu = _timed(load)
        figures["cached_load_wall_s"], figures["cached_load_cpu_s"] = wall, cpu
        figures["cache_bytes"] = sum(p.stat().st_size for p in Path(cache).iterdir())

    loader = DataLoader(splits.train, batch_size=args.batch_size, shuffle=True, drop_last=True)

    def iterate() -> int:
        seen = 0
        while seen < args.loader_batches * args.batch_size:
            for images, _ in loader:
                images = images.contiguous(memory_format=torch.channels_last)
                seen += images.shape[0]
                if seen >= args.loader_batches * args.batch_size:
                    break
        return seen

    seen, wall, cpu = _timed(iterate)
    figures["loader_images_per_cpu_s"] = seen / cpu
    figures["loader_images_per_wall_s"] = seen / wall

    space = get_space(args.space, input_shape=splits.input_shape, num_classes=10)
    images, labels = next(iter(loader))
    images = images.contiguous(memory_format=torch.channels_last)
    _train_steps(space, images, labels, 1)  # warm-up (allocations, first-call costs)
    _, wall, cpu = _timed(lambda: _train_steps(space, images, labels, args.steps))
    figures["training_images_per_cpu_s"] = args.steps * args.batch_size / cpu
    figures["training_images_per_wall_s"] = args.steps * args.batch_size / wall
    figures["loader_to_training_ratio"] = figures["loader_images_per_cpu_s"] / figures["training_images_per_cpu_s"]
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

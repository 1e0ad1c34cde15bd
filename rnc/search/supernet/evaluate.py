"""Subnet evaluation: extract a subnet, recalibrate its batch-norm statistics, measure top-1 on the test split.

Float accuracy runs on the supernet itself with the subnet active (no extraction: the fastest path);
hardware-aware accuracy extracts the standalone subnet (:meth:`SubnetEvaluator.subnet`) for ``to_analog``.

Batch-norm recalibration (once-for-all, Cai et al. ICLR 2020, Sec. 3.3): the running statistics a supernet
accumulates while training many subnets belong to none of them, so before measuring a subnet its
batch-norm layers are reset and re-estimated with a cumulative average over a few batches of the ``calib``
split (training images, no augmentation). Accuracy is top-1 on the ``test`` split, which training and
calibration never see.

Hardware-aware accuracy runs the recalibrated subnet through
``rnc.simulator.to_analog(subnet, space.hardware_for(genome, hw), seed=seed, calibration=batches)`` with the
calibration batches (input and ADC ranges calibrated on training images, never on test images).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rnc.search.device import select_device
from rnc.simulator import HardwareConfig


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Reset every batch-norm layer's running statistics and re-estimate them (cumulative average) on
    ``batches``; returns ``model`` in eval mode.

    Only the batch-norm layers run in training mode while the statistics are gathered; every other module
    (dropout) behaves as at inference, so the statistics are those of the network that is then measured.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    for m in norms:  # only batch-norm layers in training mode: dropout stays off, as at inference
        m.train()
    for images in batches:
        model(images)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


@torch.no_grad()
def top1_accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Fraction of correctly classified images over ``(images, labels)`` batches (model in eval mode)."""
    model.eval()
    correct = total = 0
    for images, labels in batches:
        correct += int((model(images).argmax(1) == labels).sum())
        total += int(labels.numel())
    if total == 0:
        raise ValueError("top1_accuracy: no images to evaluate")
    return correct / total


def _materialize(dataset: Dataset, batch_size: int, limit: int | None = None) -> list[tuple[torch.Tensor, ...]]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    batches, seen = [], 0
    for images, labels in loader:
        if limit is not None and seen + len(labels) > limit:
            keep = limit - seen
            images, labels = images[:keep], labels[:keep]
        if len(labels):
            batches.append((images, labels))
        seen += len(labels)
        if limit is not None and seen >= limit:
            break
    return batches


class SubnetEvaluator:
    """Accuracy of any subnet of a trained supernet checkpoint (the supernet is loaded once).

    ``calib_images`` images of the calibration split re-estimate batch-norm statistics; the test split is
    held in memory as batches of ``batch_size`` (on ``device``). ``splits`` reuses loaded data instead of
    loading the dataset named in the manifest; ``data_root`` overrides where it is looked for.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        device: str | torch.device | None = None,
        *,
        calib_images: int = 256,
        batch_size: int = 512,
        splits: Any | None = None,
        data_root: str | Path | None = None,
    ) -> None:
        from rnc.search.datasets import load_dataset
        from rnc.search.supernet.checkpoint import load_supernet

        self.device = select_device(device)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.space, self.supernet, self.manifest = load_supernet(self.checkpoint_dir, self.device)
        self.supernet.to(memory_format=torch.channels_last)  # same layout as the cached batches
        if splits is None:
            data = self.manifest["dataset"]
            splits = load_dataset(
                data["name"], root=data_root or data.get("root"), image_size=data.get("image_size"),
                seed=int(data.get("seed", 0)), **_dataset_options(data),
            )
        if tuple(splits.input_shape) != tuple(self.space.input_shape):
            raise ValueError(
                f"dataset input shape {tuple(splits.input_shape)} differs from the space's "
                f"{tuple(self.space.input_shape)} (checkpoint {self.checkpoint_dir})"
            )
        calib = _materialize(splits.calib, min(batch_size, calib_images), calib_images)
        fmt = torch.channels_last  # ~3x faster depthwise/pointwise convs on CPU
        self.calib_batches = [images.to(self.device, memory_format=fmt) for images, _ in calib]
        self.test_batches = [
            (x.to(self.device, memory_format=fmt), y.to(self.device)) for x, y in _materialize(splits.test, batch_size)
        ]
        self.test_size = sum(int(y.numel()) for _, y in self.test_batches)

    def _genome(self, genome: Sequence[int] | np.ndarray | str) -> np.ndarray:
        if isinstance(genome, str):
            return resolve_genome(self.space, genome, np.random.default_rng(0))
        return self.space.validate(genome)

    def subnet(self, genome: Sequence[int] | np.ndarray) -> nn.Module:
        """The standalone subnet of ``genome`` with inherited weights and recalibrated batch-norm (eval mode)."""
        genome = self._genome(genome)
        with torch.device(self.device):
            model = self.supernet.extract(genome)
        return recalibrate_batchnorm(model.to(self.device, memory_format=torch.channels_last), self.calib_batches)

    @torch.inference_mode()
    def _active_supernet_accuracy(self, genome: np.ndarray) -> float:
        """Float accuracy run on the supernet itself (``set_active``): the same numbers as the extracted
        subnet without building it. Its batch-norm buffers are overwritten by the recalibration."""
        self.supernet.set_active(genome)
        recalibrate_batchnorm(self.supernet, self.calib_batches)
        return top1_accuracy(self.supernet, self.test_batches)

    def evaluate(
        self, genome: Sequence[int] | np.ndarray, hw: HardwareConfig | None = None, seed: int = 0
    ) -> dict[str, float | None]:
        """``{"accuracy": top-1 of the float subnet, "hw_accuracy": top-1 through to_analog or None}``."""
        genome = self._genome(genome)
        if hw is None:
            return {"accuracy": self._active_supernet_accuracy(genome), "hw_accuracy": None}
        model = self.subnet(genome)
        accuracy = top1_accuracy(model, self.test_batches)
        hw_accuracy = None
        if hw is not None:
            try:
                from rnc.simulator.analog import to_analog
            except ImportError as exc:
                raise RuntimeError(
                    f"hardware-aware accuracy needs rnc.simulator.analog.to_analog, which cannot be imported: {exc}"
                ) from None
            hardware = self.space.hardware_for(self._genome(genome), hw)
            analog = to_analog(model, hardware, seed=seed, calibration=self.calib_batches)
            hw_accuracy = top1_accuracy(analog, self.test_batches)
        return {"accuracy": accuracy, "hw_accuracy": hw_accuracy}


def _dataset_options(config: dict[str, Any]) -> dict[str, Any]:
    """The cifar10 options recorded in a manifest's ``dataset`` (absent for other datasets)."""
    options = {"data_format": config.get("format"), "per_class": config.get("per_class"),
               "test_per_class": config.get("test_per_class")}
    return {k: v for k, v in options.items() if v is not None}


def resolve_genome(space, text: str | Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """``largest``, ``smallest``, ``random`` (from ``rng``), a JSON list of choice indices or a JSON object of
    gene values -> a validated genome."""
    import json

    if not isinstance(text, str):
        return space.validate(text)
    word = text.strip().lower()
    if word == "largest":
        return space.largest()
    if word == "smallest":
        return space.smallest()
    if word == "random":
        return space.sample(rng)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(
            f"genome {text!r}: expected largest, smallest, random, a JSON list of {len(space.genes)} choice "
            "indices, or a JSON object of gene values"
        ) from None
    if isinstance(value, dict):
        return space.encode(value)
    if isinstance(value, list):
        return space.validate(value)
    raise ValueError(f"genome {text!r}: a JSON list or object is expected")

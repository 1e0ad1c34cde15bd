"""CIFAR-10 from torchvision's official files or an ImageFolder copy, decoded once into cached uint8 tensors.

Sources (``data_format``):

- ``torchvision``: the official python version, ``ROOT/cifar-10-batches-py/`` (``data_batch_1..5``,
  ``test_batch``), read with ``torchvision.datasets.CIFAR10`` (which checks the files' MD5 sums; ``download``
  fetches them);
- ``imagefolder``: ``ROOT/train/<class>/<image>`` and ``ROOT/test/<class>/<image>`` with CIFAR-10's ten class
  folders (e.g. the JPEG copy in ``shared/datasets/cifar10-jpeg``: label figures "CIFAR-10 (JPEG copy)");
- ``auto`` (default): ``torchvision`` when ``ROOT/cifar-10-batches-py`` exists, else ``imagefolder`` when
  ``ROOT/train`` exists.

Decoding: every image is read once into a uint8 tensor, images x 32 x 32 x 3 (HWC, i.e. NCHW channels-last);
an ImageFolder source is decoded with Pillow and written to ``CACHE/cifar10-<key>.pt`` (``cache_dir``, default
``$RNC_DATASET_CACHE`` or ``~/.cache/rnc-platform/datasets``). The key hashes the resolved folder and every
file's relative path and size, plus the subset drawn, so a changed copy is decoded again. Full data set: 60,000
x 3,072 B = 184 MB in memory and on disk; a ``per_class`` subset decodes only its own files.

Subsets: ``per_class`` training images per class (and ``test_per_class`` test images per class), drawn without
replacement by ``numpy.random.default_rng(seed)`` class by class; ``None`` keeps all (5,000 / 1,000 per class).

Resolution: ``image_size`` other than 32 resizes every kept image once, bilinearly (antialiased when
downsampling), held in memory as uint8 (60,000 images: 46 MB at 16x16, 737 MB at 64x64 -- RNC's setting).

Statistics and augmentation: per-channel CIFAR-10 mean (0.4914, 0.4822, 0.4465) and std (0.2470, 0.2435,
0.2616) of the training pixels (the values torchvision's reference recipes use); training only, the standard
CIFAR recipe (He et al., CVPR 2016): random crop with black padding of 4 pixels per 32 (scaled to
``image_size``: 2 at 16, 8 at 64) and horizontal flip with probability 1/2, drawn from torch's global seeded
generator. ``calib`` (batch-norm recalibration) is 512 seeded training images without augmentation.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnc.search.splits import DatasetSplits

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
FORMATS = ("auto", "torchvision", "imagefolder")
NATIVE_SIZE = 32
CACHE_FORMAT = 1
TORCHVISION_FOLDER = "cifar-10-batches-py"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class Cifar10Error(ValueError):
    """CIFAR-10 data that cannot be read; the message says where it looked and what to do."""


def default_cache_dir() -> Path:
    """``$RNC_DATASET_CACHE`` or ``~/.cache/rnc-platform/datasets``: where decoded uint8 tensors are kept."""
    return Path(os.environ.get("RNC_DATASET_CACHE", Path.home() / ".cache" / "rnc-platform" / "datasets")).expanduser()


@dataclass
class DecodedSplit:
    """One decoded split: ``images`` uint8 (N, 3, H, W) channels-last, ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor


class CifarImages(Dataset):
    """Normalized float images from a uint8 tensor; with ``augment``, random crop (``padding`` black pixels)
    and horizontal flip per image. ``__getitems__`` builds a whole batch at once (torch's DataLoader uses it).

    Items: ``(float32 tensor 3 x H x W, label int)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, augment: bool, padding: int = 0) -> None:
        self.images = images
        self.labels = labels
        self.augment = bool(augment)
        self.padding = int(padding)
        self._mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1) * 255.0
        self._inv_std = 1.0 / (torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) * 255.0)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _batch(self, index: torch.Tensor) -> torch.Tensor:
        x = self.images[index].float()
        if self.augment:
            n, _, h, w = x.shape
            p = self.padding
            if p:
                padded = torch.nn.functional.pad(x, (p, p, p, p))  # black pixels, as torchvision's RandomCrop
                dy, dx = torch.randint(0, 2 * p + 1, (2, n)).tolist()
                x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
            flip = torch.rand(n) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
        x = (x - self._mean) * self._inv_std
        return x.contiguous(memory_format=torch.channels_last)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._batch(torch.tensor([int(index)]))[0], int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        batch = self._batch(index)
        return list(zip(batch.unbind(0), self.labels[index].tolist(), strict=True))


def resolve_format(root: Path, data_format: str) -> str:
    """``torchvision`` or ``imagefolder`` for ``root``; raises :class:`Cifar10Error` naming what is missing."""
    if data_format not in FORMATS:
        raise Cifar10Error(f"cifar10: unknown format {data_format!r}; valid: {', '.join(FORMATS)}")
    official = (root / TORCHVISION_FOLDER).is_dir()
    folder = (root / "train").is_dir()
    if data_format == "auto":
        if official:
            return "torchvision"
        if folder:
            return "imagefolder"
        raise Cifar10Error(
            f"cifar10: no data in {root}: expected torchvision's {root / TORCHVISION_FOLDER}/ (download with "
            f"download=True, CLI --download) or an ImageFolder copy {root}/train/<class>/ and {root}/test/<class>/ "
            "(e.g. shared/datasets/cifar10-jpeg); set the folder with root=... (CLI --data-root) or $RNC_DATA_ROOT"
        )
    return data_format


def _list_imagefolder(root: Path) -> dict[str, list[tuple[str, int, int]]]:
    """``{"train": [(relative path, size bytes, label)], "test": [...]}``, sorted, validated."""
    listing: dict[str, list[tuple[str, int, int]]] = {}
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise Cifar10Error(f"cifar10 (imagefolder): {folder} is missing; expected {root}/{split}/<class>/<image>")
        found = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if tuple(found) != CLASSES:
            raise Cifar10Error(
                f"cifar10 (imagefolder): class folders of {folder} are {found[:12]}, expected CIFAR-10's "
                f"{list(CLASSES)}"
            )
        rows = []
        for label, name in enumerate(CLASSES):
            with os.scandir(folder / name) as entries:
                files = sorted(
                    (e.name, e.stat().st_size) for e in entries
                    if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)
                )
            if not files:
                raise Cifar10Error(f"cifar10 (imagefolder): no images in {folder / name}")
            rows.extend((f"{split}/{name}/{file}", size, label) for file, size in files)
        listing[split] = rows
    return listing


def select_per_class(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` items of every class, drawn without replacement (seeded); all with None.

    Raises :class:`Cifar10Error` when a class has fewer than ``per_class`` items.
    """
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(CLASSES)):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise Cifar10Error(f"cifar10: class {CLASSES[label]!r} has {len(members)} images, per_class={per_class}")
        chosen.append(members[rng.permutation(len(members))[:per_class]])
    return np.sort(np.concatenate(chosen))


def _decode_files(root: Path, rows: list[tuple[str, int, int]]) -> DecodedSplit:
    from PIL import Image

    images = np.empty((len(rows), NATIVE_SIZE, NATIVE_SIZE, 3), dtype=np.uint8)
    for i, (relative, _, _) in enumerate(rows):
        try:
            with Image.open(root / relative) as image:
                pixels = np.asarray(image.convert("RGB"))
        except OSError as exc:
            raise Cifar10Error(f"cifar10 (imagefolder): cannot decode {root / relative}: {exc}") from None
        if pixels.shape != images.shape[1:]:
            raise Cifar10Error(f"cifar10 (imagefolder): {root / relative} is {pixels.shape}, expected 32x32x3")
        images[i] = pixels
    labels = torch.as_tensor([r[2] for r in rows], dtype=torch.int64)
    return DecodedSplit(torch.from_numpy(images).permute(0, 3, 1, 2), labels)


def _imagefolder_splits(
    root: Path, per_class: dict[str, int | None], seed: int, cache_dir: Path | None
) -> dict[str, DecodedSplit]:
    """Decoded train/test of an ImageFolder copy, from the cache when its key matches (written otherwise)."""
    listing = _list_imagefolder(root)
    content = hashlib.sha256(json.dumps([str(root.resolve()), listing]).encode()).hexdigest()
    picks = {
        split: select_per_class(np.array([r[2] for r in rows]), per_class[split], seed)
        for split, rows in listing.items()
    }
    full_path = subset_path = None
    if cache_dir is not None:
        full_path = cache_dir / f"cifar10-{content[:24]}-full.pt"
        tag = hashlib.sha256(json.dumps([content, per_class, seed]).encode()).hexdigest()[:24]
        subset_path = cache_dir / f"cifar10-{tag}.pt"
        for path, is_full in ((full_path, True), (subset_path, False)):
            cached = _read_cache(path, content)
            if cached is not None:
                return {
                    s: DecodedSplit(d.images[picks[s]], d.labels[picks[s]]) if is_full else d
                    for s, d in cached.items()
                }
    decoded = {s: _decode_files(root, [listing[s][i] for i in picks[s]]) for s in listing}
    if cache_dir is not None:
        full = all(per_class[s] is None for s in listing)
        _write_cache(full_path if full else subset_path, content, decoded)
    return decoded


def _read_cache(path: Path, content: str) -> dict[str, DecodedSplit] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return None  # unreadable (e.g. interrupted copy): decode again
    if data.get("format") != CACHE_FORMAT or data.get("content") != content:
        return None
    return {s: DecodedSplit(data[s]["images"].permute(0, 3, 1, 2), data[s]["labels"]) for s in ("train", "test")}


def _write_cache(path: Path, content: str, decoded: dict[str, DecodedSplit]) -> None:
    """Write atomically (temporary file, then rename) so that an interrupted run leaves no half cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CACHE_FORMAT, "content": content}
    for split, d in decoded.items():  # stored HWC-contiguous: the channels-last layout
        payload[split] = {"images": d.images.permute(0, 2, 3, 1).contiguous(), "labels": d.labels}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _torchvision_splits(root: Path, per_class: dict[str, int | None], seed: int, download: bool):
    from torchvision.datasets import CIFAR10

    decoded = {}
    for split in ("train", "test"):
        try:
            data = CIFAR10(str(root), train=split == "train", download=download and split == "train")
        except RuntimeError as exc:
            raise Cifar10Error(
                f"cifar10 (torchvision): cannot read {root / TORCHVISION_FOLDER} ({exc}); download it with "
                f"download=True (CLI --download) or extract {CIFAR10.filename} from {CIFAR10.url} into {root}"
            ) from None
        labels = np.asarray(data.targets)
        pick = select_per_class(labels, per_class[split], seed)
        images = torch.from_numpy(np.ascontiguousarray(data.data[pick])).permute(0, 3, 1, 2)
        decoded[split] = DecodedSplit(images, torch.as_tensor(labels[pick], dtype=torch.int64))
    return decoded


def _resize(images: torch.Tensor, size: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) -> uint8 (N, 3, size, size), bilinear, antialiased when shrinking; channels-last."""
    if size == images.shape[-1]:
        return images.contiguous(memory_format=torch.channels_last)
    out = torch.empty((images.shape[0], 3, size, size), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].float()
        scaled = torch.nn.functional.interpolate(
            part, (size, size), mode="bilinear", align_corners=False, antialias=size < images.shape[-1]
        )
        out[start : start + chunk] = scaled.round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_cifar10_tensors(
    root: Path,
    *,
    data_format: str = "auto",
    per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    download: bool = False,
) -> tuple[str, dict[str, DecodedSplit]]:
    """``(resolved format, {"train": DecodedSplit, "test": DecodedSplit})`` at the native 32x32.

    Raises :class:`Cifar10Error` for a missing or malformed folder, an unknown format or a too-large subset.
    """
    for name, value in (("per_class", per_class), ("test_per_class", test_per_class)):
        if value is not None and value < 1:
            raise Cifar10Error(f"cifar10: {name} must be at least 1, got {value}")
    root = Path(root).expanduser()
    if download and data_format == "auto" and not (root / "train").is_dir():
        data_format = "torchvision"
    resolved = resolve_format(root, data_format)
    counts = {"train": per_class, "test": test_per_class}
    if resolved == "torchvision":
        return resolved, _torchvision_splits(root, counts, seed, download)
    return resolved, _imagefolder_splits(root, counts, seed, cache_dir)


def cifar10_splits(
    root: Path,
    *,
    image_size: int | None = None,
    data_format: str = "auto",
    per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    download: bool = False,
):
    """CIFAR-10 as :class:`~rnc.search.splits.DatasetSplits` (train augmented, calib and test plain).

    Input shape (3, ``image_size``, ``image_size``), default 32; 10 classes.
    """
    size = int(image_size or NATIVE_SIZE)
    resolved, decoded = load_cifar10_tensors(
        root, data_format=data_format, per_class=per_class, test_per_class=test_per_class, seed=seed,
        cache_dir=cache_dir if cache_dir is not None else default_cache_dir(), download=download,
    )
    train_images = _resize(decoded["train"].images, size)
    test_images = _resize(decoded["test"].images, size)
    padding = max(1, round(4 * size / NATIVE_SIZE))
    train = CifarImages(train_images, decoded["train"].labels, augment=True, padding=padding)
    calib_idx = torch.as_tensor(np.sort(np.random.default_rng(seed).permutation(len(train))[:512]))
    calib = CifarImages(train_images[calib_idx], decoded["train"].labels[calib_idx], augment=False)
    test = CifarImages(test_images, decoded["test"].labels, augment=False)
    config = {
        "name": "cifar10", "image_size": size, "seed": seed, "root": str(root), "format": resolved,
        "per_class": per_class, "test_per_class": test_per_class,
    }
    return DatasetSplits(train, calib, test, len(CLASSES), (3, size, size), "cifar10", config)

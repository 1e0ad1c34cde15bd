"""Datasets for supernet training and subnet evaluation: ``digits``, ``cifar10``, ``cifar100``, ``imagefolder``.

:func:`load_dataset` returns :class:`DatasetSplits` with three ``torch.utils.data.Dataset``\\ s of
``(image CxHxW float tensor, label int)``:

- ``train`` -- the images gradient steps see (with augmentation);
- ``calib`` -- a fixed, seeded subset of the *training* images without augmentation, for batch-norm
  recalibration and analog calibration ("a few training batches", once-for-all, Cai et al. ICLR 2020);
- ``test`` -- held-out images, never used for training or calibration: the accuracy every search reports.

Datasets:

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no network needed).
  Pixel values 0..16 are scaled to 0..1, upsampled bilinearly to ``image_size`` (default 16) and replicated
  to **3 channels** so every convolutional space takes them unchanged; then standardised with the training
  mean and std. Fixed seeded split: 20% test (359 images), the rest train (1,438); ``calib`` is 256 training
  images. Training augmentation: random translation by up to ``image_size // 16`` pixels.
- ``cifar10``: torchvision's official files or an ImageFolder copy (``data_format``), decoded once into
  cached uint8 tensors, CIFAR statistics and augmentation, seeded ``per_class`` subsets, any ``image_size``
  (default 32): see :mod:`rnc.search.cifar10`.
- ``cifar100``: torchvision's loader from ``root`` (default ``$RNC_DATA_ROOT`` or
  ``~/.cache/rnc-platform/data``), downloading only with ``download=True``; official train (50,000) / test
  (10,000) split, ``calib`` = 512 seeded training images; resized to ``image_size`` when given (RNC: 64);
  training augmentation: random crop with 1/8 padding and horizontal flip.
- ``imagefolder``: a folder in Tiny ImageNet's layout -- ``root/train/<class>/**/<image>`` plus either
  ``root/val/<class>/**`` or Tiny ImageNet's ``root/val/images/`` with ``root/val/val_annotations.txt``
  (``file<TAB>class...``), or ``root/test/<class>/**``. Images resized to ``image_size`` (default 64),
  ImageNet mean/std; ``calib`` = 512 seeded training images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from rnc.errors import UserError
from rnc.search.splits import DatasetSplits

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class DatasetError(UserError, ValueError):
    """A dataset that cannot be loaded; the message says where it looked and how to get the data."""


def default_root() -> Path:
    return Path(os.environ.get("RNC_DATA_ROOT", Path.home() / ".cache" / "rnc-platform" / "data")).expanduser()


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    image_size: int | None = None,
    download: bool = False,
    seed: int = 0,
    data_format: str = "auto",
    per_class: int | None = None,
    test_per_class: int | None = None,
    cache_dir: str | Path | None = None,
) -> DatasetSplits:
    """Load ``name`` (``digits``, ``cifar10``, ``cifar100``, ``imagefolder``) as train/calib/test splits.

    ``data_format`` (``auto``, ``torchvision``, ``imagefolder``), ``per_class``/``test_per_class`` (seeded
    subsets) and ``cache_dir`` (decoded uint8 tensors) apply to ``cifar10`` (:mod:`rnc.search.cifar10`).
    Raises :class:`DatasetError` for unknown names, missing or malformed data and options a dataset lacks.
    """
    if image_size is not None and int(image_size) < 8:
        raise DatasetError(f"dataset {name!r}: image_size must be at least 8 pixels, got {image_size}")
    if name != "cifar10" and (data_format != "auto" or per_class is not None or test_per_class is not None):
        raise DatasetError(
            f"dataset {name!r}: format/per_class/test_per_class are options of cifar10 only; leave them unset"
        )
    if name == "digits":
        return _digits(image_size or 16, seed)
    if name == "cifar10":
        from rnc.search.cifar10 import Cifar10Error, cifar10_splits

        try:
            return cifar10_splits(
                Path(root).expanduser() if root else default_root(), image_size=image_size, data_format=data_format,
                per_class=per_class, test_per_class=test_per_class, seed=seed,
                cache_dir=None if cache_dir is None else Path(cache_dir).expanduser(), download=download,
            )
        except Cifar10Error as exc:
            raise DatasetError(str(exc)) from None
    if name == "cifar100":
        return _cifar(name, Path(root).expanduser() if root else default_root(), image_size, download, seed)
    if name == "imagefolder":
        if root is None:
            raise DatasetError(
                "dataset 'imagefolder' needs a root folder (root=... / --data-root) in Tiny ImageNet's layout: "
                "ROOT/train/<class>/... and ROOT/val/<class>/... (or ROOT/val/images + val_annotations.txt)"
            )
        return _imagefolder(Path(root).expanduser(), image_size or 64, seed)
    raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def check_dataset_files(name: str, *, root: str | Path | None = None, download: bool = False,
                        data_format: str = "auto") -> None:
    """Raise :class:`DatasetError` when ``name``'s files are not where :func:`load_dataset` will look, without
    loading them (a launch checks this before it starts anything). ``digits`` ships with scikit-learn; with
    ``download`` the official CIFAR files may be missing (they will be fetched); ``cifar10`` also reads an
    ImageFolder copy (``data_format``, :func:`rnc.search.cifar10.resolve_format`)."""
    from rnc.errors import check_names

    check_names("dataset", [name], DATASETS, where="dataset.name", error=DatasetError)
    base = Path(root).expanduser() if root else default_root()
    if name == "cifar10" and not download:
        from rnc.search.cifar10 import Cifar10Error, resolve_format

        try:
            resolve_format(base, data_format)
        except Cifar10Error as exc:
            raise DatasetError(str(exc)) from None
    elif name == "cifar100":
        folder = base / "cifar-100-python"
        if not download and not folder.is_dir():
            raise DatasetError(
                f"dataset {name!r} not found: no folder {folder}; set dataset.download: true (CLI: --download), or "
                "extract the python version there (dataset.root / --data-root / $RNC_DATA_ROOT)"
            )
    elif name == "imagefolder":
        if root is None:
            raise DatasetError("dataset 'imagefolder' needs a root folder (dataset.root / --data-root)")
        train_dir = Path(root).expanduser() / "train"
        if not _has_class_folders(train_dir):
            raise DatasetError(f"dataset 'imagefolder': no class folders in {train_dir}; give ROOT/train/<class>/...")


# ---------------------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------------------

class TensorImages(Dataset):
    """Images held in one tensor; with ``max_shift`` > 0, each access translates the image at random by up
    to ``max_shift`` pixels (padded with the background value), drawn from torch's seeded generator."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, max_shift: int = 0, background: float = 0.0):
        self.images = images
        self.labels = labels
        self.max_shift = int(max_shift)
        if self.max_shift:
            s = self.max_shift
            self._padded = torch.nn.functional.pad(images, (s, s, s, s), value=background)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = int(self.labels[index])
        if not self.max_shift:
            return self.images[index], label
        dy, dx = torch.randint(0, 2 * self.max_shift + 1, (2,)).tolist()  # torch's seeded generator
        h, w = self.images.shape[-2:]
        return self._padded[index, :, dy : dy + h, dx : dx + w], label


def _digits(image_size: int, seed: int) -> DatasetSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    images = torch.nn.functional.interpolate(images, (image_size, image_size), mode="bilinear", align_corners=False)
    images = images.repeat(1, 3, 1, 1)
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(labels)))
    n_test = round(0.2 * len(labels))
    test_idx, train_idx = order[:n_test], order[n_test:]
    mean, std = float(images[train_idx].mean()), float(images[train_idx].std())
    images = (images - mean) / std
    background = (0.0 - mean) / std
    shift = max(1, image_size // 16)
    train = TensorImages(images[train_idx], labels[train_idx], max_shift=shift, background=background)
    calib = TensorImages(images[train_idx[:256]], labels[train_idx[:256]])
    test = TensorImages(images[test_idx], labels[test_idx])
    config = {"name": "digits", "image_size": image_size, "seed": seed, "channels": 3}
    return DatasetSplits(train, calib, test, 10, (3, image_size, image_size), "digits", config)


# ---------------------------------------------------------------------------------------------------------
# torchvision datasets
# ---------------------------------------------------------------------------------------------------------

def _transforms(image_size: int | None, native: int, mean: Sequence[float], std: Sequence[float]):
    from torchvision import transforms as T  # noqa: N812

    size = image_size or native
    resize = [T.Resize((size, size))] if image_size and image_size != native else []
    train = T.Compose(
        [*resize, T.RandomCrop(size, padding=max(1, size // 8)), T.RandomHorizontalFlip(), T.ToTensor(),
         T.Normalize(mean, std)]
    )
    evaluation = T.Compose([*resize, T.ToTensor(), T.Normalize(mean, std)])
    return train, evaluation, size


def _calib_indices(n: int, count: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).permutation(n)[: min(count, n)].tolist()


def _cifar(name: str, root: Path, image_size: int | None, download: bool, seed: int) -> DatasetSplits:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = root / cls.base_folder
    train_tf, eval_tf, size = _transforms(image_size, 32, CIFAR_MEAN, CIFAR_STD)
    try:
        train = cls(str(root), train=True, transform=train_tf, download=download)
        train_plain = cls(str(root), train=True, transform=eval_tf, download=False)
        test = cls(str(root), train=False, transform=eval_tf, download=False)
    except RuntimeError as exc:
        raise DatasetError(
            f"dataset {name!r} not found: looked for the extracted python version in {folder} ({exc}). "
            f"Download it with download=True (CLI: --download), or extract {cls.filename} from {cls.url} into "
            f"{root}; set the folder with root=... (CLI: --data-root) or $RNC_DATA_ROOT."
        ) from None
    calib = Subset(train_plain, _calib_indices(len(train_plain), 512, seed))
    num_classes = 10 if name == "cifar10" else 100
    config = {"name": name, "image_size": size, "seed": seed, "root": str(root)}
    return DatasetSplits(train, calib, test, num_classes, (3, size, size), name, config)


class _AnnotatedImages(Dataset):
    """Images listed with their class in Tiny ImageNet's ``val_annotations.txt``."""

    def __init__(self, samples: list[tuple[str, int]], transform) -> None:
        from torchvision.datasets.folder import default_loader

        self.samples, self.transform, self.loader = samples, transform, default_loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(self.loader(path)), label


def _has_class_folders(path: Path) -> bool:
    return path.is_dir() and any(child.is_dir() and child.name != "images" for child in path.iterdir())


def _imagefolder(root: Path, image_size: int, seed: int) -> DatasetSplits:
    from torchvision import datasets

    layout = (
        "expected Tiny ImageNet's layout: ROOT/train/<class>/**/<image> and ROOT/val/<class>/**/<image> "
        "(or ROOT/val/images/ with ROOT/val/val_annotations.txt, or ROOT/test/<class>/...); Tiny ImageNet is "
        "at http://cs231n.stanford.edu/tiny-imagenet-200.zip"
    )
    train_dir = root / "train"
    if not _has_class_folders(train_dir):
        raise DatasetError(f"dataset 'imagefolder': no class folders in {train_dir}; {layout}")
    train_tf, eval_tf, size = _transforms(image_size, -1, IMAGENET_MEAN, IMAGENET_STD)
    try:
        train = datasets.ImageFolder(str(train_dir), transform=train_tf)
        train_plain = datasets.ImageFolder(str(train_dir), transform=eval_tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"dataset 'imagefolder': cannot read {train_dir}: {exc}; {layout}") from None
    val_dir, test_dir = root / "val", root / "test"
    annotations = val_dir / "val_annotations.txt"
    if _has_class_folders(val_dir) or _has_class_folders(test_dir):
        folder = val_dir if _has_class_folders(val_dir) else test_dir
        test = datasets.ImageFolder(str(folder), transform=eval_tf)
        if test.class_to_idx != train.class_to_idx:
            raise DatasetError(
                f"dataset 'imagefolder': classes of {folder} differ from those of {train_dir}: "
                f"{sorted(set(test.class_to_idx) ^ set(train.class_to_idx))[:10]}"
            )
    elif annotations.is_file():
        samples = []
        for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in train.class_to_idx:
                raise DatasetError(f"{annotations}:{line_no}: expected 'file<TAB>class' with a class of {train_dir}")
            samples.append((str(val_dir / "images" / parts[0]), train.class_to_idx[parts[1]]))
        test = _AnnotatedImages(samples, eval_tf)
    else:
        raise DatasetError(f"dataset 'imagefolder': no held-out split in {val_dir} or {test_dir}; {layout}")
    calib = Subset(train_plain, _calib_indices(len(train_plain), 512, seed))
    config = {"name": "imagefolder", "image_size": size, "seed": seed, "root": str(root)}
    return DatasetSplits(train, calib, test, len(train.classes), (3, size, size), "imagefolder", config)

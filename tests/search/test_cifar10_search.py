"""CIFAR-10 loading: formats, seeded subsets, the decoded-tensor cache, statistics, augmentation, device choice;
and a smoke run that trains and evaluates a supernet on a few hundred images of the shared JPEG copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rnc.search import cifar10
from rnc.search.cifar10 import CIFAR10_MEAN, CIFAR10_STD, CLASSES
from rnc.search.datasets import DatasetError, load_dataset
from rnc.search.device import select_device

SHARED_CIFAR10 = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "cifar10-jpeg"
needs_shared = pytest.mark.skipif(
    not (SHARED_CIFAR10 / "train").is_dir(),
    reason=f"the CIFAR-10 JPEG copy is not at {SHARED_CIFAR10} (see docs/datasets.md)",
)


def _write_folder(root: Path, train_per_class: int = 6, test_per_class: int = 3) -> None:
    """A CIFAR-10-shaped ImageFolder of PNGs: image i of class c has every pixel = 10 * c + i (red channel)."""
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.zeros((32, 32, 3), dtype=np.uint8)
                pixels[..., 0] = 10 * c + i
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def _load(root: Path, cache: Path, **kwargs):
    return load_dataset("cifar10", root=root, cache_dir=cache, **kwargs)


def test_imagefolder_splits_labels_and_shapes(tmp_path):
    _write_folder(tmp_path / "data")
    splits = _load(tmp_path / "data", tmp_path / "cache")
    assert (len(splits.train), len(splits.test), len(splits.calib)) == (60, 30, 60)
    assert splits.num_classes == 10 and splits.input_shape == (3, 32, 32)
    assert splits.config["format"] == "imagefolder"
    red = splits.test.images[:, 0, 0, 0].tolist()  # class c, image i -> 10c + i; sorted by class then file
    assert red == [10 * c + i for c in range(10) for i in range(3)]
    assert splits.test.labels.tolist() == [c for c in range(10) for _ in range(3)]
    image, label = splits.test[4]  # class 1, image 1: red = 11, green = blue = 0
    expected = torch.tensor([(11 / 255 - CIFAR10_MEAN[0]) / CIFAR10_STD[0], -CIFAR10_MEAN[1] / CIFAR10_STD[1],
                             -CIFAR10_MEAN[2] / CIFAR10_STD[2]])
    torch.testing.assert_close(image[:, 5, 5], expected)
    assert label == 1


def test_per_class_subsets_are_seeded_and_balanced(tmp_path):
    _write_folder(tmp_path / "data")
    a = _load(tmp_path / "data", tmp_path / "cache", per_class=2, test_per_class=1, seed=3)
    b = _load(tmp_path / "data", tmp_path / "cache2", per_class=2, test_per_class=1, seed=3)
    c = _load(tmp_path / "data", tmp_path / "cache", per_class=2, test_per_class=1, seed=4)
    assert len(a.train) == 20 and len(a.test) == 10
    assert np.bincount(a.train.labels.numpy()).tolist() == [2] * 10
    assert torch.equal(a.train.images, b.train.images)  # same seed, independent caches: same subset
    assert not torch.equal(a.train.images, c.train.images)
    assert {int(v) % 10 for v in a.train.images[:, 0, 0, 0]} <= set(range(6))  # images of the folder only
    with pytest.raises(DatasetError, match="per_class=7"):
        _load(tmp_path / "data", tmp_path / "cache", per_class=7)


def test_select_per_class_by_hand():
    labels = np.array([0, 1, 0, 1, 0, 1] + [c for c in range(2, 10) for _ in range(3)])
    picked = cifar10.select_per_class(labels, 2, seed=0)
    assert np.bincount(labels[picked]).tolist() == [2] * 10
    assert (np.diff(picked) > 0).all()
    assert cifar10.select_per_class(labels, None, seed=0).tolist() == list(range(len(labels)))


def test_cache_is_reused_and_keyed_by_content(tmp_path, monkeypatch):
    _write_folder(tmp_path / "data")
    first = _load(tmp_path / "data", tmp_path / "cache")
    files = list((tmp_path / "cache").glob("cifar10-*-full.pt"))
    assert len(files) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache matches")

    monkeypatch.setattr(cifar10, "_decode_files", no_decoding)
    again = _load(tmp_path / "data", tmp_path / "cache")
    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.test.labels, again.test.labels)
    subset = _load(tmp_path / "data", tmp_path / "cache", per_class=2)  # a subset of the full cache: no decode
    assert len(subset.train) == 20
    monkeypatch.undo()
    replaced = tmp_path / "data" / "train" / "cat" / "0000.png"  # different content, different size: a new key
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(replaced)
    changed = _load(tmp_path / "data", tmp_path / "cache")
    assert not torch.equal(first.train.images, changed.train.images)
    assert len(list((tmp_path / "cache").glob("cifar10-*-full.pt"))) == 2


def test_augmentation_in_training_only_with_scaled_padding(tmp_path):
    _write_folder(tmp_path / "data", train_per_class=1, test_per_class=1)
    for size, padding in ((16, 2), (32, 4), (64, 8)):
        splits = _load(tmp_path / "data", tmp_path / "cache", image_size=size)
        assert splits.input_shape == (3, size, size) and splits.train.padding == padding
        assert splits.train.images.shape == (10, 3, size, size)
    splits = _load(tmp_path / "data", tmp_path / "cache")
    splits.train.images[9] = 255  # a white image: crops show black padding; a left-right ramp shows flips
    splits.train.images[8] = torch.arange(32, dtype=torch.uint8).view(1, 1, 32).expand(3, 32, 32)
    torch.manual_seed(0)
    white = torch.stack([splits.train[9][0] for _ in range(40)])
    black = torch.tensor([-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD, strict=True)]).view(1, 3, 1, 1)
    padded = torch.isclose(white, black.expand_as(white)).flatten(1).any(1)
    assert 0 < int(padded.sum()) < 40  # some crops shifted (padding visible), some at the centre
    assert int(torch.isclose(white, black.expand_as(white)).flatten(2).sum(2).max()) <= 4 * 32 * 2 - 4
    ramp = torch.stack([splits.train[8][0][0, 16] for _ in range(40)])  # middle row, red channel
    rising = (ramp[:, 20] > ramp[:, 10]).sum()
    assert 0 < int(rising) < 40  # flipped and not flipped
    torch.testing.assert_close(splits.test[3][0], splits.test[3][0])  # held-out images: deterministic
    torch.testing.assert_close(splits.calib[0][0], splits.calib[0][0])
    batch = splits.train.__getitems__([0, 1, 2])
    assert [label for _, label in batch] == splits.train.labels[:3].tolist()


def test_malformed_folders_fail_clearly(tmp_path):
    with pytest.raises(DatasetError, match="no data in"):
        _load(tmp_path / "nothing", tmp_path / "cache")
    with pytest.raises(DatasetError, match="unknown format"):
        _load(tmp_path, tmp_path / "cache", data_format="tfrecord")
    _write_folder(tmp_path / "data", 1, 1)
    (tmp_path / "data" / "test" / "truck").rename(tmp_path / "data" / "test" / "lorry")
    with pytest.raises(DatasetError, match="class folders"):
        _load(tmp_path / "data", tmp_path / "cache")
    (tmp_path / "data" / "test" / "lorry").rename(tmp_path / "data" / "test" / "truck")
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(tmp_path / "data" / "train" / "dog" / "0000.png")
    with pytest.raises(DatasetError, match="expected 32x32x3"):
        _load(tmp_path / "data", tmp_path / "cache")
    with pytest.raises(DatasetError, match="cifar10 only"):
        load_dataset("digits", per_class=3)
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        _load(tmp_path / "data", tmp_path / "cache", data_format="torchvision")


def test_device_selection_on_this_machine(monkeypatch):
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        select_device("cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        select_device("tpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device(None) == torch.device("cuda") and select_device("cuda:1") == torch.device("cuda", 1)


@needs_shared
def test_statistics_of_the_jpeg_copy_match_cifar10(tmp_path):
    """Per-channel mean/std of 2,000 training images against CIFAR-10's published values (JPEG: within 0.01)."""
    splits = load_dataset("cifar10", root=SHARED_CIFAR10, per_class=200, test_per_class=1, cache_dir=tmp_path)
    pixels = splits.train.images.float() / 255
    mean, std = pixels.mean((0, 2, 3)), pixels.std((0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor(CIFAR10_MEAN), atol=0.01, rtol=0)
    torch.testing.assert_close(std, torch.tensor(CIFAR10_STD), atol=0.01, rtol=0)
    assert splits.config["format"] == "imagefolder" and np.bincount(splits.test.labels.numpy()).tolist() == [1] * 10


@needs_shared
def test_smoke_supernet_trains_and_evaluates_on_the_jpeg_copy(tmp_path, monkeypatch):
    """A few hundred real images: train the imc-blocks supernet (16x16), reload from the checkpoint, evaluate."""
    from rnc.search.supernet import SubnetEvaluator, ensure_supernet, load_manifest

    monkeypatch.setenv("RNC_DATASET_CACHE", str(tmp_path / "decoded"))
    path = ensure_supernet(
        "imc-blocks", {"max_stages": 2}, "cifar10", epochs=4, seed=0, cache_dir=tmp_path / "supernets",
        image_size=16, data_root=SHARED_CIFAR10, batch_size=50, lr=0.1, progress=False,
        per_class=30, test_per_class=20,
    )
    manifest = load_manifest(path)
    assert manifest["dataset"]["per_class"] == 30 and manifest["dataset"]["format"] == "imagefolder"
    history = manifest["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns
    evaluator = SubnetEvaluator(path, device=None)  # reloads the same subset from the manifest
    assert evaluator.device == torch.device("cpu") or torch.cuda.is_available()
    assert evaluator.test_size == 200
    largest = evaluator.evaluate("largest")["accuracy"]
    assert largest > 0.15  # chance is 0.10; 200 test images: 0.15 is > 2 binomial standard deviations above

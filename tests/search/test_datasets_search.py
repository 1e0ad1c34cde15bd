"""Datasets: the bundled digits splits, clear errors for missing data, ImageFolder layouts (no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rnc.search.datasets import DatasetError, load_dataset


def test_digits_splits_are_fixed_and_seeded():
    a = load_dataset("digits", image_size=16, seed=0)
    assert (len(a.train), len(a.calib), len(a.test)) == (1438, 256, 359)
    assert a.num_classes == 10 and a.input_shape == (3, 16, 16)
    image, label = a.test[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and 0 <= label < 10
    torch.testing.assert_close(image[0], image[1])  # grey replicated to 3 channels
    b = load_dataset("digits", image_size=16, seed=0)
    torch.testing.assert_close(a.test.images, b.test.images)
    c = load_dataset("digits", image_size=16, seed=1)
    assert not torch.equal(a.test.images, c.test.images)
    assert a.config == {"name": "digits", "image_size": 16, "seed": 0, "channels": 3}


def test_digits_calibration_comes_from_training_images_and_test_is_held_out():
    splits = load_dataset("digits", image_size=8)
    train = {tuple(np.round(x.numpy().ravel(), 4)) for x in splits.train.images}
    calib = {tuple(np.round(x.numpy().ravel(), 4)) for x in splits.calib.images}
    assert calib <= train
    test_rows = [tuple(np.round(x.numpy().ravel(), 4)) for x in splits.test.images]
    overlap = sum(row in train for row in test_rows)
    assert overlap <= 5  # only the few exact duplicates the digits data set itself contains


def test_digits_augmentation_translates_training_images_only():
    splits = load_dataset("digits", image_size=32)
    torch.manual_seed(0)
    views = {splits.train[0][0].sum().item() for _ in range(8)}
    assert len(views) > 1
    torch.testing.assert_close(splits.test[0][0], splits.test.images[0])  # no augmentation on held-out images
    torch.testing.assert_close(splits.calib[0][0], splits.calib.images[0])
    assert splits.test[0][0].shape == splits.train[0][0].shape == (3, 32, 32)


def test_unknown_and_invalid_requests():
    with pytest.raises(DatasetError, match="valid names"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="at least 8"):
        load_dataset("digits", image_size=4)
    with pytest.raises(DatasetError, match="needs a root"):
        load_dataset("imagefolder")


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_says_where_and_how(tmp_path, name):
    with pytest.raises(DatasetError) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "download=True" in message and "--download" in message


def _write_pngs(folder: Path, count: int, value: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((12, 12, 3), value + i, dtype=np.uint8)).save(folder / f"img{i}.png")


def test_imagefolder_with_class_folders(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        _write_pngs(tmp_path / "train" / cls / "images", 4, value)
        _write_pngs(tmp_path / "val" / cls, 2, value)
    splits = load_dataset("imagefolder", root=tmp_path, image_size=16)
    assert splits.num_classes == 2 and splits.input_shape == (3, 16, 16)
    assert (len(splits.train), len(splits.calib), len(splits.test)) == (8, 8, 4)
    image, label = splits.test[3]
    assert image.shape == (3, 16, 16) and label == 1


def test_imagefolder_with_tiny_imagenet_annotations(tmp_path):
    for cls, value in (("n01", 10), ("n02", 200)):
        _write_pngs(tmp_path / "train" / cls / "images", 3, value)
    _write_pngs(tmp_path / "val" / "images", 2, 50)
    (tmp_path / "val" / "val_annotations.txt").write_text("img0.png\tn02\t0\t0\t8\t8\nimg1.png\tn01\t0\t0\t8\t8\n")
    splits = load_dataset("imagefolder", root=tmp_path, image_size=8)
    assert len(splits.test) == 2 and [splits.test[i][1] for i in range(2)] == [1, 0]
    (tmp_path / "val" / "val_annotations.txt").write_text("img0.png\tn99\n")
    with pytest.raises(DatasetError, match=r"val_annotations\.txt:1"):
        load_dataset("imagefolder", root=tmp_path, image_size=8)


def test_imagefolder_missing_train_says_layout(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("imagefolder", root=tmp_path)
    assert str(tmp_path / "train") in str(info.value) and "Tiny ImageNet" in str(info.value)

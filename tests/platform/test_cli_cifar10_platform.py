"""CIFAR-10 options through the platform: ``supernet train`` flags, the config's DatasetSpec, SupernetSpec keys."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from typer.testing import CliRunner

import rnc
from rnc.platform.cli import app
from rnc.platform.config import DatasetSpec
from rnc.search.cifar10 import CLASSES
from rnc.search.supernet import load_manifest
from rnc.search.supernet.checkpoint import SupernetSpec

runner = CliRunner()


def _folder(root: Path, per_class: int) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


def test_supernet_train_with_cifar10_subset_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("RNC_DATASET_CACHE", str(tmp_path / "decoded"))
    _folder(tmp_path / "data", 3)
    out = tmp_path / "sn"
    common = ["supernet", "train", "--space", "mbv3", "--option", "width_mult=0.25", "--dataset", "cifar10",
              "--data-root", str(tmp_path / "data"), "--image-size", "16", "--epochs", "1", "--batch-size", "10",
              "--quiet", "--out", str(out)]
    done = runner.invoke(app, [*common, "--data-format", "imagefolder", "--per-class", "2", "--test-per-class", "1"])
    assert done.exit_code == 0, done.output
    dataset = load_manifest(out)["dataset"]
    assert (dataset["format"], dataset["per_class"], dataset["test_per_class"], dataset["image_size"]) == (
        "imagefolder", 2, 1, 16)
    evaluated = runner.invoke(app, ["supernet", "eval", "--checkpoint", str(out), "--json"])
    assert evaluated.exit_code == 0 and 0.0 <= json.loads(evaluated.output)["accuracy"] <= 1.0
    wrong = runner.invoke(app, [*common, "--data-format", "torchvision"])
    assert wrong.exit_code == 2 and "(torchvision): cannot read" in " ".join(wrong.output.split())
    too_many = runner.invoke(app, [*common, "--per-class", "4"])
    assert too_many.exit_code == 2 and "per_class=4" in too_many.output


def test_dataset_spec_cifar10_options():
    spec = DatasetSpec(name="cifar10", root="/data", format="imagefolder", image_size=32, per_class=100)
    assert spec.supernet_options() == {"data_format": "imagefolder", "per_class": 100, "test_per_class": None}
    for bad in ({"format": "tfrecord"}, {"per_class": 0}, {"test_per_class": 1001}):
        with pytest.raises(ValidationError):
            DatasetSpec(name="cifar10", **bad)


def test_supernet_spec_key_of_a_spec_without_cifar10_options_is_unchanged():
    spec = SupernetSpec(space="mbv3", dataset="digits", epochs=10)
    newer = ("data_format", "per_class", "test_per_class", "recipe")  # fields that left the key as it was
    old_fields = {k: v for k, v in asdict(spec).items() if k not in newer}
    old_fields.update(data_root=None, download=None, package_version=rnc.__version__)
    expected = hashlib.sha256(json.dumps(old_fields, sort_keys=True, default=str).encode()).hexdigest()
    assert spec.key() == expected
    assert SupernetSpec(space="mbv3", dataset="cifar10", per_class=5).key() != SupernetSpec(
        space="mbv3", dataset="cifar10").key()

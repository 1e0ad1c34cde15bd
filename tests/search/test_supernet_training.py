"""Supernet training loop, checkpoints, caching and subnet evaluation, on tiny settings (8x8 digits)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from rnc.search.datasets import load_dataset
from rnc.search.spaces import get_space
from rnc.search.supernet import (
    CheckpointError,
    SubnetEvaluator,
    ensure_supernet,
    load_manifest,
    load_supernet,
    train_supernet,
)
from rnc.search.supernet.evaluate import top1_accuracy
from rnc.search.supernet.training import train_from_spec
from rnc.simulator import HardwareConfig

TINY_SPACE = {"width_mult": 0.25}


@pytest.fixture(scope="module")
def tiny_splits():
    splits = load_dataset("digits", image_size=8)
    return dataclasses.replace(splits, train=Subset(splits.train, range(192)), test=Subset(splits.test, range(128)))


@pytest.fixture(scope="module")
def tiny_space():
    return get_space("mbv3", resolution=8, **TINY_SPACE)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_space, tiny_splits):
    out = tmp_path_factory.mktemp("supernet")
    reports = []
    result = train_supernet(
        tiny_space, tiny_splits, epochs=2, seed=0, out_dir=out, batch_size=64, lr=0.05, full_epochs=1,
        progress=False, report=reports.append,
    )
    return out, result, reports


def test_checkpoint_manifest(checkpoint):
    out, result, reports = checkpoint
    manifest = load_manifest(out)
    assert manifest["space"] == "mbv3" and manifest["space_options"]["input_shape"] == [3, 8, 8]
    assert manifest["dataset"]["name"] == "digits" and manifest["dataset"]["image_size"] == 8
    assert manifest["epochs"] == 2 and manifest["seed"] == 0 and manifest["package_version"]
    assert manifest["training"]["rule"] == "sandwich+inplace-distillation" and manifest["training"]["full_epochs"] == 1
    for key in ("largest_test_accuracy", "smallest_test_accuracy", "train_seconds", "train_images_per_second"):
        assert key in manifest["metrics"]
    assert 0.0 <= manifest["metrics"]["largest_test_accuracy"] <= 1.0
    assert [r["phase"] for r in reports] == ["full", "sandwich"] and [r["epoch"] for r in reports] == [1, 2]
    assert result.checkpoint_dir == out


def test_load_supernet_restores_weights(checkpoint):
    out, result, _ = checkpoint
    _space, supernet, _ = load_supernet(out)
    for key, value in result.supernet.state_dict().items():
        torch.testing.assert_close(supernet.state_dict()[key], value.cpu())


def test_training_is_reproducible(tiny_space, tiny_splits, checkpoint):
    _, first, _ = checkpoint
    again = train_supernet(
        tiny_space, tiny_splits, epochs=2, seed=0, batch_size=64, lr=0.05, full_epochs=1, progress=False
    )
    for key, value in first.supernet.state_dict().items():
        torch.testing.assert_close(again.supernet.state_dict()[key], value)


def test_evaluator_float_and_hardware_accuracy(checkpoint, tiny_splits, tiny_space):
    out, _, _ = checkpoint
    evaluator = SubnetEvaluator(out, device="cpu", splits=tiny_splits)
    assert evaluator.test_size == 128
    calib_images = torch.cat(evaluator.calib_batches)
    torch.testing.assert_close(calib_images, tiny_splits.calib.images.contiguous())
    result = evaluator.evaluate(tiny_space.largest())
    assert set(result) == {"accuracy", "hw_accuracy"} and result["hw_accuracy"] is None
    assert 0.0 <= result["accuracy"] <= 1.0
    assert evaluator.evaluate(tiny_space.largest()) == result  # recalibration is deterministic
    genome = tiny_space.sample(np.random.default_rng(5))  # supernet path == extracted standalone subnet
    assert evaluator.evaluate(genome)["accuracy"] == top1_accuracy(evaluator.subnet(genome), evaluator.test_batches)
    hw = evaluator.evaluate(tiny_space.smallest(), hw=HardwareConfig.preset("rnc"), seed=1)
    assert isinstance(hw["hw_accuracy"], float) and 0.0 <= hw["hw_accuracy"] <= 1.0


def test_evaluator_subnet_matches_build_module_structure(checkpoint, tiny_splits, tiny_space):
    out, _, _ = checkpoint
    evaluator = SubnetEvaluator(out, device="cpu", splits=tiny_splits)
    genome = tiny_space.sample(np.random.default_rng(0))
    subnet = evaluator.subnet(genome)
    assert not subnet.training
    assert set(subnet.state_dict()) == set(tiny_space.build_module(genome).state_dict())


def test_bad_inputs(tmp_path, tiny_space, tiny_splits):
    with pytest.raises(CheckpointError, match="does not exist"):
        SubnetEvaluator(tmp_path / "nowhere")
    tmp_path.joinpath("manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_manifest(tmp_path)
    with pytest.raises(ValueError, match="input shape"):
        train_supernet(get_space("mbv3", resolution=16), tiny_splits, epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train_supernet(tiny_space, tiny_splits, epochs=0, progress=False)


def test_ensure_supernet_trains_once_and_reuses(tmp_path):
    calls = []

    def train_fn(spec, out_dir):
        calls.append(spec)
        loaded = dataclasses.replace(spec)
        train_from_spec(loaded, out_dir, progress=False, full_epochs=0)

    kwargs = {"epochs": 1, "seed": 0, "cache_dir": tmp_path, "image_size": 8, "batch_size": 256, "train_fn": train_fn}
    first = ensure_supernet("mbv3", TINY_SPACE, "digits", **kwargs)
    second = ensure_supernet("mbv3", TINY_SPACE, "digits", **kwargs)
    assert first == second and len(calls) == 1
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["key"] == calls[0].key() and manifest["space_options"]["width_mult"] == 0.25
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no half-written directories left
    third = ensure_supernet("mbv3", TINY_SPACE, "digits", **{**kwargs, "seed": 1})
    assert third != first and len(calls) == 2


@pytest.mark.slow
def test_the_supernet_learns(tmp_path):
    """A supernet that never learns must fail here: 8 epochs on 768 digits (8x8) bring both the largest and the
    smallest subnet to three times chance (0.30) on 256 unseen test images (measured 0.62 and 0.50; an untrained
    one scores about 0.10). The other tests' fixture is too small to learn (2 epochs, 192 images)."""
    splits = load_dataset("digits", image_size=8)
    splits = dataclasses.replace(splits, train=Subset(splits.train, range(768)), test=Subset(splits.test, range(256)))
    space = get_space("mbv3", resolution=8, width_mult=0.5)
    train_supernet(space, splits, epochs=8, seed=0, out_dir=tmp_path, batch_size=32, lr=0.05, full_epochs=1,
                   progress=False)
    evaluator = SubnetEvaluator(tmp_path, device="cpu", splits=splits)
    chance = 1 / splits.num_classes
    assert evaluator.evaluate(space.largest())["accuracy"] >= 3 * chance
    assert evaluator.evaluate(space.smallest())["accuracy"] >= 3 * chance

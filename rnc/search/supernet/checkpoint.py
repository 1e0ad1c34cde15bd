"""Supernet checkpoints: a directory with the weights and a ``manifest.json``, and a cache keyed by a hash.

Layout of a checkpoint directory::

    supernet.pt      the supernet's state_dict (torch.save)
    manifest.json    {"format": 1, "space": name, "space_options": {...}, "dataset": {...}, "epochs": N,
                      "seed": S, "training": {...}, "metrics": {...}, "package_version": "...",
                      "torch_version": "...", "key": "<sha256>", "created": ISO-8601}

``space_options`` rebuild the space with ``get_space(space, **space_options)``; ``dataset`` is the
:attr:`~rnc.search.datasets.DatasetSplits.config` of the training data (name, image size, seed, root).

:func:`ensure_supernet` returns a cached checkpoint when one with the same key exists under ``cache_dir`` and
trains one otherwise. The key hashes everything that determines the weights: space name and options,
dataset name/image size/seed, epochs, seed, the training hyper-parameters and the package version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

import rnc
from rnc.errors import UserError

MANIFEST = "manifest.json"
WEIGHTS = "supernet.pt"
FORMAT = 1


_DATASET_DEFAULTS: dict[str, Any] = {"data_format": "auto", "per_class": None, "test_per_class": None}


class CheckpointError(UserError, ValueError):
    """A checkpoint directory that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class SupernetSpec:
    """Everything that determines a trained supernet (hashed into its cache key)."""

    space: str
    space_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    image_size: int | None = None
    data_root: str | None = None
    epochs: int = 30
    seed: int = 0
    batch_size: int = 64
    lr: float = 0.05
    download: bool = False
    data_format: str = "auto"  # cifar10: auto, torchvision or imagefolder
    per_class: int | None = None  # cifar10: seeded training subset, images per class (None: all)
    test_per_class: int | None = None  # cifar10: seeded test subset, images per class (None: all)
    # training recipe options that differ from the defaults (rnc.search.supernet.recipe.SupernetRecipe fields:
    # full_epochs, random_subnets, distill, kd_temperature, shrink)
    recipe: dict[str, Any] = field(default_factory=dict)

    def training_recipe(self):
        """The :class:`~rnc.search.supernet.recipe.SupernetRecipe` of :attr:`recipe` (raises
        :class:`~rnc.search.supernet.recipe.RecipeError` for an unknown option or a bad value)."""
        from rnc.search.supernet.recipe import SupernetRecipe

        return SupernetRecipe.from_options(self.recipe)

    def dataset_options(self) -> dict[str, Any]:
        """The cifar10 options that differ from their defaults, as ``load_dataset`` keywords."""
        options = {"data_format": self.data_format, "per_class": self.per_class, "test_per_class": self.test_per_class}
        return {k: v for k, v in options.items() if v != _DATASET_DEFAULTS[k]}

    def key(self) -> str:
        data = asdict(self)
        data["data_root"] = None  # where the files live, and how they got there, do not change the weights
        data["download"] = None
        for name, default in _DATASET_DEFAULTS.items():  # keys of specs without them stay as they were
            if data[name] == default:
                del data[name]
        data["recipe"] = self.training_recipe().changed()  # the default recipe leaves the key as it was
        if not data["recipe"]:
            del data["recipe"]
        data["package_version"] = rnc.__version__
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def save_checkpoint(out_dir: str | Path, supernet: torch.nn.Module, manifest: dict[str, Any]) -> Path:
    """Write ``supernet.pt`` and ``manifest.json`` into ``out_dir`` (created; files replaced atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
    tmp_weights = out / (WEIGHTS + ".tmp")
    torch.save(state, tmp_weights)
    tmp_weights.replace(out / WEIGHTS)
    full = {
        "format": FORMAT,
        "package_version": rnc.__version__,
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
    }
    tmp_manifest = out / (MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(full, indent=2, sort_keys=True, default=_json_default) + "\n")
    tmp_manifest.replace(out / MANIFEST)
    return out


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} into a manifest")


def load_manifest(checkpoint_dir: str | Path) -> dict[str, Any]:
    """Read ``manifest.json``; clear errors for a missing directory, a missing file or a foreign format."""
    path = Path(checkpoint_dir)
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint directory {path} does not exist; train one with `rnc-platform supernet train --out {path}`"
        )
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path} is missing: {path} is not a supernet checkpoint (or is incomplete)")
    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{manifest_path}: not valid JSON ({type(exc).__name__}); the checkpoint is damaged, train it again"
        ) from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{manifest_path}: expected a JSON object; the checkpoint is damaged, train it again")
    for key in ("space", "space_options", "dataset"):
        if key not in manifest:
            raise CheckpointError(f"{manifest_path}: missing key {key!r}")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{manifest_path}: format {manifest.get('format')!r}, this version reads {FORMAT}")
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; the checkpoint is incomplete, train it again")
    if weights.stat().st_size == 0:
        raise CheckpointError(f"{weights} is empty (0 bytes); the checkpoint is incomplete, train it again")
    return manifest


def read_weights(checkpoint_dir: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``supernet.pt``; :class:`CheckpointError` naming the file when it is empty, truncated or
    not a torch file."""
    weights = Path(checkpoint_dir) / WEIGHTS
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, ValueError, OSError, pickle_errors()) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(
            f"{weights}: cannot read the weights ({type(exc).__name__}: {first}); the file is damaged or truncated, "
            "train the supernet again"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{weights}: expected a state dict, got {type(state).__name__}; train it again")
    return state


def pickle_errors() -> type[Exception]:
    import pickle

    return pickle.UnpicklingError


def load_supernet(checkpoint_dir: str | Path, device: str | torch.device = "cpu"):
    """``(space, supernet, manifest)`` of a checkpoint; the supernet on ``device`` in eval mode."""
    from rnc.search.spaces import get_space
    from rnc.search.supernet.split import build_supernet_for

    manifest = load_manifest(checkpoint_dir)
    space = get_space(manifest["space"], **manifest["space_options"])
    supernet = build_supernet_for(space, manifest_recipe(manifest))
    state = read_weights(checkpoint_dir)
    try:
        supernet.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint_dir}: weights do not fit space {manifest['space']!r}: {exc}") from None
    return space, supernet.to(device).eval(), manifest


def manifest_recipe(manifest: dict[str, Any]):
    """The :class:`~rnc.search.supernet.recipe.SupernetRecipe` a checkpoint was trained with (its manifest's
    ``training.recipe``; the default recipe for checkpoints written before recipes existed)."""
    from rnc.search.supernet.recipe import RecipeError, SupernetRecipe

    recorded = dict((manifest.get("training") or {}).get("recipe") or {})
    known = {k: v for k, v in recorded.items() if k in SupernetRecipe.__dataclass_fields__}
    try:
        return SupernetRecipe.from_options(known)
    except (RecipeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"manifest training.recipe {recorded}: {exc}; the checkpoint is damaged") from None


TrainFn = Callable[[SupernetSpec, Path], None]


def cached_checkpoint_dir(spec: SupernetSpec, cache_dir: str | Path) -> Path:
    """Where :func:`ensure_supernet` keeps the checkpoint of ``spec`` under ``cache_dir`` (it may not exist)."""
    return Path(cache_dir).expanduser() / f"{spec.space}-{spec.dataset}-{spec.key()[:16]}"

"""The supernet cache: a checkpoint found under the cache folder, or trained there on first use.

Apart from :mod:`rnc.search.supernet.checkpoint` (reading and writing checkpoints), which the training loop
(:mod:`rnc.search.supernet.training`) itself uses, so that neither imports the other in a circle.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rnc.search.supernet.checkpoint import MANIFEST, SupernetSpec, TrainFn, cached_checkpoint_dir, load_manifest
from rnc.search.supernet.training import train_from_spec


def ensure_supernet(
    space_name: str,
    space_options: dict[str, Any] | None,
    dataset: str,
    *,
    epochs: int,
    seed: int,
    cache_dir: str | Path,
    image_size: int | None = None,
    data_root: str | Path | None = None,
    batch_size: int = 64,
    lr: float = 0.05,
    progress: bool = True,
    download: bool = False,
    train_fn: TrainFn | None = None,
    data_format: str = "auto",
    per_class: int | None = None,
    test_per_class: int | None = None,
    recipe: dict[str, Any] | None = None,
) -> Path:
    """The checkpoint directory of this supernet: reused from ``cache_dir`` when present, trained otherwise.

    ``train_fn(spec, out_dir)`` trains into ``out_dir`` (default: :func:`rnc.search.supernet.training.train_from_spec`
    in this process; the platform passes a Ray Train one). ``data_format``, ``per_class`` and ``test_per_class``
    select cifar10's source and seeded subsets (:mod:`rnc.search.cifar10`); ``recipe`` the training recipe's
    options (:class:`~rnc.search.supernet.recipe.SupernetRecipe`). Training writes to a temporary
    sibling directory that is renamed when complete, so an interrupted run never leaves a half checkpoint behind.
    """
    spec = SupernetSpec(
        space=space_name, space_options=dict(space_options or {}), dataset=dataset,
        image_size=None if image_size is None else int(image_size),
        data_root=None if data_root is None else str(data_root), epochs=int(epochs), seed=int(seed),
        batch_size=int(batch_size), lr=float(lr), download=bool(download), data_format=data_format,
        per_class=per_class, test_per_class=test_per_class, recipe=dict(recipe or {}),
    )
    key = spec.key()
    cache = Path(cache_dir).expanduser()
    target = cached_checkpoint_dir(spec, cache)
    if (target / MANIFEST).is_file():
        manifest = load_manifest(target)
        if manifest.get("key") == key:
            return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    try:
        if train_fn is None:
            train_from_spec(spec, work, progress=progress)
        else:
            train_fn(spec, work)
        manifest = load_manifest(work)
        if manifest.get("key") != key:
            manifest["key"] = key
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target

"""Preflight of a launch: everything a launch needs, checked before anything starts or is written.

``rnc-platform launch`` calls :func:`preflight` first. Only when it passes does the launch write its launch record
(``latest.json``), start Ray, train a supernet or open a tracking run; a failed preflight leaves nothing behind
(the checks write and remove one probe file per folder, see :mod:`rnc.platform.storage`). Checked, in order:

1. searchers: names and options (built once over the space, so ``pop_sise`` fails with "did you mean
   'pop_size'?");
2. the search space and its options;
3. the hardware of every budget: preset or file, ``set`` fields, and ``layer_crossbar_sizes`` names against the
   layers of the space's largest network;
4. supernet (when accuracy is needed): a cached checkpoint is readable (manifest and weights); if none is cached,
   the dataset files are present (or ``download`` is on);
5. storage: ``storage_path`` and ``supernet.cache_dir`` are writable with :data:`MIN_FREE_BYTES` free;
6. tracking: the URI is well formed; an SQLite store's folder is writable; an HTTP server answers within
   :data:`rnc.platform.tracking_check.REACHABLE_TIMEOUT_S` seconds.

Every failure is a :class:`rnc.errors.UserError` naming the config field, what is wrong and what to do.
A second launch of the same experiment into the same storage is refused by :func:`launch_lock`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnc.errors import StorageError, UserError, check_names

if TYPE_CHECKING:
    from rnc.platform.config import ExperimentConfig
    from rnc.simulator import HardwareConfig

#: Free space a launch's storage must have before it starts (Tune state, checkpoints, the SQLite store).
MIN_FREE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class PreflightResult:
    """What preflight resolved: absolute paths, and the hardware of every budget."""

    storage_path: Path
    cache_dir: Path
    tracking_uri: str
    hardware: dict[int, HardwareConfig]
    cached_checkpoint: Path | None


def preflight(config: ExperimentConfig, *, resume: bool = False) -> PreflightResult:
    """Check ``config`` end to end (see the module docstring); raise a :class:`rnc.errors.UserError` at the first
    problem. Writes nothing that stays."""
    from rnc.platform.config import absolute_path, absolute_tracking_uri

    space = _check_space(config)
    _check_searchers(config, space)
    hardware = _check_hardware(config, space)
    storage_path = absolute_path(config.storage_path)
    cache_dir = absolute_path(config.supernet.cache_dir)
    from rnc.platform.storage import check_writable_dir

    check_writable_dir(storage_path, "storage_path", min_free_bytes=MIN_FREE_BYTES)
    cached = None
    if config.needs_accuracy:
        check_writable_dir(cache_dir, "supernet.cache_dir", min_free_bytes=MIN_FREE_BYTES)
        _check_recipe(config, space)
        cached = _check_supernet(config, cache_dir)
    tracking_uri = _check_tracking(config)
    if resume:
        _check_resume_record(config, storage_path)
    return PreflightResult(storage_path, cache_dir, absolute_tracking_uri(tracking_uri), hardware, cached)


def _check_space(config: ExperimentConfig) -> Any:
    from rnc.search.spaces import get_space

    return get_space(config.space.name, **config.space.options)


def _check_recipe(config: ExperimentConfig, space: Any) -> None:
    """A recipe option that needs a gene the space lacks (``balance: stages`` without ``num_stages``), or a
    ``split_epoch`` the training never reaches."""
    from rnc.search.supernet.recipe import RecipeError, SupernetRecipe

    try:
        recipe = SupernetRecipe.from_options(config.supernet.recipe)
        recipe.check_space(space)
        recipe.check_epochs(config.supernet.epochs)
    except RecipeError as exc:
        raise UserError(f"supernet.recipe: {exc}") from None


def _check_searchers(config: ExperimentConfig, space: Any) -> None:
    from rnc.platform.config import searcher_options
    from rnc.search.searchers import SEARCHERS, make_searcher

    names = [s.name for s in config.searchers]
    check_names("searcher", names, sorted(SEARCHERS), where="searchers")
    for spec in config.searchers:
        make_searcher(
            spec.name,
            space.n_choices,
            len(config.objectives),
            seed=config.seed,
            n_constraints=len(config.constraint_names),
            **searcher_options(spec.name, spec.options, config.search.batch_size),
        )


def _check_hardware(config: ExperimentConfig, space: Any) -> dict[int, HardwareConfig]:
    hardware = {int(b): config.hardware.for_budget(b) for b in config.hardware.budgets}
    base = next(iter(hardware.values()))
    if base.layer_crossbar_sizes:
        layers = [layer.name for layer in space.workload(space.largest()).layers]
        check_names("layer", list(base.layer_crossbar_sizes), layers, where="hardware layer_crossbar_sizes")
    return hardware


def _check_supernet(config: ExperimentConfig, cache_dir: Path) -> Path | None:
    from rnc.search.datasets import check_dataset_files
    from rnc.search.supernet.checkpoint import SupernetSpec, cached_checkpoint_dir, load_manifest, read_weights

    spec = SupernetSpec(
        space=config.space.name, space_options=dict(config.space.options), dataset=config.dataset.name,
        image_size=config.dataset.image_size, data_root=config.dataset.root, epochs=config.supernet.epochs,
        seed=config.seed, download=config.dataset.download, **config.dataset.supernet_options(),
        recipe=dict(config.supernet.recipe),
    )
    target = cached_checkpoint_dir(spec, cache_dir)
    if target.exists():
        manifest = load_manifest(target)
        if manifest.get("key") == spec.key():
            read_weights(target)
            return target
    check_dataset_files(config.dataset.name, root=config.dataset.root, download=config.dataset.download,
                        data_format=config.dataset.format)
    return None


def _check_tracking(config: ExperimentConfig) -> str:
    from rnc.platform.config import absolute_tracking_uri
    from rnc.platform.storage import check_writable_dir
    from rnc.platform.tracking_check import check_tracking_uri

    uri = check_tracking_uri(config.tracking_uri, "tracking_uri")
    absolute = absolute_tracking_uri(uri)
    if absolute.startswith("sqlite:///"):
        folder = Path(absolute.removeprefix("sqlite:///")).parent
        check_writable_dir(folder, "tracking_uri", min_free_bytes=MIN_FREE_BYTES)
    return uri


def _check_resume_record(config: ExperimentConfig, storage_path: Path) -> None:
    from rnc.platform.launch_record import resumed_launch

    resumed_launch(config, storage_path)


# -- one launch per experiment and storage ------------------------------------------------------------------
def lock_path(storage_path: Path, name: str) -> Path:
    """The lock file of experiment ``name`` under ``storage_path`` (next to its ``latest.json``)."""
    return storage_path / name / ".launch.lock"


@contextlib.contextmanager
def launch_lock(storage_path: Path, name: str) -> Iterator[Path]:
    """Hold the experiment's launch lock (``filelock``, an OS file lock released when the process dies, SIGKILL
    included); a second launch of ``name`` into the same storage is refused at once with a clear error."""
    from filelock import FileLock, Timeout

    path = lock_path(storage_path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StorageError(
            f"storage_path {str(storage_path)!r}: another launch of {name!r} is running there (lock {path}); wait "
            "for it, or give this launch another storage_path or name"
        ) from None
    try:
        with contextlib.suppress(OSError):
            path.with_suffix(".pid").write_text(str(os.getpid()))
        yield path
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            path.with_suffix(".pid").unlink()

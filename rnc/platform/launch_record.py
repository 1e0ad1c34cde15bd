"""The launch record (``<storage>/<name>/latest.json``) and the errors of a launch.

Apart from :mod:`rnc.platform.launch` so that preflight (:mod:`rnc.platform.preflight`) checks a ``--resume``
against the record without importing the launch itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from rnc.errors import UserError
from rnc.platform.config import ExperimentConfig


class LaunchError(UserError, RuntimeError):
    """A launch that could not run or finish; the message says what failed and what to do."""


class ResumableLaunchError(LaunchError):
    """A launch that failed after it started (a trial's error, a disk that filled up): its launch record and Tune
    state stay, so it can be resumed once the cause is fixed; the CLI adds the exact ``--resume`` command."""


def config_hash(config: ExperimentConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def launch_record_path(storage_path: Path, name: str) -> Path:
    """``<storage>/<name>/latest.json``: the record of the experiment's latest launch."""
    return storage_path / name / "latest.json"


def new_launch(config: ExperimentConfig, storage_path: Path) -> dict[str, Any]:
    """Write a new launch's record (id, config, config hash) and return it."""
    launch_id = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    record = {"launch_id": launch_id, "config": config.model_dump(mode="json"), "config_hash": config_hash(config)}
    path = launch_record_path(storage_path, config.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    return record


def resumed_launch(config: ExperimentConfig, storage_path: Path) -> dict[str, Any]:
    """The record of the launch ``--resume`` continues.

    Raises:
        LaunchError: no record, or one written for a different config.
    """
    path = launch_record_path(storage_path, config.name)
    if not path.is_file():
        raise LaunchError(
            f"--resume: no launch of {config.name!r} under {storage_path} (looked for {path}); "
            "start one without --resume"
        )
    record = json.loads(path.read_text())
    if record["config_hash"] != config_hash(config):
        raise LaunchError(
            f"--resume: the config differs from the one launch {record['launch_id']} started with "
            f"(saved in {path}); resume with the same config and seed, or start a new launch without --resume"
        )
    return record

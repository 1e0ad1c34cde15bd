"""Weight-sharing supernets: elastic layers, the framework-free training loop, checkpoints, subnet evaluation.

Public names (imported lazily, so that search spaces can import :mod:`rnc.search.supernet.elastic` without
pulling in the training loop):

- :func:`train_supernet` (:mod:`.training`) -- sandwich-rule training with in-place distillation;
- :class:`SubnetEvaluator` (:mod:`.evaluate`) -- batch-norm recalibration + top-1 of any subnet;
- :func:`ensure_supernet` (:mod:`.cache`); :func:`load_manifest`, :func:`save_checkpoint` (:mod:`.checkpoint`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train_supernet": "training",
    "TrainResult": "training",
    "SubnetEvaluator": "evaluate",
    "recalibrate_batchnorm": "evaluate",
    "top1_accuracy": "evaluate",
    "ensure_supernet": "cache",
    "load_manifest": "checkpoint",
    "load_supernet": "checkpoint",
    "save_checkpoint": "checkpoint",
    "supernet_key": "checkpoint",
    "CheckpointError": "checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

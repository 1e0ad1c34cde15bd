"""The three splits of one dataset (train, calibration, test), as the search spaces and supernets see them.

Its own module so that the dataset readers (:mod:`rnc.search.datasets`, :mod:`rnc.search.cifar10`) share it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset


@dataclass
class DatasetSplits:
    """The three splits of one dataset, with what a search space needs to know about it."""

    train: Dataset
    calib: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # what determines the splits (for checkpoint keys)

    def summary(self) -> dict[str, Any]:
        return {
            **self.config,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "train_size": len(self.train),
            "calib_size": len(self.calib),
            "test_size": len(self.test),
        }

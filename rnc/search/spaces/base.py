"""The search-space interface shared by every space (``mbv3``, ``nax``, ``imc-blocks``).

A genome is a flat vector of integer *choice indices*, one per gene (what searchers see); ``decode`` turns it
into a readable dict of gene name -> chosen value (what people and MLflow see). A space builds, for any genome:

- the standalone ``nn.Module`` (:meth:`SearchSpace.build_module`),
- its simulator :class:`~rnc.simulator.Workload` straight from the genome, without PyTorch
  (:meth:`SearchSpace.workload`, the fast path; same layer names as tracing the built module),
- the hardware it is mapped onto (:meth:`SearchSpace.hardware_for`: hardware genes such as per-layer crossbar
  size, ADC bits or cell bits applied to a base :class:`~rnc.simulator.HardwareConfig`),
- and the weight-sharing supernet that contains every genome (:meth:`SearchSpace.build_supernet`).

Supernet contract (``SupernetModule``): an ``nn.Module`` whose ``set_active(genome)`` selects a subnet that its
``forward`` then runs, and whose ``extract(genome)`` returns a standalone module with the subnet's weights
copied, with the same structure (and ``state_dict`` keys) as ``build_module(genome)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rnc.simulator import HardwareConfig, Workload


class GenomeError(ValueError):
    """A genome or gene dict that does not belong to the space; the message names the gene."""


@dataclass(frozen=True)
class Gene:
    """One decision: ``name`` takes one of ``choices`` (ordered from smallest to largest where that means anything)."""

    name: str
    choices: tuple[Any, ...]
    hardware: bool = False  # a hardware gene (crossbar size, ADC bits, ...) rather than a network gene

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"gene {self.name!r} has no choices")


@runtime_checkable
class SupernetModule(Protocol):
    def set_active(self, genome: np.ndarray) -> None: ...

    def extract(self, genome: np.ndarray) -> Any: ...


class SearchSpace(ABC):
    """Base class: subclasses define ``name``, ``genes`` and the four builders."""

    name: str = ""
    genes: tuple[Gene, ...] = ()

    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 64, 64), num_classes: int = 10) -> None:
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)

    # -- genome bookkeeping ---------------------------------------------------------------------------
    @property
    def n_choices(self) -> list[int]:
        """Number of choices of every gene (the integer box searchers work in)."""
        return [len(g.choices) for g in self.genes]

    @property
    def cardinality(self) -> int:
        """Number of distinct genomes. Spaces with inactive genes (elastic depth) override this with the
        number of distinct *networks*."""
        return math.prod(self.n_choices)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.integers(n) for n in self.n_choices], dtype=np.int64)

    def largest(self) -> np.ndarray:
        return np.array([n - 1 for n in self.n_choices], dtype=np.int64)

    def smallest(self) -> np.ndarray:
        return np.zeros(len(self.genes), dtype=np.int64)

    def validate(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(genome, dtype=np.int64).reshape(-1)
        if arr.shape[0] != len(self.genes):
            raise GenomeError(f"space {self.name!r}: genome has {arr.shape[0]} genes, expected {len(self.genes)}")
        for gene, idx in zip(self.genes, arr, strict=True):
            if not 0 <= idx < len(gene.choices):
                raise GenomeError(
                    f"space {self.name!r}: gene {gene.name!r} index {int(idx)} out of range 0..{len(gene.choices) - 1}"
                )
        return arr

    def decode(self, genome: Sequence[int] | np.ndarray) -> dict[str, Any]:
        arr = self.validate(genome)
        return {gene.name: gene.choices[int(i)] for gene, i in zip(self.genes, arr, strict=True)}

    def encode(self, values: Mapping[str, Any]) -> np.ndarray:
        missing = [g.name for g in self.genes if g.name not in values]
        unknown = sorted(set(values) - {g.name for g in self.genes})
        if missing or unknown:
            raise GenomeError(f"space {self.name!r}: missing genes {missing}, unknown genes {unknown}")
        out = []
        for gene in self.genes:
            value = values[gene.name]
            if value not in gene.choices:
                raise GenomeError(f"space {self.name!r}: gene {gene.name!r} = {value!r} not in {list(gene.choices)}")
            out.append(gene.choices.index(value))
        return np.array(out, dtype=np.int64)

    def key(self, genome: Sequence[int] | np.ndarray) -> str:
        """A canonical string for caches and MLflow (``"2-0-1-..."``)."""
        return "-".join(str(int(i)) for i in self.validate(genome))

    # -- builders ---------------------------------------------------------------------------------------
    @abstractmethod
    def build_module(self, genome: np.ndarray) -> Any:
        """The standalone ``nn.Module`` of ``genome`` (fresh weights)."""

    @abstractmethod
    def workload(self, genome: np.ndarray) -> Workload:
        """The simulator workload of ``genome`` at ``input_shape``, built without PyTorch."""

    @abstractmethod
    def build_supernet(self) -> SupernetModule:
        """The weight-sharing supernet containing every genome of the space."""

    def hardware_for(self, genome: np.ndarray, hw: HardwareConfig) -> HardwareConfig:
        """``hw`` with this genome's hardware genes applied; spaces without hardware genes return ``hw``."""
        return hw

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "genes": [{"name": g.name, "choices": list(g.choices), "hardware": g.hardware} for g in self.genes],
            "cardinality": self.cardinality,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }

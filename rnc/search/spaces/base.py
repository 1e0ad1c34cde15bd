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

import copy
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rnc.errors import UserError, check_names
from rnc.search.spaces.hardware_genes import HW_PREFIX, apply_hardware_values, parse_hardware_genes
from rnc.simulator import HardwareConfig, Workload


class GenomeError(UserError, ValueError):
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
    """Base class: subclasses define ``name``, ``genes`` (their network genes) and the three builders.

    Hardware genes (co-design, :mod:`rnc.search.spaces.hardware_genes`) are owned by this base class, so every
    space gets them without code of its own: the constructor keyword ``hardware_genes`` (``{"adc_bits": [4, 6,
    8]}`` or ``["crossbar_size", "cell_bits"]``) or :meth:`with_hardware_genes` appends one ``Gene(hw.<field>,
    choices, hardware=True)`` per entry after the space's own genes; :meth:`hardware_for` applies them. To make
    that hold for any subclass, ``__init_subclass__`` adapts what a subclass defines:

    - ``genes`` (a class attribute, a property, or assigned in ``__init__``) becomes :attr:`network_genes`;
      :attr:`genes` is always ``network_genes + hardware_genes``;
    - an overridden ``cardinality`` becomes :attr:`network_cardinality` (distinct networks); :attr:`cardinality`
      multiplies it by the hardware choices;
    - an ``__init__`` that does not know ``hardware_genes`` still accepts it;
    - an overridden ``hardware_for`` runs after the global hardware genes are applied.
    """

    name: str = ""
    # random subnets per sandwich step when training this space's supernet (besides the largest and smallest);
    # spaces whose subnets share less (different block types, plain stacks of elastic depth) need more
    supernet_random_subnets: int = 2

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "genes" in own:
            defined = own["genes"]
            delattr(cls, "genes")
            if isinstance(defined, property):
                cls.network_genes = defined  # type: ignore[assignment]
            else:
                cls._class_network_genes = tuple(defined)
        if "cardinality" in own:
            defined = own["cardinality"]
            delattr(cls, "cardinality")
            cls.network_cardinality = defined  # type: ignore[assignment]
        if "hardware_for" in own:
            cls._network_hardware_for = own["hardware_for"]
            delattr(cls, "hardware_for")
        if "__init__" in own:
            original_init = own["__init__"]

            @functools.wraps(original_init)
            def init_with_hardware_genes(self: SearchSpace, *args: Any, hardware_genes: Any = None, **kw: Any) -> None:
                original_init(self, *args, **kw)
                if hardware_genes is not None:
                    self._hardware_spec = parse_hardware_genes(hardware_genes)
                self.__dict__.setdefault("_hardware_spec", {})
                self._check_gene_names()

            cls.__init__ = init_with_hardware_genes  # type: ignore[method-assign]

    def __init__(
        self,
        *,
        input_shape: tuple[int, int, int] = (3, 64, 64),
        num_classes: int = 10,
        hardware_genes: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
    ) -> None:
        if len(tuple(input_shape)) != 3 or any(int(d) <= 0 for d in input_shape):
            raise GenomeError(f"space {self.name!r}: input_shape {tuple(input_shape)} must be (C, H, W), all positive")
        if int(num_classes) < 1:
            raise GenomeError(f"space {self.name!r}: num_classes must be at least 1, got {num_classes}")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        if hardware_genes is not None or "_hardware_spec" not in self.__dict__:
            self._hardware_spec: dict[str, tuple[Any, ...]] = parse_hardware_genes(hardware_genes)

    # -- genes ------------------------------------------------------------------------------------------
    _class_network_genes: tuple[Gene, ...] = ()

    @property
    def network_genes(self) -> tuple[Gene, ...]:
        """The space's own genes (network genes and per-layer hardware genes such as NAX's crossbar sizes)."""
        return self.__dict__.get("_network_genes", self._class_network_genes)

    @property
    def hardware_genes(self) -> tuple[Gene, ...]:
        """The optional global hardware genes (``hw.<field>``), appended after :attr:`network_genes`."""
        spec = self.__dict__.get("_hardware_spec", {})
        return tuple(Gene(f"{HW_PREFIX}{field}", choices, hardware=True) for field, choices in spec.items())

    @property
    def genes(self) -> tuple[Gene, ...]:
        """Every gene of a genome: :attr:`network_genes` then :attr:`hardware_genes`."""
        return tuple(self.network_genes) + self.hardware_genes

    @genes.setter
    def genes(self, value: Sequence[Gene]) -> None:
        self.__dict__["_network_genes"] = tuple(value)

    def with_hardware_genes(
        self, hardware_genes: Mapping[str, Sequence[Any]] | Sequence[str] | None
    ) -> SearchSpace:
        """A copy of this space with the given global hardware genes (replacing any it had)."""
        other = copy.copy(self)
        other._hardware_spec = parse_hardware_genes(hardware_genes)
        other._check_gene_names()
        return other

    def _check_gene_names(self) -> None:
        names = [g.name for g in self.genes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise GenomeError(f"space {self.name!r}: gene names {repeated} appear more than once")

    # -- genome bookkeeping ---------------------------------------------------------------------------
    @property
    def n_choices(self) -> list[int]:
        """Number of choices of every gene (the integer box searchers work in)."""
        return [len(g.choices) for g in self.genes]

    @property
    def network_cardinality(self) -> int:
        """Number of distinct designs the space's own genes describe. Spaces with inactive genes (elastic
        depth) override this (or ``cardinality``) with the number of distinct *networks*."""
        return math.prod(len(g.choices) for g in self.network_genes)

    @property
    def cardinality(self) -> int:
        """Number of distinct designs: :attr:`network_cardinality` times every global hardware gene's choices."""
        return int(self.network_cardinality) * math.prod(len(g.choices) for g in self.hardware_genes)

    @property
    def options(self) -> dict[str, Any]:
        """Constructor keywords that rebuild this space (JSON-ready; checkpoints store them): the subclass's own
        ``_space_options`` plus the hardware genes."""
        out = dict(getattr(self, "_space_options", {}))
        if self.hardware_genes:
            out["hardware_genes"] = {g.name.removeprefix(HW_PREFIX): list(g.choices) for g in self.hardware_genes}
        return out

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.array([rng.integers(n) for n in self.n_choices], dtype=np.int64)

    def largest(self) -> np.ndarray:
        return np.array([n - 1 for n in self.n_choices], dtype=np.int64)

    def smallest(self) -> np.ndarray:
        return np.zeros(len(self.genes), dtype=np.int64)

    def validate(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """``genome`` as an ``int64`` vector after checking it: one integer choice index per gene, in range.

        Booleans and non-integral numbers (``0.5``, ``True``) are refused, not truncated."""
        if isinstance(genome, np.ndarray) and genome.dtype.kind in "iu":
            bad = []
        elif isinstance(genome, np.ndarray):
            flat = genome.reshape(-1)
            bad = [] if genome.dtype.kind == "f" and np.all(flat == np.rint(flat)) else flat.tolist()
        else:
            bad = [v for v in np.asarray(genome, dtype=object).reshape(-1).tolist() if not _is_integral(v)]
        if bad:
            raise GenomeError(
                f"space {self.name!r}: genome entries must be integer choice indices, got {bad[:3]}; use "
                "`rnc-platform spaces` for the choices, or a JSON object of gene values"
            )
        arr = np.asarray(genome, dtype=np.int64).reshape(-1)
        if arr.shape[0] != len(self.genes):
            raise GenomeError(f"space {self.name!r}: genome has {arr.shape[0]} genes, expected {len(self.genes)}")
        for gene, idx in zip(self.genes, arr, strict=True):
            if not 0 <= idx < len(gene.choices):
                raise GenomeError(
                    f"space {self.name!r}: gene {gene.name!r} index {int(idx)} out of range 0..{len(gene.choices) - 1}"
                )
        return arr

    def network_genome(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """The genome without its global hardware genes (what the network builders read)."""
        return self.validate(genome)[: len(self.network_genes)]

    def decode(self, genome: Sequence[int] | np.ndarray) -> dict[str, Any]:
        arr = self.validate(genome)
        return {gene.name: gene.choices[int(i)] for gene, i in zip(self.genes, arr, strict=True)}

    def encode(self, values: Mapping[str, Any]) -> np.ndarray:
        names = [g.name for g in self.genes]
        check_names("gene", sorted(set(values) - set(names)), names, where=f"space {self.name!r}", error=GenomeError)
        missing = [name for name in names if name not in values]
        if missing:
            raise GenomeError(f"space {self.name!r}: missing genes {missing}; give a value for every gene")
        out = []
        for gene in self.genes:
            value = values[gene.name]
            if not any(type(value) is type(c) or (_is_number(value) and _is_number(c)) for c in gene.choices) or (
                value not in gene.choices
            ):
                raise GenomeError(f"space {self.name!r}: gene {gene.name!r} = {value!r} not in {list(gene.choices)}")
            out.append(gene.choices.index(value))
        return np.array(out, dtype=np.int64)

    def active_mask(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """Which genes of ``genome`` shape its network, a ``bool`` vector ``(len(genes),)``. Every gene is active by
        default; spaces with elastic depth override this (the genes of blocks or stages beyond the chosen depth
        are inactive: they change neither the built network nor its workload)."""
        return np.ones(len(self.validate(genome)), dtype=bool)

    def canonical(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """The network's representative genome: inactive genes (:meth:`active_mask`) set to index 0."""
        arr = self.validate(genome)
        return np.where(self.active_mask(arr), arr, 0).astype(np.int64)

    def key(self, genome: Sequence[int] | np.ndarray) -> str:
        """The network key: the canonical genome as a string (``"2-0-1-..."``); genomes that build the same
        network (and apply the same hardware genes) share it, so caches, searches and fronts count networks."""
        return "-".join(str(int(i)) for i in self.canonical(genome))

    def active_genes(self, genome: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Gene name -> chosen value for the active genes only (what people and MLflow see)."""
        arr = self.validate(genome)
        mask = self.active_mask(arr)
        return {gene.name: gene.choices[int(i)] for gene, i, on in zip(self.genes, arr, mask, strict=True) if on}

    def label(self, genome: Sequence[int] | np.ndarray) -> str:
        """A short human description of the network (run names); spaces override it with their own terms."""
        import hashlib

        return "net-" + hashlib.sha1(self.key(genome).encode()).hexdigest()[:6]

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
        """``hw`` with this genome's hardware genes applied: the global ``hw.*`` genes first, then the space's
        own (per-layer) hardware genes; spaces without hardware genes return ``hw`` itself."""
        arr = self.validate(genome)
        n_network = len(self.network_genes)
        values = {
            gene.name.removeprefix(HW_PREFIX): gene.choices[int(i)]
            for gene, i in zip(self.hardware_genes, arr[n_network:], strict=True)
        }
        hw = apply_hardware_values(hw, values)
        network_hardware_for = getattr(type(self), "_network_hardware_for", None)
        if network_hardware_for is None or self.__dict__.get("_applying_network_hardware"):
            return hw  # re-entered through super().hardware_for inside a subclass's own hardware_for
        self.__dict__["_applying_network_hardware"] = True
        try:
            return network_hardware_for(self, arr, hw)
        finally:
            self.__dict__["_applying_network_hardware"] = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "genes": [{"name": g.name, "choices": list(g.choices), "hardware": g.hardware} for g in self.genes],
            "cardinality": self.cardinality,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "options": self.options,
        }


def _is_integral(value: object) -> bool:
    """An int (or integral numpy integer), not a bool and not a float such as ``0.5`` or ``1.0``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)

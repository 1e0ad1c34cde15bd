"""Typed records the platform passes around: :class:`Genome`, :class:`Candidate` and :class:`TrialPlan`.

- A :class:`Genome` is the one immutable form of a genome (a tuple of choice indices, one per gene of the
  space, as ``rnc.search`` searchers ask them); it goes unchanged from the searcher to the simulator, the
  checkpoint, the candidates table and MLflow.
- A :class:`Candidate` is one evaluated network on one trial's hardware: its genome, its canonical network key
  (``SearchSpace.key``: genomes that build the same network share it), its active genes, hardware fingerprint,
  metrics (named from :data:`rnc.platform.metrics.METRICS`), constraint violations and feasibility.
  :meth:`Candidate.to_params` gives what MLflow logs as params; :meth:`Candidate.to_row` the flat candidates
  table row; :meth:`Candidate.to_json` / :meth:`Candidate.from_json` the checkpoint form.
- A :class:`TrialPlan` is the frozen plan of one Tune trial (one searcher x crossbar budget), with its hardware
  validated and fingerprinted once, when the launch builds it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rnc.platform.metrics import METRIC_NAMES

if TYPE_CHECKING:
    from rnc.simulator import HardwareConfig


class Genome(tuple):
    """An immutable genome: a tuple of non-negative ``int`` choice indices (hashable, JSON-ready as a list).

    ``np.asarray(genome)`` gives the ``int64`` vector spaces and searchers take.
    """

    __slots__ = ()

    def __new__(cls, values: Iterable[int] | np.ndarray) -> Genome:
        flat = np.asarray(values).reshape(-1) if isinstance(values, np.ndarray) else values
        return super().__new__(cls, (int(v) for v in flat))

    def array(self) -> np.ndarray:
        """The genome as an ``int64`` vector ``(len(genes),)``."""
        return np.asarray(self, dtype=np.int64)

    def __str__(self) -> str:
        return "-".join(str(v) for v in self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Genome, (tuple(self),))


@dataclass(frozen=True)
class SubnetAccuracy:
    """What a SupernetEvaluator measured for one subnet: top-1 accuracy (fraction in [0, 1]) on the dataset's test
    split with the supernet's weights (batch-norm recalibrated), and on the crossbars (``to_analog`` on the
    candidate's hardware) when that was asked; ``None`` when not measured."""

    accuracy: float | None
    hw_accuracy: float | None = None


@dataclass(frozen=True)
class ObjectiveRef:
    """One minimized objective of a trial: the metric it reads and ``sign`` (``-1`` for a maximized metric)."""

    metric: str
    sign: float


@dataclass(frozen=True)
class Candidate:
    """One evaluated network of one trial (see the module docstring).

    Attributes:
        candidate_id: ``<trial key>/<index:05d>``, unique in a launch and stable across ``--resume``.
        genes: active genes only, gene name -> chosen value (``SearchSpace.active_genes``).
        label: a short description of the network (``SearchSpace.label``).
        hardware: fingerprint of the trial's budget hardware (``HardwareConfig.fingerprint``).
        metrics: every name of :data:`~rnc.platform.metrics.METRIC_NAMES` -> value in its stored unit, or ``None``
            (not measured: no accuracy for a candidate that failed its hardware constraints).
        violations: constraint name -> violation (``<= 0`` satisfied).
        objectives: the minimized objective row told to the searcher.
        compiles: whether the compiler placed the network on the budget's crossbars.
    """

    candidate_id: str
    trial: str
    searcher: str
    budget: int
    index: int
    generation: int
    genome: Genome
    network_key: str
    label: str
    genes: Mapping[str, Any]
    hardware: str
    metrics: Mapping[str, float | None]
    violations: Mapping[str, float] = field(default_factory=dict)
    objectives: tuple[float, ...] = ()
    feasible: bool = True
    compiles: bool = True
    timestamp_ms: int = 0

    def value(self, metric: str) -> float | None:
        """A metric's value (stored unit), ``None`` when not measured or not finite."""
        v = self.metrics.get(metric)
        return None if v is None or not math.isfinite(float(v)) else float(v)

    def run_name(self) -> str:
        """MLflow run name: searcher, budget and the network, e.g. ``nsga2 b96 #012 d2.3.4.2 k5.0 e4.2``."""
        budget = f"b{self.budget}" if self.budget else "bunl"
        return f"{self.searcher} {budget} #{self.index:03d} {self.label}"

    def to_params(self) -> dict[str, str]:
        """MLflow params: the active genes, the network key, searcher and budget (all strings)."""
        params = {str(k): _param_text(v) for k, v in self.genes.items()}
        params["network"] = self.network_key
        params["searcher"] = self.searcher
        params["budget"] = str(self.budget)
        return params

    def to_row(self) -> dict[str, Any]:
        """The flat candidates-table row: identity, metrics (``NaN`` when missing), feasibility, violations
        (``violation.<name>``) and active genes (``gene.<name>``; an inactive gene's column stays empty)."""
        row: dict[str, Any] = {
            "candidate_id": self.candidate_id,
            "trial": self.trial,
            "searcher": self.searcher,
            "budget": int(self.budget),
            "generation": int(self.generation),
            "index": int(self.index),
            "network_key": self.network_key,
            "label": self.label,
            "genome": json.dumps(list(self.genome)),
            "hardware": self.hardware,
            "feasible": bool(self.feasible),
            "compiles": bool(self.compiles),
        }
        for name in METRIC_NAMES:
            v = self.value(name)
            row[name] = math.nan if v is None else v
        for name, v in self.violations.items():
            row[f"violation.{name}"] = float(v)
        for name, v in self.genes.items():
            row[f"gene.{name}"] = v if isinstance(v, int | float | str | bool) else json.dumps(v)
        return row

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (trial checkpoints); :meth:`from_json` reads it back."""
        data = asdict(self)
        data["genome"] = list(self.genome)
        data["objectives"] = list(self.objectives)
        data["genes"] = {k: _plain(v) for k, v in self.genes.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Candidate:
        fields = dict(data)
        fields["genome"] = Genome(fields["genome"])
        fields["objectives"] = tuple(float(v) for v in fields.get("objectives", ()))
        return cls(**fields)

    def with_updates(self, **changes: Any) -> Candidate:
        """A copy with some fields replaced (``metrics`` merged into the existing ones)."""
        if "metrics" in changes:
            changes["metrics"] = {**self.metrics, **changes["metrics"]}
        return type(self)(**{**{f: getattr(self, f) for f in self.__dataclass_fields__}, **changes})


@dataclass(frozen=True)
class TrialPlan:
    """The plan of one Tune trial (one searcher x crossbar budget); built once by the launch, restored by Tune
    on ``--resume``. ``hardware`` is validated once and ``hardware_fingerprint`` computed once, here.

    ``bounds`` are the per-objective ``(ideal, nadir)`` of the minimized objectives (hypervolume normalization);
    ``simulators``/``evaluators``/``tracker`` name the launch's shared Ray actors.
    """

    key: str
    index: int
    launch_id: str
    searcher: str
    searcher_options: Mapping[str, Any]
    budget: int
    seed: int
    eval_seed: int
    space: str
    space_options: Mapping[str, Any]
    n_choices: tuple[int, ...]
    hardware: HardwareConfig
    hardware_fingerprint: str
    objectives: tuple[ObjectiveRef, ...]
    constraints: tuple[str, ...]
    fit_budget: bool
    min_accuracy: float | None
    max_latency_ns: float | None
    needs_accuracy: bool
    needs_hw_accuracy: bool
    evaluations: int
    batch_size: int
    bounds: tuple[tuple[float, float], ...]
    simulators: tuple[str, ...]
    evaluators: tuple[str, ...]
    tracker: str

    @property
    def worst(self) -> list[float]:
        """The worst (nadir) bound of every minimized objective: the row of an unmeasured candidate."""
        return [b[1] for b in self.bounds]

    @property
    def trial_params(self) -> dict[str, Any]:
        """What the trial run logs as params: its seed and searcher options."""
        return {"seed": self.seed, **self.searcher_options}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _param_text(value: Any) -> str:
    value = _plain(value)
    return json.dumps(value) if isinstance(value, list | dict) else str(value)

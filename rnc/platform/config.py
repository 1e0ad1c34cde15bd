"""The experiment configuration of one ``rnc-platform launch`` (``ExperimentConfig``), read from YAML.

A launch searches, for every pair (searcher, crossbar budget) of its grid, the Pareto front of the chosen
objectives. Conventions:

- Objectives are named from the metric table (:data:`rnc.platform.metrics.METRICS`) and each is minimized or
  maximized (``goal``); searchers always minimize, so a maximized metric is told as its negative.
- Constraints are told to searchers as violations, ``<= 0`` meaning satisfied (pymoo's convention):
  ``fit_budget`` (the compiled network fits the budget's crossbars), ``min_accuracy`` and ``max_latency_ns``.
- ``hardware.budgets`` lists crossbar budgets (``HardwareConfig.crossbars``; ``0`` = unlimited) applied to the
  base hardware (``preset`` or ``file`` plus ``set`` overrides).
- Relative paths (``storage_path``, ``supernet.cache_dir``, a ``sqlite:///`` tracking URI) are relative to the
  working directory of the launch.

Every validation error names the field (dotted path) and the reason; :class:`ConfigError` carries them all.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rnc.errors import UserError, close_matches
from rnc.platform.metrics import ACCURACY_OBJECTIVES, METRIC_BY_OBJECTIVE, OBJECTIVE_NAMES

if TYPE_CHECKING:
    from rnc.simulator import HardwareConfig

DEFAULT_CONFIG_NAME = "default.yaml"


class ConfigError(UserError, ValueError):
    """An experiment configuration that cannot be used; the message names each field and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(_Strict):
    """One objective: an objective name of the metric table and whether it is minimized or maximized."""

    name: Literal[OBJECTIVE_NAMES]  # type: ignore[valid-type]
    goal: Literal["min", "max"] | None = None

    @model_validator(mode="after")
    def _default_goal(self) -> Objective:
        if self.goal is None:
            object.__setattr__(self, "goal", METRIC_BY_OBJECTIVE[self.name].goal)
        return self

    @property
    def metric(self) -> str:
        """The candidate metric this objective reads (``latency`` -> ``latency_ns``)."""
        return METRIC_BY_OBJECTIVE[self.name].name

    @property
    def sign(self) -> float:
        """``+1`` for minimized objectives, ``-1`` for maximized ones (searchers minimize ``sign * value``)."""
        return 1.0 if self.goal == "min" else -1.0


class Constraints(_Strict):
    """Constraints told to the searchers as violations (``<= 0`` satisfied)."""

    fit_budget: bool = Field(default=True, description="the compiled network must fit the crossbar budget")
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0, description="minimum top-1 accuracy (0..1)")
    max_latency_ns: float | None = Field(default=None, gt=0.0, description="maximum single-image latency (ns)")


class SearcherSpec(_Strict):
    """A searcher of the grid: a name from ``rnc.search`` (``nsga2``, ``bayes``, ``random``) and its options."""

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name


class SpaceSpec(_Strict):
    """The search space (``mbv3``, ``nax``, ``imc-blocks``) and the options ``get_space`` takes."""

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetSpec(_Strict):
    """The dataset the supernet trains and evaluates on (``rnc.search.load_dataset``).

    ``format``, ``per_class`` and ``test_per_class`` are cifar10's (``rnc.search.cifar10``): the source
    (``auto``, ``torchvision`` or ``imagefolder``) and seeded subsets of N images per class.
    """

    name: str = "digits"
    root: str | None = None
    image_size: int | None = Field(default=None, ge=8, le=1024)
    download: bool = False
    format: Literal["auto", "torchvision", "imagefolder"] = "auto"
    per_class: int | None = Field(default=None, ge=1, le=5000)
    test_per_class: int | None = Field(default=None, ge=1, le=1000)

    def supernet_options(self) -> dict[str, Any]:
        """Keywords of ``rnc.search.supernet.ensure_supernet`` for the cifar10 options."""
        return {"data_format": self.format, "per_class": self.per_class, "test_per_class": self.test_per_class}


class SupernetSpec(_Strict):
    """Supernet training, cached by a hash of what determines it under ``cache_dir``."""

    epochs: int = Field(default=3, ge=1, le=10_000)
    cache_dir: str = "rnc-runs/supernets"
    # training recipe (rnc.search.supernet.recipe.SupernetRecipe): distill, kd_temperature, shrink, ...
    recipe: dict[str, Any] = Field(default_factory=dict)

    @field_validator("recipe")
    @classmethod
    def _recipe_valid(cls, v: dict[str, Any]) -> dict[str, Any]:
        from rnc.search.supernet.recipe import SupernetRecipe

        SupernetRecipe.from_options(v)  # RecipeError (a ValueError) names the option
        return v


class HardwareSpec(_Strict):
    """The base hardware (a preset or a YAML file, plus ``set`` overrides) and the crossbar budgets of the grid.

    With neither ``preset`` nor ``file``, the ``rnc`` preset (the RNC paper's 128x128 crossbars) is used.
    """

    preset: str | None = None
    file: str | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    budgets: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("budgets")
    @classmethod
    def _budgets_valid(cls, v: list[int]) -> list[int]:
        if any(b < 0 for b in v):
            raise ValueError(f"crossbar budgets must be >= 0 (0 = unlimited), got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"crossbar budgets must be distinct, got {v}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> HardwareSpec:
        if self.file is not None and self.preset is not None:
            raise ValueError("give either 'preset' or 'file', not both")
        if "crossbars" in self.set:
            raise ValueError("'set.crossbars' is the budget: list budgets under 'hardware.budgets' instead")
        return self

    def base(self) -> HardwareConfig:
        """The base :class:`~rnc.simulator.HardwareConfig` (budget not applied)."""
        from rnc.simulator import HardwareConfig

        hw = HardwareConfig.resolve(self.file if self.file is not None else (self.preset or "rnc"))
        return hw.with_updates(**self.set) if self.set else hw

    def for_budget(self, budget: int) -> HardwareConfig:
        """The base hardware with ``crossbars = budget``."""
        return self.base().with_updates(crossbars=int(budget))


class SearchSpec(_Strict):
    """How much every trial evaluates: ``evaluations`` candidates, asked ``batch_size`` at a time."""

    evaluations: int = Field(default=100, ge=1, le=10_000_000)
    batch_size: int = Field(default=16, ge=1, le=100_000)
    strategy: Literal["rnc", "isaac"] = "rnc"
    reference_samples: int = Field(
        default=64, ge=1, le=100_000, description="random genomes simulated to set the hypervolume reference point"
    )

    @property
    def generations(self) -> int:
        """Number of ask/tell rounds: ``ceil(evaluations / batch_size)`` (the last one may be smaller)."""
        return -(-self.evaluations // self.batch_size)


class PoolSpec(_Strict):
    """Actor pool sizes and per-actor resources; ``None`` sizes come from the cluster's resources."""

    simulators: int | None = Field(default=None, ge=1, le=4096)
    evaluators: int | None = Field(default=None, ge=0, le=4096)
    simulator_cpus: float = Field(default=1.0, gt=0.0)
    evaluator_cpus: float = Field(default=1.0, gt=0.0)
    trial_cpus: float = Field(default=0.1, ge=0.0, description="CPU share of one Tune trial (it mostly waits)")
    max_concurrent_trials: int | None = Field(default=None, ge=1)


class ExperimentConfig(_Strict):
    """One experiment: space, data, hardware grid, searchers, objectives, constraints, pools and storage."""

    name: str = Field(min_length=1, max_length=200)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    space: SpaceSpec
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    supernet: SupernetSpec = Field(default_factory=SupernetSpec)
    hardware: HardwareSpec = Field(default_factory=HardwareSpec)
    searchers: list[SearcherSpec] = Field(min_length=1)
    objectives: list[Objective] = Field(min_length=2)
    constraints: Constraints = Field(default_factory=Constraints)
    search: SearchSpec = Field(default_factory=SearchSpec)
    pools: PoolSpec = Field(default_factory=PoolSpec)
    storage_path: str = "rnc-runs/ray"
    tracking_uri: str = "sqlite:///rnc-runs/mlflow.db"

    @field_validator("name")
    @classmethod
    def _name_safe(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("use letters, digits, '_', '-', '.' (it names the MLflow experiment and Tune run)")
        return v

    @field_validator("storage_path")
    @classmethod
    def _storage_is_a_path(cls, v: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", v.strip()) and not v.strip().startswith("file://"):
            raise ValueError(
                "launch keeps its launch record, Tune state and supernet checkpoints in a filesystem folder: use a "
                "path every node sees (an NFS mount or a Kubernetes PersistentVolumeClaim), not an object-store URI"
            )
        return v

    @field_validator("objectives")
    @classmethod
    def _objectives_distinct(cls, v: list[Objective]) -> list[Objective]:
        names = [o.name for o in v]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives must be distinct, got {names}")
        return v

    @field_validator("searchers")
    @classmethod
    def _searchers_distinct(cls, v: list[SearcherSpec]) -> list[SearcherSpec]:
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"searchers must be distinct, got {names}")
        return v

    # -- derived ------------------------------------------------------------------------------------
    @property
    def needs_accuracy(self) -> bool:
        """Whether any objective or constraint needs the supernet's accuracy evaluation."""
        return any(o.name in ACCURACY_OBJECTIVES for o in self.objectives) or self.constraints.min_accuracy is not None

    @property
    def needs_hw_accuracy(self) -> bool:
        return any(o.name == "hw_accuracy" for o in self.objectives)

    @property
    def constraint_names(self) -> list[str]:
        """Names of the active constraints, in the order violations are told."""
        names = []
        if self.constraints.fit_budget:
            names.append("fit_budget")
        if self.constraints.min_accuracy is not None:
            names.append("min_accuracy")
        if self.constraints.max_latency_ns is not None:
            names.append("max_latency_ns")
        return names

    def grid(self) -> list[tuple[SearcherSpec, int]]:
        """The (searcher, crossbar budget) pairs, one Tune trial each, in a stable order."""
        return [(s, b) for s in self.searchers for b in self.hardware.budgets]

    def with_overrides(
        self,
        *,
        seed: int | None = None,
        tracking_uri: str | None = None,
        storage_path: str | None = None,
        budgets: list[int] | None = None,
        evaluations: int | None = None,
        sets: list[str] | None = None,
    ) -> ExperimentConfig:
        """A validated copy with command-line overrides applied: the named ones, then every ``KEY=VALUE`` of
        ``sets`` (``KEY`` a dotted field path such as ``search.batch_size``; ``VALUE`` read as YAML)."""
        data = self.model_dump()
        named = {
            ("seed",): seed,
            ("tracking_uri",): tracking_uri,
            ("storage_path",): storage_path,
            ("hardware", "budgets"): budgets,
            ("search", "evaluations"): evaluations,
        }
        for path, value in named.items():
            if value is not None:
                _set_path(data, path, value)
        for item in sets or []:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set search.batch_size=8")
            try:
                value = yaml.safe_load(text) if text.strip() else None
            except yaml.YAMLError as exc:
                raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from None
            _set_path(data, tuple(key.strip().split(".")), value)
        return validate_config(data, where="command-line overrides")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        """Read and validate a YAML file; errors name the file, each field and the reason."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"experiment config {str(path)!r} does not exist (give a YAML file, e.g. examples/)")
        from rnc.simulator.hardware import read_yaml_mapping

        data = read_yaml_mapping(path, "experiment", ConfigError)
        if not data:
            raise ConfigError(f"{path}: the experiment file is empty; see examples/*.yaml for its fields")
        return validate_config(data, where=str(path))

    @classmethod
    def default(cls) -> ExperimentConfig:
        """The embedded default: digits, ``mbv3`` at a small resolution, NSGA-II and Bayes over two budgets."""
        text = resources.files("rnc.platform").joinpath(DEFAULT_CONFIG_NAME).read_text()
        return validate_config(yaml.safe_load(text), where="embedded default config")


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if child is not None:
                raise ConfigError(f"--set {'.'.join(path)}: {part!r} is not a group of fields")
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def validate_config(data: dict[str, Any], *, where: str) -> ExperimentConfig:
    """Validate a mapping; raise :class:`ConfigError` listing ``field.path: reason`` for every problem."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                hint = close_matches(str(err["loc"][-1]), _all_field_names()) or " (check the spelling)"
                msg = f"unknown field{hint}; see docs/platform.md for the fields"
            problems.append(f"{loc}: {msg}")
        raise ConfigError(f"{where}: invalid experiment config: " + "; ".join(problems)) from None


def _all_field_names() -> list[str]:
    models = (ExperimentConfig, SpaceSpec, DatasetSpec, SupernetSpec, HardwareSpec, SearcherSpec, Objective,
              Constraints, SearchSpec, PoolSpec)
    return sorted({name for model in models for name in model.model_fields})


def searcher_options(name: str, options: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """The searcher's options; NSGA-II's population defaults to the batch size, so a batch is a generation."""
    if name == "nsga2" and "pop_size" not in options:
        return {**options, "pop_size": int(batch_size)}
    return dict(options)


def absolute_path(path: str | Path) -> Path:
    """``path`` made absolute against the working directory (Ray workers run elsewhere)."""
    return Path(path).expanduser().resolve()


def absolute_tracking_uri(uri: str) -> str:
    """A tracking URI with a relative ``sqlite:///`` path (or a bare directory) made absolute; others unchanged."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(absolute_path(uri.removeprefix("sqlite:///")))
    if "://" not in uri:
        return absolute_path(uri).as_uri()
    return uri

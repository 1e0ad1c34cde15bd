"""Crossbar hardware described as data (``HardwareConfig``), in the style of Accelergy/CiMLoop.

Conventions
-----------
- A crossbar has ``crossbar_rows`` word lines (inputs) and ``crossbar_cols`` bit lines (outputs).
- A weight of ``weight_bits`` bits is bit-sliced over ``ceil(weight_bits / cell_bits)`` adjacent cells
  (columns) of ``cell_bits`` bits each (ISAAC, ISCA 2016, Sec. 4; NeuroSim).
- Signed weights: ``offset`` encoding stores ``w + 2**(weight_bits-1)`` and subtracts the offset digitally
  (ISAAC's "flipped" encoding; no extra columns); ``differential`` uses a positive and a negative column
  per slice (doubles the columns).
- Inputs of ``input_bits`` bits stream bit-serially in ``dac_bits`` slices: ``ceil(input_bits / dac_bits)``
  crossbar reads per output position, each read lasting ``read_ns``.
- ``crossbars`` is the budget of crossbars the network must fit in; ``0`` means unlimited.
- ``layer_crossbar_sizes`` maps a layer name (as :func:`rnc.simulator.trace_workload` names it: the
  module's qualified name) to the ``(rows, cols)`` of the crossbars that layer is mapped onto:
  heterogeneous tiles, as NAX (Negi et al., DAC 2022) co-designs crossbar size per layer.
- The component table (Accelergy/CiMLoop style) holds, per component, its count inside its container
  (``ima`` / ``tile`` / ``chip``; the hierarchy counts are ``crossbars_per_ima``, ``imas_per_tile``,
  ``tiles_per_chip``), its power and area as the source tables give them (the roll-up sums these), its
  leakage where the source gives one, the energy category it reports under, and its actions: each action
  has an energy in pJ and names the compiler event (:data:`COMPILER_EVENTS`) it is charged on. An unknown
  event, a compiler event no action is charged on, or a component without an ``actions`` entry is a
  validation error naming the field, never a silent zero. Units are in every field name.
- Every component table has a ``digital_unit`` (action ``op`` on event ``digital_op``, ``ops_per_ns`` per
  instance) for the work that does not map onto crossbars; :attr:`HardwareConfig.digital_unit` reads it.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rnc.errors import UserError, check_names

PRESET_DIR = Path(__file__).with_name("presets")

Level = Literal["ima", "tile", "chip"]


class HardwareConfigError(UserError, ValueError):
    """A hardware description that cannot be used; the message names the field and what to do."""


# The events the compiler counts, in kernel order, and what one event is. Each action of a component names one.
COMPILER_EVENTS: dict[str, str] = {
    "array_read": "one read of a whole crossbar array (charged per active cell: active cells / array cells)",
    "row_drive": "one active crossbar row driven for one read (input bit-slice)",
    "column_convert": "one active crossbar column converted after one read",
    "word_transfer": "one 256-bit activation word moved between the tile buffer and an IMA",
    "digital_op": "one elementary operation of work that does not map onto crossbars",
}
LEAKAGE_CATEGORY = "leakage"
DIGITAL_UNIT = "digital_unit"


class Action(BaseModel):
    """One action of a component: its energy and the compiler event it is charged on.

    ``adc_reference_bits`` (ADCs only): the energy is given at that resolution and scales as
    ``2 ** (adc_bits - adc_reference_bits)`` (energy per conversion doubles per bit, the trend ISAAC and
    the Murmann ADC survey use for SAR ADCs at this resolution).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    energy_pj: float = Field(ge=0)
    event: str
    adc_reference_bits: int | None = Field(default=None, ge=1, le=16)

    @field_validator("event")
    @classmethod
    def _known_event(cls, v: str) -> str:
        if v not in COMPILER_EVENTS:
            raise ValueError(f"unknown compiler event {v!r}; events: {', '.join(COMPILER_EVENTS)}")
        return v


class Component(BaseModel):
    """One kind of hardware component, per unit.

    ``count`` is how many units one container (``level``) holds; ``power_mw`` and ``area_mm2`` are per unit,
    as the source table gives them (the roll-up sums ``count x`` these up the hierarchy); ``leakage_mw`` is
    the static power per unit while powered (charged over the latency, category ``leakage``). ``actions``
    maps an action name (``read``, ``convert``, ``drive``, ``add``, ``access``, ``op``...) to its energy and
    compiler event; an empty mapping (written out) marks a component that is in the roll-up but charged on
    no event (a router, an off-chip link). ``category`` is the energy category its actions report under.
    ``ops_per_ns`` is the throughput of one unit (the digital unit).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Level
    count: float = Field(gt=0)
    power_mw: float = Field(ge=0)
    area_mm2: float = Field(ge=0)
    leakage_mw: float = Field(default=0.0, ge=0)
    category: str | None = None
    actions: dict[str, Action]
    ops_per_ns: float | None = Field(default=None, gt=0)
    note: str = ""

    @model_validator(mode="after")
    def _category_named(self) -> Component:
        if self.actions and not self.category:
            raise ValueError("a component with actions must name the energy 'category' its actions report under")
        if self.category == LEAKAGE_CATEGORY:
            raise ValueError(f"category {LEAKAGE_CATEGORY!r} is reserved for leakage_mw")
        return self


@dataclass(frozen=True)
class DigitalUnit:
    """The digital unit of a component table (``components["digital_unit"]``), per instance.

    ``energy_pj_per_op``: energy of one elementary operation; ``ops_per_ns``: operations one instance
    completes per ns; ``instances``: units per container ``level``; ``area_mm2`` per instance.
    """

    energy_pj_per_op: float
    ops_per_ns: float
    level: str
    instances: float
    area_mm2: float
    power_mw: float


class NonIdealities(BaseModel):
    """Device and circuit non-idealities of the crossbar cells (all zero = ideal).

    Used by :func:`rnc.simulator.to_analog`; the conventions are documented there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    conductance_sigma: float = Field(default=0.0, ge=0, description="relative std of programmed conductance")
    stuck_at_on_rate: float = Field(default=0.0, ge=0, le=1, description="fraction of cells stuck at G_on")
    stuck_at_off_rate: float = Field(default=0.0, ge=0, le=1, description="fraction of cells stuck at G_off")
    read_noise_sigma: float = Field(default=0.0, ge=0, description="relative std of per-read noise")
    drift_nu: float = Field(default=0.0, ge=0, description="power-law drift exponent, G(t)=G0 (t/t0)^-nu")
    drift_nu_sigma: float = Field(
        default=0.0, ge=0, description="device-to-device std of the drift exponent (drift after global compensation)"
    )
    drift_time_s: float = Field(default=0.0, ge=0, description="time since programming, seconds")
    drift_t0_s: float = Field(default=1.0, gt=0, description="reference time of the drift law, seconds")
    wire_resistance_ratio: float = Field(
        default=0.0, ge=0, description="IR drop: wire segment resistance / cell on-resistance"
    )
    on_off_ratio: float = Field(default=0.0, ge=0, description="G_on/G_off; 0 = ideal (G_off = 0)")

    @model_validator(mode="after")
    def _rates_sum(self) -> NonIdealities:
        if self.stuck_at_on_rate + self.stuck_at_off_rate > 1:
            raise ValueError("stuck_at_on_rate + stuck_at_off_rate must be <= 1")
        return self


class HardwareConfig(BaseModel):
    """An RRAM crossbar accelerator: crossbar geometry, precisions, timing, budget and component table.

    Field names are a stable interface (scripts rely on them). Build one from a preset
    (:meth:`preset`), a YAML file (:meth:`from_yaml`) or keywords; derive variants with
    ``model_copy(update={...})`` -- updates are re-validated by :meth:`with_updates`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    crossbar_rows: int = Field(default=128, ge=1, le=65536)
    crossbar_cols: int = Field(default=128, ge=1, le=65536)
    cell_bits: int = Field(default=2, ge=1, le=16)
    weight_bits: int = Field(default=16, ge=1, le=32)
    input_bits: int = Field(default=16, ge=1, le=32)
    dac_bits: int = Field(default=1, ge=1, le=16)
    adc_bits: int = Field(default=8, ge=1, le=16)
    adcs_per_crossbar: int = Field(default=1, ge=1)
    read_ns: float = Field(default=100.0, gt=0)
    crossbars: int = Field(default=0, ge=0, description="budget of crossbars; 0 = unlimited")
    signed_encoding: Literal["offset", "differential"] = "offset"
    layer_crossbar_sizes: dict[str, tuple[int, int]] = Field(default_factory=dict)
    crossbars_per_ima: int = Field(default=8, ge=1)
    imas_per_tile: int = Field(default=12, ge=1)
    tiles_per_chip: int = Field(default=168, ge=1)
    adc_sample_rate_gsps: float = Field(default=1.28, gt=0)
    level_names: dict[Level, str] = Field(
        default_factory=lambda: {"ima": "IMA", "tile": "tile", "chip": "chip"},
        description="what the source calls each level (PUMA: core/tile/node; NeuroSim: PE/tile/chip)",
    )
    components: dict[str, Component] = Field(default_factory=dict)
    nonideal: NonIdealities = Field(default_factory=NonIdealities)

    @field_validator("layer_crossbar_sizes")
    @classmethod
    def _sizes_positive(cls, v: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for layer, (rows, cols) in v.items():
            if rows < 1 or cols < 1:
                raise ValueError(f"layer {layer!r}: crossbar size {rows}x{cols} must be positive")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> HardwareConfig:
        if self.dac_bits > self.input_bits:
            raise ValueError(f"dac_bits ({self.dac_bits}) cannot exceed input_bits ({self.input_bits})")
        if self.cell_bits > self.weight_bits:
            raise ValueError(f"cell_bits ({self.cell_bits}) cannot exceed weight_bits ({self.weight_bits})")
        if self.components:
            check_component_table(self.components)
        return self

    # -- derived quantities -------------------------------------------------------------------------
    @property
    def slices_per_weight(self) -> int:
        """Cells (columns) one weight occupies: ``ceil(weight_bits / cell_bits)``, doubled if differential."""
        slices = math.ceil(self.weight_bits / self.cell_bits)
        return slices * (2 if self.signed_encoding == "differential" else 1)

    @property
    def reads_per_input(self) -> int:
        """Crossbar reads per output position: ``ceil(input_bits / dac_bits)``."""
        return math.ceil(self.input_bits / self.dac_bits)

    @property
    def digital_unit(self) -> DigitalUnit:
        """The digital unit (``components["digital_unit"]``, ISAAC's table when the table is empty)."""
        comps = self.components or isaac_components()
        unit = comps[DIGITAL_UNIT]
        assert unit.ops_per_ns is not None  # guaranteed by check_component_table
        return DigitalUnit(unit.actions["op"].energy_pj, unit.ops_per_ns, unit.level, unit.count, unit.area_mm2,
                           unit.power_mw)

    def crossbar_size_for(self, layer_name: str) -> tuple[int, int]:
        """``(rows, cols)`` of the crossbars ``layer_name`` is mapped onto."""
        return self.layer_crossbar_sizes.get(layer_name, (self.crossbar_rows, self.crossbar_cols))

    def with_updates(self, **updates: object) -> HardwareConfig:
        """A validated copy with ``updates`` applied (``model_copy`` does not re-validate)."""
        data = self.model_dump()
        check_names("hardware field", list(updates), list(type(self).model_fields), where="hardware",
                    error=HardwareConfigError)
        data.update(updates)
        return _validated(data, where="updated hardware")

    def set_values(self, assignments: list[str]) -> HardwareConfig:
        """Apply ``KEY=VALUE`` strings (CLI ``--set``); dotted keys reach nested models (``nonideal.x``)."""
        data = self.model_dump()
        for text in assignments:
            if "=" not in text:
                raise HardwareConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set cell_bits=2")
            key, raw = text.split("=", 1)
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                problem = str(getattr(exc, "problem", None) or type(exc).__name__)
                raise HardwareConfigError(
                    f"--set {text!r}: the value {raw!r} is not valid YAML ({problem}); quote it or fix the brackets"
                ) from None
            target = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                if not isinstance(target.get(part), dict):
                    raise HardwareConfigError(f"--set {text!r}: {part!r} is not a nested hardware section")
                target = target[part]
            check_names("hardware field", [parts[-1]], list(target), where=f"--set {text!r}",
                        error=HardwareConfigError)
            target[parts[-1]] = value
        return _validated(data, where="--set")

    def fingerprint(self) -> str:
        """A short stable hash of every field (cache keys); not cached, so ``model_copy`` stays safe."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> HardwareConfig:
        """A named preset (a YAML file in ``rnc/simulator/presets``): ``isaac``, ``rnc``, ... see :meth:`presets`."""
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            available = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
            raise HardwareConfigError(f"unknown hardware preset {name!r}; available presets: {available}")
        return cls.from_yaml(path)

    @classmethod
    def presets(cls) -> list[str]:
        return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> HardwareConfig:
        """Load a YAML file; ``base: PRESET`` inherits a preset and overrides its fields."""
        path = Path(path)
        if not path.is_file():
            raise HardwareConfigError(f"hardware file {str(path)!r} does not exist")
        data = read_yaml_mapping(path, "hardware", HardwareConfigError)
        if not data:
            raise HardwareConfigError(
                f"{path}: the hardware file is empty; give its fields, or `base: rnc` (or isaac) to use a preset as is"
            )
        base = data.pop("base", None)
        if base is not None:
            merged = cls.preset(str(base)).model_dump()
            for key, value in data.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "components":
                    merged[key] = {**merged[key], **value}
                elif key == "components" and isinstance(value, dict):
                    comps = dict(merged["components"])
                    for cname, cval in value.items():
                        if not isinstance(cval, dict):
                            raise HardwareConfigError(
                                f"{path}: components.{cname}: expected a mapping of component fields (level, count, "
                                f"power_mw, area_mm2, action_ns), got {cval!r}"
                            )
                        if cname not in comps and "level" not in cval:  # a new component names its level
                            check_names("component", [cname], list(comps), where=f"{path}: components",
                                        error=HardwareConfigError)
                        comps[cname] = {**comps.get(cname, {}), **cval}
                    merged[key] = comps
                else:
                    merged[key] = value
            data = merged
        return _validated(data, where=str(path))

    @classmethod
    def resolve(cls, spec: str | Path | HardwareConfig) -> HardwareConfig:
        """A preset name, a YAML path, or a config as it is."""
        if isinstance(spec, HardwareConfig):
            return spec
        text = str(spec)
        if text in cls.presets():
            return cls.preset(text)
        if text.endswith((".yaml", ".yml")) or Path(text).exists():
            return cls.from_yaml(text)
        raise HardwareConfigError(
            f"hardware {text!r} is neither a preset ({', '.join(cls.presets())}) nor a YAML file"
        )


@functools.lru_cache(maxsize=1)
def isaac_components() -> dict[str, Component]:
    """ISAAC's component table (the fallback of a configuration with an empty table), read once."""
    return HardwareConfig.preset("isaac").components


def check_component_table(components: dict[str, Component]) -> None:
    """Raise ``ValueError`` naming the field when a compiler event has no action or the digital unit is incomplete.

    Every event of :data:`COMPILER_EVENTS` must be charged on at least one action (an event with no component
    would silently cost nothing); ``digital_unit`` must exist with an action ``op`` on ``digital_op`` and
    ``ops_per_ns``.
    """
    charged = {a.event for c in components.values() for a in c.actions.values()}
    missing = [e for e in COMPILER_EVENTS if e not in charged]
    if missing:
        raise ValueError(
            f"components: no action is charged on compiler event(s) {', '.join(missing)}; give a component an "
            f"action with 'event: {missing[0]}' ({COMPILER_EVENTS[missing[0]]})"
        )
    unit = components.get(DIGITAL_UNIT)
    if unit is None:
        raise ValueError(f"components.{DIGITAL_UNIT}: missing; every table needs the digital unit (see docs)")
    op = unit.actions.get("op")
    if op is None or op.event != "digital_op":
        raise ValueError(f"components.{DIGITAL_UNIT}.actions.op: needs an action 'op' with 'event: digital_op'")
    if unit.ops_per_ns is None:
        raise ValueError(f"components.{DIGITAL_UNIT}.ops_per_ns: missing (operations per ns of one unit)")


def read_yaml_mapping(path: Path, what: str, error: type[Exception]) -> dict:
    """The top-level mapping of the YAML file ``path`` (``{}`` when empty); ``error`` names the file and the fault
    for text that is not UTF-8, not YAML, or not a mapping."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (byte {exc.start} is not UTF-8); give a {what} YAML file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise error(f"{path}: not valid YAML{where}: {problem}; fix the {what} file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping of {what} fields at the top level, got {type(data).__name__}")
    return data


def _validated(data: dict, *, where: str) -> HardwareConfig:
    try:
        return HardwareConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise HardwareConfigError(f"{where}: invalid hardware configuration: {problems}") from None

"""The digital unit: what runs off the crossbars (attention's QK^T and AV, softmax, layer norm, layer scale,
position embeddings, class tokens), with its own latency, energy and area.

One accessor, :func:`digital_unit`, reads the unit from the hardware description: the ``digital_unit``
component of its table (:attr:`rnc.simulator.hardware.HardwareConfig.digital_unit`: energy of its action
``op`` per elementary operation, ``ops_per_ns`` per instance, ``count`` instances per ``level``, area per
instance). Every preset has one (ISAAC: its sigmoid unit, Table 6; PUMA: one lane of the core's vector
functional unit; rnc: ISAAC's, inherited); a table without it is an error, never a default.

Cost conventions (``docs/simulator.md``, "What goes where"): the workload's digital operations
(:class:`~rnc.simulator.workload.DigitalOp`) run on the digital units of the containers (IMAs or tiles, by
the unit's ``level``; one chip for ``chip``) the plan uses, the work split evenly over them (an ideal split;
this project's simplification). Their busy time per image, ``ops / (units x ops_per_ns)``, adds to the
single-image latency (the digital work of attention sits between its projections, on the critical path;
conservative where it could overlap crossbar work) and bounds the pipelined period from below. The energy
goes through the same data-driven path as every other event: the ops are counted as ``digital_op`` events
and the energy table charges them (category ``digital`` = ``op`` energy x ops for the presets). The units'
area is already in the chip's area (the roll-up counts them in every used IMA/tile); :class:`DigitalCost`
reports that share, it is not added again. Workloads with no digital work (plain CNNs) cost nothing here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rnc.simulator.hardware import DIGITAL_UNIT, DigitalUnit, HardwareConfig, HardwareConfigError
from rnc.simulator.ppa import EVENTS, EnergyTable
from rnc.simulator.workload import Workload

EVENT = "digital_op"


def digital_unit(hw: HardwareConfig) -> DigitalUnit:
    """The digital unit of ``hw`` (its table's ``digital_unit`` component, per instance).

    Raises :class:`HardwareConfigError` when the table has no ``digital_unit`` (every preset has one)."""
    if hw.components and DIGITAL_UNIT not in hw.components:
        raise HardwareConfigError(
            f"hardware {hw.name!r}: components.{DIGITAL_UNIT}: missing; every table needs the digital unit "
            "(see docs/simulator.md, 'Hardware as data')"
        )
    return hw.digital_unit


@dataclass(frozen=True)
class DigitalCost:
    """The digital units' share of one image: ops, units working, busy time (ns), energy (pJ), their area
    (mm^2, already part of the chip's area), and one row per operation."""

    ops: int
    units: float
    latency_ns: float
    energy_pj: float
    area_mm2: float
    operations: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "operations": list(self.operations)}


NO_DIGITAL = DigitalCost(0, 0.0, 0.0, 0.0, 0.0)


def units_in_use(unit: DigitalUnit, imas: int, tiles: int) -> float:
    """Digital units on the used part of the chip: ``instances`` per used IMA or tile (per chip at ``chip``)."""
    containers = {"ima": imas, "tile": tiles}.get(unit.level, 1)
    return unit.instances * max(1, containers)


def digital_cost(workload: Workload, hw: HardwareConfig, table: EnergyTable, imas: int, tiles: int) -> DigitalCost:
    """Cost of ``workload``'s digital operations on ``hw``'s digital units, ``imas``/``tiles`` being the plan's
    used IMAs and tiles; ``table`` is :func:`rnc.simulator.ppa.energy_table` of ``hw`` (pJ per ``digital_op``)."""
    if not workload.digital:
        return NO_DIGITAL
    unit = digital_unit(hw)
    units = units_in_use(unit, imas, tiles)
    rate = units * unit.ops_per_ns
    pj_per_op = float(table.event_pj[EVENTS.index(EVENT)])
    rows = tuple(
        {"name": op.name, "kind": op.kind, "ops": op.ops, "after_layer": op.after,
         "latency_ns": op.ops / rate, "energy_pj": op.ops * pj_per_op}
        for op in workload.digital
    )
    ops = workload.digital_ops
    return DigitalCost(ops, units, ops / rate, ops * pj_per_op, units * unit.area_mm2, rows)

"""The digital unit: what runs off the crossbars (attention's QK^T and AV, softmax, layer norm, layer scale,
position embeddings, class tokens), with its own latency, energy and area.

One accessor, :func:`digital_unit`, reads the unit from the hardware description: the component named
``digital_unit`` in ``hw.components`` (``count`` lanes, each doing one elementary operation per
``action_ns`` at ``power_mw``, ``area_mm2`` each). A description without it gets :data:`FALLBACK`:

- a 64-lane FP16 multiply-add vector unit per chip at 1 GHz (lane count and clock are this project's choice,
  the size of PUMA's per-core vector unit order, Ankit et al., ASPLOS 2019); per lane one FP16 multiply and
  one FP16 add per op, whose energy (1.1 pJ + 0.4 pJ) and area (1,640 um^2 + 1,360 um^2) are Horowitz's 45 nm
  figures ("Computing's energy problem", ISSCC 2014, the energy and area table of arithmetic operations).
  So 1.5 pJ per op, 64 ops/ns, 0.192 mm^2.

Cost conventions (``docs/simulator.md``, "What goes where"): the workload's digital operations
(:class:`~rnc.simulator.workload.DigitalOp`) serialize on the one unit; its busy time per image,
``ops / ops_per_ns``, adds to the single-image latency (the digital work of attention sits between its
projections, on the critical path; conservative where it could overlap crossbar work), bounds the
pipelined period from below, and ``ops x energy_per_op_pj`` adds to the energy (category ``digital``);
its area adds once to the chip's. Workloads with no digital work (plain CNNs) cost nothing here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rnc.simulator.hardware import HardwareConfig
from rnc.simulator.workload import Workload

COMPONENT = "digital_unit"


@dataclass(frozen=True)
class DigitalUnit:
    """The digital unit's figures: pJ per elementary operation, operations per ns, area in mm^2."""

    energy_per_op_pj: float
    ops_per_ns: float
    area_mm2: float
    source: str


FALLBACK = DigitalUnit(
    energy_per_op_pj=1.1 + 0.4,
    ops_per_ns=64 * 1.0,
    area_mm2=64 * (1640 + 1360) * 1e-6,
    source="fallback: 64-lane FP16 FMA at 1 GHz, Horowitz ISSCC 2014 (45 nm) energy and area per operation",
)


def digital_unit(hw: HardwareConfig) -> DigitalUnit:
    """The digital unit of ``hw``: its ``digital_unit`` component, else :data:`FALLBACK` (see module doc)."""
    comp = (hw.components or {}).get(COMPONENT)
    if comp is None:
        return FALLBACK
    return DigitalUnit(comp.energy_pj, comp.count / comp.action_ns, comp.count * comp.area_mm2,
                       f"component {COMPONENT!r} of {hw.name}")


@dataclass(frozen=True)
class DigitalCost:
    """The digital unit's share of one image: ops, busy time (ns), energy (pJ), area (mm^2), per operation."""

    ops: int
    latency_ns: float
    energy_pj: float
    area_mm2: float
    operations: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "operations": list(self.operations)}


NO_DIGITAL = DigitalCost(0, 0.0, 0.0, 0.0)


def digital_cost(workload: Workload, hw: HardwareConfig) -> DigitalCost:
    """Cost of ``workload``'s digital operations on ``hw``'s digital unit (zero when it has none)."""
    if not workload.digital:
        return NO_DIGITAL
    unit = digital_unit(hw)
    rows = tuple(
        {"name": op.name, "kind": op.kind, "ops": op.ops, "after_layer": op.after,
         "latency_ns": op.ops / unit.ops_per_ns, "energy_pj": op.ops * unit.energy_per_op_pj}
        for op in workload.digital
    )
    ops = workload.digital_ops
    return DigitalCost(ops, ops / unit.ops_per_ns, ops * unit.energy_per_op_pj, unit.area_mm2, rows)

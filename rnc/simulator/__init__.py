"""Crossbar simulator: hardware as data, workloads, compilation (ISAAC-like and RNC), PPA, non-idealities.

Knows nothing of search, Ray or MLflow.
"""

from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562): ``rnc.simulator.analog`` imports torch and the compiler numba, which a
# process that only reads a HardwareConfig (a search trial) should not pay for.
_EXPORTS = {
    "rnc.simulator.analog": ("AnalogError", "AnalogRange", "analog_ranges", "calibrate_analog", "to_analog"),
    "rnc.simulator.batch": ("compile_many",),
    "rnc.simulator.compiler": ("CompileError", "CompileResult", "Placement", "compile_workload"),
    "rnc.simulator.hardware": (
        "COMPILER_EVENTS", "Action", "Component", "DigitalUnit",
        "HardwareConfig", "HardwareConfigError", "NonIdealities",
    ),
    "rnc.simulator.ppa": ("Rollup", "rollup"),
    "rnc.simulator.tracing": ("trace_workload",),
    "rnc.simulator.workload": ("DigitalOp", "Layer", "Workload", "WorkloadError", "parse_input_shape"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from rnc.simulator.analog import AnalogError, AnalogRange, analog_ranges, calibrate_analog, to_analog
    from rnc.simulator.batch import compile_many
    from rnc.simulator.compiler import CompileError, CompileResult, Placement, compile_workload
    from rnc.simulator.hardware import (
        COMPILER_EVENTS,
        Action,
        Component,
        DigitalUnit,
        HardwareConfig,
        HardwareConfigError,
        NonIdealities,
    )
    from rnc.simulator.ppa import Rollup, rollup
    from rnc.simulator.tracing import trace_workload
    from rnc.simulator.workload import DigitalOp, Layer, Workload, WorkloadError, parse_input_shape


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'rnc.simulator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "COMPILER_EVENTS",
    "Action",
    "AnalogError",
    "AnalogRange",
    "CompileError",
    "CompileResult",
    "Component",
    "DigitalOp",
    "DigitalUnit",
    "HardwareConfig",
    "HardwareConfigError",
    "Layer",
    "NonIdealities",
    "Placement",
    "Rollup",
    "Workload",
    "WorkloadError",
    "analog_ranges",
    "calibrate_analog",
    "compile_many",
    "compile_workload",
    "parse_input_shape",
    "rollup",
    "to_analog",
    "trace_workload",
]

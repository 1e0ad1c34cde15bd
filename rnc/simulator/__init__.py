"""Crossbar simulator: hardware as data, workloads, compilation (ISAAC-like and RNC), PPA, non-idealities.

Knows nothing of search, Ray or MLflow.
"""

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
from rnc.simulator.workload import DigitalOp, Layer, Workload, WorkloadError, parse_input_shape, trace_workload

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

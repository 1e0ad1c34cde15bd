"""Crossbar simulator: hardware as data, workloads, compilation (ISAAC-like and RNC), PPA, non-idealities.

Knows nothing of search, Ray or MLflow.
"""

from rnc.simulator.analog import AnalogError, AnalogRange, analog_ranges, calibrate_analog, to_analog
from rnc.simulator.hardware import Component, HardwareConfig, HardwareConfigError, NonIdealities
from rnc.simulator.workload import Layer, Workload, WorkloadError, parse_input_shape, trace_workload

__all__ = [
    "AnalogError",
    "AnalogRange",
    "Component",
    "HardwareConfig",
    "HardwareConfigError",
    "Layer",
    "NonIdealities",
    "Workload",
    "WorkloadError",
    "analog_ranges",
    "calibrate_analog",
    "parse_input_shape",
    "to_analog",
    "trace_workload",
]

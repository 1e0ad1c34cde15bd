"""Crossbar simulator: hardware as data, workloads, compilation (ISAAC-like and RNC), PPA, non-idealities.

Knows nothing of search, Ray or MLflow.
"""

from rnc.simulator.hardware import Component, HardwareConfig, HardwareConfigError, NonIdealities
from rnc.simulator.workload import Layer, Workload, WorkloadError, parse_input_shape, trace_workload

__all__ = [
    "Component",
    "HardwareConfig",
    "HardwareConfigError",
    "Layer",
    "NonIdealities",
    "Workload",
    "WorkloadError",
    "parse_input_shape",
    "trace_workload",
]

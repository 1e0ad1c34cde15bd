"""rnc-platform: multi-objective NAS for RRAM crossbar (compute-in-memory) accelerators.

Rooms (imports flow one way, ``platform -> search -> simulator``):

- :mod:`rnc.simulator` -- crossbar hardware as data, workloads, compilation, PPA, non-idealities.
- :mod:`rnc.search` -- search spaces, supernets, datasets, searchers.
- :mod:`rnc.platform` -- Ray actors, Ray Tune orchestration, MLflow tracking, the CLI.
"""

__version__ = "0.1.0"

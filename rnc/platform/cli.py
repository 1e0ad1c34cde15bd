"""The ``rnc-platform`` command line (Typer).

Each command lives in its own module under :mod:`rnc.platform.commands` and exposes ``register(app)``.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

app = typer.Typer(
    name="rnc-platform",
    help="Multi-objective NAS for RRAM crossbar accelerators: compile, simulate, search, track.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in help order: compile (simulator), spaces + supernet (search), launch + report (platform).
COMMAND_MODULES = ("compile", "spaces", "supernet", "launch", "report")

for _name in COMMAND_MODULES:
    _module_name = f"rnc.platform.commands.{_name}"
    if importlib.util.find_spec(_module_name) is not None:
        importlib.import_module(_module_name).register(app)


def main() -> None:
    app()

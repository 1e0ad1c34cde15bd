"""The ``rnc-platform`` command line (Typer).

Each command lives in its own module under :mod:`rnc.platform.commands` and exposes ``register(app)``. Commands
raise; :class:`rnc.platform.cli_errors.ErrorHandlingGroup` turns user errors into one line on stderr and exit 2.
"""

from __future__ import annotations

import typer

from rnc.platform.cli_errors import ErrorHandlingGroup
from rnc.platform.commands import compile as compile_command
from rnc.platform.commands import hardware as hardware_command
from rnc.platform.commands import launch as launch_command
from rnc.platform.commands import report as report_command
from rnc.platform.commands import spaces as spaces_command
from rnc.platform.commands import supernet as supernet_command

app = typer.Typer(
    name="rnc-platform",
    help="Multi-objective NAS for RRAM crossbar accelerators: compile, simulate, search, track.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ErrorHandlingGroup,
)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("rnc-platform")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed; run from a source tree)"
        typer.echo(f"rnc-platform {version}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of errors (also: RNC_DEBUG=1)."),
) -> None:
    """Multi-objective NAS for RRAM crossbar accelerators: compile, simulate, search, track."""
    # --debug is read by ErrorHandlingGroup from the arguments, before any command runs


# In help order: compile (simulator), spaces + supernet (search), launch + report (platform).
for _command in (compile_command, hardware_command, spaces_command, supernet_command, launch_command, report_command):
    _command.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

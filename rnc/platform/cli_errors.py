"""One error mechanism for the whole ``rnc-platform`` command line.

Every command raises; nothing prints its own errors. :class:`ErrorHandlingGroup` (the Typer group of the CLI)
turns what escapes a command into an exit code and at most one line on stderr:

- a :class:`rnc.errors.UserError` (bad argument, file, field, option, path, URI): ``error: <message>``, exit 2;
- an ``OSError`` of the environment (read-only folder, full disk, permission denied, missing file): ``error:
  cannot write|read <path>: <reason>; <what to do>``, exit 2;
- a click usage error (unknown option, bad integer): ``error: <message> (see `rnc-platform CMD --help`)``, exit 2;
- ``KeyboardInterrupt`` (Ctrl-C): exit 130 (a command that can be resumed prints its resume command first);
- anything else is a bug: its traceback, exit 1.

The line is written with a plain ``print`` to stderr, never through rich, so it is never wrapped at the console
width (a test that looks for a phrase does not depend on the length of a temporary path). ``--debug`` (a global
option: ``rnc-platform --debug compile ...``) or ``RNC_DEBUG=1`` prints the traceback of user errors too.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # Typer >= 0.20 ships its own copy of click; its exceptions are the ones raised
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover -- older Typer on top of click
    from click import exceptions as click_exceptions

from rnc.errors import UserError, one_line

#: Exit code of every user error (the POSIX convention for bad usage, and click's).
USER_ERROR_EXIT = 2
#: Exit code after Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT = 130

_ENV_ERRNOS = {
    errno.ENOSPC: "the disk is full: free space or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write, or fix its permissions",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "the path is a folder, not a file: check the path",
}


def error_line(exc: BaseException) -> str | None:
    """The one line printed for ``exc``, or ``None`` when it is not a user or environment error."""
    if isinstance(exc, UserError):
        return f"error: {one_line(str(exc))}"
    if isinstance(exc, OSError) and exc.errno in _ENV_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        reason = exc.strerror or str(exc)
        return f"error: cannot use{where}: {reason} ({_ENV_ERRNOS[exc.errno]})"
    return None


def debug_requested(args: Sequence[str] | None) -> bool:
    """``--debug`` among the arguments, or ``RNC_DEBUG`` set to a true value in the environment."""
    argv = list(sys.argv[1:] if args is None else args)
    return "--debug" in argv or os.environ.get("RNC_DEBUG", "").lower() in ("1", "true", "yes")


def emit(line: str) -> None:
    """Write one line to stderr, unwrapped."""
    print(line, file=sys.stderr, flush=True)


class ErrorHandlingGroup(TyperGroup):
    """The CLI's root group: runs a command and maps what escapes it (see the module docstring)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        debug = debug_requested(args)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            emit(exc.format_message())
            sys.exit(exc.exit_code)
        except click_exceptions.ClickException as exc:
            emit(f"error: {one_line(exc.format_message())}{_help_hint(exc)}")
            sys.exit(exc.exit_code)
        except typer.Abort:
            emit("error: aborted")
            sys.exit(1)
        except KeyboardInterrupt:
            emit("interrupted")
            sys.exit(INTERRUPTED_EXIT)
        except Exception as exc:
            line = error_line(exc)
            if line is None:
                raise
            if debug:
                traceback.print_exception(exc, file=sys.stderr)
            emit(line)
            sys.exit(USER_ERROR_EXIT)
        sys.exit(code if isinstance(code, int) else 0)


def _help_hint(exc: click_exceptions.ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return ""
    return f" (see `{ctx.command_path} --help`)"

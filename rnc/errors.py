"""The user errors of rnc-platform: one base class, one kind per thing a user gives.

Every error a user can fix (a bad argument, file, field, option, path or URI) is a :class:`UserError`. The CLI
(:mod:`rnc.platform.cli`) prints it as one line on stderr -- ``error: <what, where, what to do>`` -- and exits with
code 2; ``rnc-platform --debug`` adds the traceback. Anything else is a bug or a fault and keeps its traceback.

The kinds (each room raises its own; they are also ``ValueError`` or ``RuntimeError`` as before, so older
``except ValueError`` code keeps working):

=====================  ===========================================================================
kind                   raised for
=====================  ===========================================================================
hardware               ``rnc.simulator.HardwareConfigError`` (hardware YAML, presets, ``--set``)
workload / compile     ``rnc.simulator.WorkloadError``, ``CompileError``, ``AnalogError``
model spec             ``rnc.platform.commands.compile.ModelSpecError`` (the MODEL argument)
space / genome         ``rnc.search.spaces.GenomeError``, ``UnknownSpaceError``, :class:`NameNotFoundError`
searcher               ``rnc.search.searchers.SearcherError``
dataset                ``rnc.search.datasets.DatasetError``
checkpoint             ``rnc.search.supernet.checkpoint.CheckpointError``
config                 ``rnc.platform.config.ConfigError``
tracking               :class:`TrackingError` (tracking URI malformed or store unreachable)
storage                :class:`StorageError` (a folder that cannot be written: read-only, full, locked)
launch                 ``rnc.platform.launch.LaunchError``
=====================  ===========================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in what the user gave; the message names the file or field, what is wrong and what to do."""


class NameNotFoundError(UserError, ValueError):
    """A name that refers to something (a layer, gene, component, option) that does not exist."""


class TrackingError(UserError, ValueError):
    """A tracking store that is malformed or cannot be reached."""


class StorageError(UserError, OSError):
    """A folder or file that cannot be written (read-only, full disk, held by another launch)."""


def close_matches(name: str, valid: Iterable[str], *, n: int = 3) -> str:
    """``"; did you mean 'a', 'b'?"`` for the valid names closest to ``name`` (``difflib``), or ``""``."""
    matches = difflib.get_close_matches(str(name), [str(v) for v in valid], n=n, cutoff=0.6)
    return f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""


def check_names(
    what: str, names: Iterable[str], valid: Iterable[str], *, where: str, error: type[Exception] = NameNotFoundError
) -> None:
    """Raise ``error`` when a name of ``names`` is not in ``valid``, listing the close matches of each.

    ``what`` is the kind of name ("layer", "gene", "option"), ``where`` the file or field it came from.
    """
    valid_list = list(valid)
    valid_set = set(valid_list)
    unknown = [n for n in names if n not in valid_set]
    if not unknown:
        return
    parts = [f"{n!r}{close_matches(n, valid_list)}" for n in unknown]
    shown = ", ".join(valid_list[:12]) + (f", ... ({len(valid_list)} in all)" if len(valid_list) > 12 else "")
    raise error(f"{where}: unknown {what} {'; '.join(parts)}; valid names: {shown or '(none)'}")


def one_line(message: str) -> str:
    """``message`` on one line: line breaks become ``"; "`` and runs of blanks one space."""
    lines = [" ".join(part.split()) for part in str(message).splitlines()]
    text = "; ".join(line for line in lines if line)
    return text.replace(":;", ":")

"""Checks that an output folder or file can be written, before anything is written there.

A check creates nothing that stays: it finds the nearest existing folder of the path, writes and removes a small
probe file there (so a read-only mount, a missing permission or a full disk shows now, not after an hour of
work) and, when asked, checks the free space. Errors are :class:`rnc.errors.StorageError` naming the option,
the path and what to do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from rnc.errors import StorageError

#: Bytes of the probe file written and removed by :func:`check_writable_dir`.
PROBE_BYTES = 64 * 1024


def _nearest_existing(path: Path) -> Path:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def check_writable_dir(path: str | Path, what: str, *, min_free_bytes: int = 0) -> Path:
    """The absolute folder ``path`` after checking it can be created (if missing) and written.

    ``what`` names the option or field (``--out``, ``storage_path``). Raises :class:`StorageError` when a part of
    the path is a file, when a probe file cannot be written (read-only, permission, full disk), or when less than
    ``min_free_bytes`` are free.
    """
    target = Path(path).expanduser().absolute()
    existing = _nearest_existing(target)
    if not existing.is_dir():
        raise StorageError(f"{what} {str(target)!r}: {str(existing)!r} is a file, not a folder; choose a folder path")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".rnc-write-probe-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StorageError(
            f"{what} {str(target)!r}: cannot write in {str(existing)!r} ({reason}); choose a writable folder with "
            "free space"
        ) from None
    if min_free_bytes:
        free = shutil.disk_usage(existing).free
        if free < min_free_bytes:
            raise StorageError(
                f"{what} {str(target)!r}: only {free / 2**20:.1f} MiB free in {str(existing)!r}, at least "
                f"{min_free_bytes / 2**20:.0f} MiB needed; free space or choose another folder"
            )
    return target


def check_writable_file(path: str | Path, what: str) -> Path:
    """The absolute file ``path`` after checking that it is not a folder and that its folder can be written."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise StorageError(f"{what} {str(target)!r} is a folder; give a file path")
    check_writable_dir(target.parent, what)
    return target

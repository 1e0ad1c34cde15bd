"""Checks that an output folder or file can be written, before anything is written there.

A check creates nothing that stays: it finds the nearest existing folder of the path, writes and removes a small
probe file there (so a read-only mount, a missing permission or a full disk shows now, not after an hour of
work) and, when asked, checks the free space. Errors are :class:`rnc.errors.StorageError` naming the option,
the path and what to do.
"""

from __future__ import annotations

import contextlib
import errno
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


#: ``errno`` values of a storage that fills up or turns read-only while a launch writes to it.
STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system turned read-only",
}
#: Free bytes below which a storage counts as full when a write failed without saying why (Ray Tune reads back a
#: 0-byte ``error.pkl`` as ``EOFError``).
NEARLY_FULL_BYTES = 1 * 2**20


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it: ``__cause__``/``__context__`` and Ray's ``RayTaskError.cause``."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "cause", None)]
    return [e for e in seen if isinstance(e, BaseException)]


def storage_fault(path: str | Path, exc: BaseException | None, what: str = "storage_path") -> StorageError | None:
    """A :class:`StorageError` naming ``path`` when ``exc`` came from a full or read-only disk (an ``OSError``
    with one of :data:`STORAGE_ERRNOS` anywhere in its causes), or when ``path``'s disk has less than
    :data:`NEARLY_FULL_BYTES` free (a write that failed without its reason); ``None`` otherwise."""
    target = Path(path).expanduser().absolute()
    for cause in _causes(exc) if exc is not None else []:
        code = getattr(cause, "errno", None)
        if isinstance(cause, OSError) and code in STORAGE_ERRNOS:
            reason = os.strerror(code)
            return StorageError(
                f"{what} {str(target)!r}: {STORAGE_ERRNOS[code]} ({reason}) while the launch wrote to it; free "
                "space there (or make it writable)"
            )
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(_nearest_existing(target)).free
        if free < NEARLY_FULL_BYTES:
            return StorageError(
                f"{what} {str(target)!r}: the disk is full ({free / 2**20:.1f} MiB free) after the launch wrote to "
                "it; free space there"
            )
    return None

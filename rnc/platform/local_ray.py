"""The local Ray a launch starts: recorded in the launch's storage, and stopped when its driver was killed.

``ray.init`` ties its head processes (``gcs_server``, ``raylet``, the log monitor) to the driver through the
kernel (``PR_SET_PDEATHSIG``), so they die with it, SIGKILL included. The raylet's own children do not: its
dashboard and runtime-env agents poll for their parent and then try to report to the dead GCS before they exit,
which took about 60 s on the 2-core VM after a SIGKILL of the driver (``docs/reliability.md``), and longer on a
loaded machine.

So a launch that starts a local Ray writes :func:`session_record_path` (``<storage>/<name>/.ray-session.json``:
the driver's pid and start time, and Ray's session folder) right after ``ray.init``; the next launch or
``--resume`` into the same storage (under the launch lock) calls :func:`stop_leftovers`: when the recorded
driver is dead, every process of this user that still holds a file of that session folder open or names it on
its command line gets SIGTERM, then SIGKILL after a grace time. Ray gives every session its own folder
(``session_<date>_<time>_<microseconds>_<driver pid>``), so another launch's Ray, or another user's, is never
touched. Linux only (``/proc``); elsewhere nothing is recorded and nothing stopped.

A launch does not wait for its next launch to clean up, though: :func:`start_watchdog` starts a small detached
process (``python -m rnc.platform.local_ray RECORD``, :func:`watch`) that polls the driver once a second and,
when the driver is gone while the record still exists (a clean exit removes it first), runs
:func:`stop_leftovers` itself. So a SIGKILLed driver's agents are gone within seconds, not a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RECORD_NAME = ".ray-session.json"
#: Seconds the processes of a dead session get between SIGTERM and SIGKILL.
GRACE_S = 3.0


def session_record_path(storage_path: Path, name: str) -> Path:
    """Where the launch of experiment ``name`` records its local Ray (next to its ``latest.json``)."""
    return storage_path / name / RECORD_NAME


@dataclass(frozen=True)
class Leftovers:
    """What :func:`stop_leftovers` found: the dead launch's Ray session folder and the pids it stopped."""

    launch_id: str = ""
    session_dir: str = ""
    stopped: list[int] = field(default_factory=list)


def _supported() -> bool:
    return sys.platform.startswith("linux") and Path("/proc/self/stat").exists()


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or ``None``
    when there is no such process; with the pid it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    return int(fields[19])


def _child_session_dir(pid: int) -> str | None:
    """Ray's session folder, from the command line of a child of ``pid`` (``raylet --session_dir=...``,
    ``gcs_server --session-dir=...``)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (proc / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) != pid:
                continue
            for arg in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0"):
                for flag in ("--session_dir=", "--session-dir="):
                    if arg.startswith(flag):
                        return arg.removeprefix(flag)
    return None


def record_local_ray(path: Path, launch_id: str) -> Path | None:
    """Record the local Ray this process started (call right after ``ray.init``); returns the record's path, or
    ``None`` where nothing can be recorded (not Linux, no Ray child found)."""
    if not _supported():
        return None
    session_dir = _child_session_dir(os.getpid())
    if session_dir is None:
        return None
    record = {
        "launch_id": launch_id,
        "driver_pid": os.getpid(),
        "driver_start_ticks": start_ticks(os.getpid()),
        "session_dir": session_dir,
    }
    try:  # a storage that cannot take the record fails the launch where it writes its state, not here
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
    except OSError:
        return None
    return path


def forget_local_ray(path: Path) -> None:
    """Remove the record (the launch stopped its Ray itself)."""
    with contextlib.suppress(OSError):
        path.unlink()


def session_processes(session_dir: str, *, exclude: int | None = None) -> list[int]:
    """Pids of this user's processes that hold a file under ``session_dir`` open or name it on their command
    line (Ray's workers and agents rename themselves, ``ray::DashboardAgent``, but keep their log files open)."""
    uid = os.getuid()
    prefix = session_dir.rstrip("/") + "/"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in (os.getpid(), exclude):
            continue
        with contextlib.suppress(OSError):
            if proc.stat().st_uid != uid:
                continue
            if session_dir.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd).startswith(prefix):
                        found.append(int(proc.name))
                        break
    return sorted(found)


def stop_leftovers(path: Path, *, grace_s: float = GRACE_S) -> Leftovers:
    """Stop what is left of the local Ray recorded at ``path`` when its driver is dead (see the module
    docstring); removes the record. A record whose driver still runs is left alone (nothing stopped)."""
    if not _supported() or not path.is_file():
        return Leftovers()
    try:
        record = json.loads(path.read_text())
        pid, ticks, session_dir = int(record["driver_pid"]), record["driver_start_ticks"], str(record["session_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        forget_local_ray(path)
        return Leftovers()
    if start_ticks(pid) is not None and start_ticks(pid) == ticks:
        return Leftovers(str(record.get("launch_id", "")), session_dir)  # that driver still runs
    pids = session_processes(session_dir)
    for victim in pids:
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for victim in pids:
        if _alive(victim):
            with contextlib.suppress(OSError):
                os.kill(victim, signal.SIGKILL)
    _forget_if_unchanged(path, record)
    return Leftovers(str(record.get("launch_id", "")), session_dir, pids)


def _forget_if_unchanged(path: Path, record: dict) -> None:
    """Remove the record unless a newer launch has replaced it meanwhile (the watchdog and a ``--resume`` may
    both clean up after the same dead driver; the resume then writes its own record)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()) == record:
            path.unlink()


def start_watchdog(path: Path) -> int | None:
    """Start the detached watchdog of the record at ``path`` (see the module docstring); returns its pid, or
    ``None`` where nothing is recorded. Its own session: a Ctrl-C to the launch's process group does not reach it."""
    import subprocess

    if not _supported() or not path.is_file():
        return None
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnc.platform.local_ray", str(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    return proc.pid


def watch(path: Path, *, poll_s: float = 1.0) -> Leftovers:
    """Wait while the driver recorded at ``path`` runs; when it is dead and the record is still there, stop its
    session's processes (:func:`stop_leftovers`). Returns at once when the record goes (the launch ended)."""
    try:
        record = json.loads(path.read_text())
        pid, ticks = int(record["driver_pid"]), record["driver_start_ticks"]
    except (OSError, ValueError, KeyError, TypeError):
        return Leftovers()
    while path.is_file() and start_ticks(pid) == ticks and _alive(pid):
        time.sleep(poll_s)
    return stop_leftovers(path) if path.is_file() else Leftovers()


def _alive(pid: int) -> bool:
    """``pid`` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


if __name__ == "__main__":  # the watchdog process of start_watchdog
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(Path(sys.argv[1]))

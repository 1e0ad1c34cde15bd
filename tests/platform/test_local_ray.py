"""The local Ray of a killed driver is stopped by the next launch into the same storage, and nothing else is.

Real processes stand in for Ray's: a process holding a log file of a session folder open (as Ray's agents do
after renaming themselves ``ray::DashboardAgent``), a process of another session, and a "driver" that has
exited. The launch-level check (a real Ray after a SIGKILL of the driver) is in ``test_launch_faults.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnc.platform.local_ray import session_record_path, start_ticks, stop_leftovers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only (/proc)")

HOLD = "import sys, time; f = open(sys.argv[1], 'a'); print('open', flush=True); time.sleep(120)"


def _holder(path: Path) -> subprocess.Popen:
    """A process that keeps ``path`` open, like a Ray agent keeps its log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_record(path: Path, *, pid: int, ticks: int | None, session: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"launch_id": "exp-1", "driver_pid": pid, "driver_start_ticks": ticks,
                                "session_dir": str(session)}))


def test_a_dead_drivers_session_is_stopped_and_another_is_not(tmp_path: Path) -> None:
    ours = tmp_path / "ray" / "session_2026-11-30_10-00-00_000001_111"
    theirs = tmp_path / "ray" / "session_2026-11-30_10-00-00_000002_222"
    agent, other = _holder(ours / "logs" / "agent.log"), _holder(theirs / "logs" / "agent.log")
    record = session_record_path(tmp_path / "storage", "exp")
    try:
        _write_record(record, pid=_dead_pid(), ticks=1, session=ours)
        left = stop_leftovers(record, grace_s=2.0)
        assert left.stopped == [agent.pid] and left.launch_id == "exp-1" and left.session_dir == str(ours)
        assert agent.wait(timeout=10) != 0  # it was signalled, not left to run
        assert other.poll() is None  # another session's process is untouched
        assert not record.exists()
    finally:
        for proc in (agent, other):
            proc.kill()
            proc.wait()


def test_a_live_drivers_session_is_left_alone(tmp_path: Path) -> None:
    session = tmp_path / "ray" / "session_live"
    agent = _holder(session / "logs" / "agent.log")
    record = session_record_path(tmp_path / "storage", "exp")
    try:
        _write_record(record, pid=os.getpid(), ticks=start_ticks(os.getpid()), session=session)
        assert stop_leftovers(record).stopped == []
        time.sleep(0.2)
        assert agent.poll() is None
    finally:
        agent.kill()
        agent.wait()


def test_a_reused_driver_pid_does_not_protect_the_session(tmp_path: Path) -> None:
    """The driver's pid now names another process (same pid, another start time): the driver is dead."""
    session = tmp_path / "ray" / "session_reused"
    agent = _holder(session / "logs" / "agent.log")
    record = session_record_path(tmp_path / "storage", "exp")
    try:
        _write_record(record, pid=os.getpid(), ticks=start_ticks(os.getpid()) - 1, session=session)
        assert stop_leftovers(record, grace_s=2.0).stopped == [agent.pid]
        assert agent.wait(timeout=10) != 0
    finally:
        agent.kill()
        agent.wait()


RECORDER = """
import subprocess, sys, time
from pathlib import Path
from rnc.platform.local_ray import record_local_ray
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--session_dir=/tmp/ray/s_1"])
deadline = time.monotonic() + 30
while b"--session_dir" not in Path(f"/proc/{child.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
    time.sleep(0.05)
print(record_local_ray(Path(sys.argv[1]), "exp-2"))
child.kill()
"""


def test_the_record_names_the_session_of_a_child(tmp_path: Path) -> None:
    """``record_local_ray`` finds the session folder on the command line of a child (Ray's raylet); run in a
    fresh process, whose only child is the stand-in raylet."""
    path = session_record_path(tmp_path, "exp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", RECORDER, str(path)], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == str(path)
    record = json.loads(path.read_text())
    assert record["session_dir"] == "/tmp/ray/s_1" and record["launch_id"] == "exp-2"
    assert record["driver_pid"] != os.getpid() and isinstance(record["driver_start_ticks"], int)


def test_the_watchdog_stops_the_session_when_the_driver_dies(tmp_path: Path) -> None:
    """The detached watchdog a launch starts: while the driver runs it waits; once the driver is SIGKILLed it
    stops the session's processes itself, without waiting for a next launch."""
    from rnc.platform.local_ray import start_watchdog

    session = tmp_path / "ray" / "session_watched"
    agent = _holder(session / "logs" / "agent.log")
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    record = session_record_path(tmp_path / "storage", "exp")
    try:
        deadline = time.monotonic() + 10
        while start_ticks(driver.pid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        _write_record(record, pid=driver.pid, ticks=start_ticks(driver.pid), session=session)
        assert start_watchdog(record) is not None
        time.sleep(1.5)
        assert agent.poll() is None and record.exists()  # the driver runs: nothing stopped
        driver.kill()
        driver.wait()
        assert agent.wait(timeout=30) != 0  # stopped by the watchdog within its poll and grace time
        deadline = time.monotonic() + 10
        while record.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not record.exists()
    finally:
        for proc in (agent, driver):
            proc.kill()
            proc.wait()


def test_the_watchdog_leaves_when_the_launch_ends_cleanly(tmp_path: Path) -> None:
    from rnc.platform.local_ray import forget_local_ray, watch

    session = tmp_path / "ray" / "session_clean"
    agent = _holder(session / "logs" / "agent.log")
    record = session_record_path(tmp_path / "storage", "exp")
    try:
        _write_record(record, pid=os.getpid(), ticks=start_ticks(os.getpid()), session=session)
        forget_local_ray(record)  # the launch shut its Ray down and removed the record
        assert watch(record, poll_s=0.05).stopped == []
        assert agent.poll() is None
    finally:
        agent.kill()
        agent.wait()

"""Small pieces of a launch's recovery, without Ray: which errors mean a full or read-only storage, what a trial's
error is reduced to, and when a launch left Tune state that can be resumed."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

from rnc.errors import StorageError
from rnc.platform.launch import _root_cause
from rnc.platform.storage import storage_fault
from rnc.platform.tuning import tune_state_whole


class _RemoteError(Exception):
    """Shaped like Ray's ``RayTaskError``: the trial's own exception under ``cause``, a traceback in the text."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__("ray::ImplicitFunc.train() (pid=1)\nTraceback (most recent call last):\n  ...\n" + str(cause))
        self.cause = cause


def test_a_full_disk_anywhere_in_the_causes_names_the_storage(tmp_path: Path) -> None:
    full = OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
    try:
        try:
            raise _RemoteError(full)
        except _RemoteError as remote:
            raise RuntimeError("trials failed") from remote
    except RuntimeError as exc:
        fault = storage_fault(tmp_path / "ray", exc)
    assert isinstance(fault, StorageError)
    assert str(fault) == (f"storage_path {str(tmp_path / 'ray')!r}: the disk is full (No space left on device) while "
                          "the launch wrote to it; free space there (or make it writable)")
    read_only = storage_fault(tmp_path, OSError(errno.EROFS, "Read-only file system"))
    assert "the file system turned read-only" in str(read_only)


def test_other_errors_on_a_disk_with_room_are_not_storage_faults(tmp_path: Path) -> None:
    assert storage_fault(tmp_path, ValueError("bad genome")) is None
    assert storage_fault(tmp_path, OSError(errno.ECONNREFUSED, "Connection refused")) is None
    assert storage_fault(tmp_path, None) is None


def test_a_trial_error_is_reduced_to_its_root_cause() -> None:
    error = _RemoteError(OSError(errno.ENOSPC, "No space left on device"))
    assert _root_cause(error) == "OSError: [Errno 28] No space left on device"
    assert _root_cause(ValueError("one\ntwo")) == "ValueError: one"


def test_tune_state_is_whole_only_with_plans_and_a_complete_newest_state(tmp_path: Path) -> None:
    plans = tmp_path / "exp-1.plans.pkl"
    experiment = tmp_path / "exp-1"
    experiment.mkdir()
    assert not tune_state_whole(experiment, plans)  # nothing saved yet
    plans.write_bytes(pickle.dumps([]))
    assert not tune_state_whole(experiment, plans)  # plans, but Tune saved no state
    (experiment / "experiment_state-2026-11-30_10-00-00.json").write_text(json.dumps({"trial_data": []}))
    assert tune_state_whole(experiment, plans)
    newest = experiment / "experiment_state-2026-11-30_11-00-00.json"
    newest.write_text(json.dumps({"trial_data": [{"a": "x" * 50}]})[:20])  # cut short by a full disk
    assert not tune_state_whole(experiment, plans)
    newest.write_text(json.dumps({"trial_data": []}))
    plans.write_bytes(b"")  # a 0-byte plans file
    assert not tune_state_whole(experiment, plans)

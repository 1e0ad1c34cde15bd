"""Waiting out an MLflow tracking server that stops answering, with a visible message and a bound.

MLflow's own client retries a request with exponential back-off (by default 7 retries, minutes in all) and then
raises; a launch whose tracking server restarts would either hang without a word or crash with a long
traceback. :class:`OutageWait` replaces that for ``http(s)://`` tracking URIs: MLflow's retries are cut to a few
seconds (:func:`short_mlflow_retries`), and when a call still fails because the server does not answer, the
waiter prints **one** line (``tracking server http://... not answering; retrying for up to N s``), polls the
server's ``GET /health`` once a second, and runs the call again as soon as it answers (and prints that it does).
Past the bound (:data:`DEFAULT_WAIT_S`, or ``RNC_TRACKING_WAIT_S`` in the environment, or ``tracking_wait_s`` of
:class:`rnc.platform.tracking.MlflowSink`) it raises :class:`rnc.errors.TrackingError`, and the launch fails
with its ``--resume`` command.

Only failures to reach the server count (connection refused or reset, a timeout, a 502/503/504 from a proxy
after MLflow's retries); an answer that refuses the request (a 400, a missing run) is raised at once.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from rnc.errors import TrackingError

T = TypeVar("T")

#: Seconds a launch waits for its tracking server to answer again before it fails with the --resume command.
DEFAULT_WAIT_S = 300.0
#: Environment variable that overrides :data:`DEFAULT_WAIT_S`.
WAIT_ENV = "RNC_TRACKING_WAIT_S"
#: MLflow's own retries, cut short so that the wait (and its message) starts within seconds.
MLFLOW_RETRY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}

_UNREACHABLE = (
    "failed to establish a new connection",
    "connection refused",
    "connection reset",
    "connection aborted",
    "connection broken",
    "remotedisconnected",
    "read timed out",
    "connect timeout",
    "too many 502 error",
    "too many 503 error",
    "too many 504 error",
)


def configured_wait_s(wait_s: float | None = None) -> float:
    """``wait_s`` when given, else ``RNC_TRACKING_WAIT_S`` from the environment, else :data:`DEFAULT_WAIT_S`."""
    if wait_s is not None:
        return float(wait_s)
    text = os.environ.get(WAIT_ENV, "").strip()
    try:
        return float(text) if text else DEFAULT_WAIT_S
    except ValueError:
        raise TrackingError(f"{WAIT_ENV}={text!r}: expected seconds, e.g. {WAIT_ENV}=300") from None


def short_mlflow_retries() -> None:
    """Cut MLflow's HTTP retries to seconds in this process (values the user set in the environment stay)."""
    for name, value in MLFLOW_RETRY_ENV.items():
        os.environ.setdefault(name, value)


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the server did not answer, rather than that it refused."""
    seen: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and not any(item is s for s in seen):
        seen.append(item)
        if isinstance(item, ConnectionError | TimeoutError):
            return True
        text = str(item).lower()
        if any(marker in text for marker in _UNREACHABLE):
            return True
        item = item.__cause__ or item.__context__
    return False


class OutageWait:
    """Runs tracking calls, waiting out a server that does not answer (see the module docstring).

    Args:
        tracking_uri: the ``http(s)://`` URI of the MLflow server; other URIs are never waited for.
        wait_s: the most seconds one outage is waited out (:func:`configured_wait_s`).
        poll_s: seconds between two ``GET /health`` while waiting.
        out: where the two lines of an outage go (the launch's tracking actor: its stderr, which Ray shows on the
            driver's console).
    """

    def __init__(self, tracking_uri: str, wait_s: float | None = None, *, poll_s: float = 1.0,
                 out: TextIO | None = None) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.enabled = tracking_uri.lower().startswith(("http://", "https://"))
        self.wait_s = configured_wait_s(wait_s)
        self.poll_s = float(poll_s)
        self.out = out
        self.outages = 0  # outages waited out (or given up on)
        self.waited_s = 0.0
        self._since: float | None = None  # monotonic start of the outage in progress
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., T], *args: Any, before_retry: Callable[[], None] | None = None,
             **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``; while it fails because the server does not answer, wait for the server and
        call again (``before_retry`` first, e.g. to remove what a cut-short call left). Raises
        :class:`TrackingError` when the server stays silent longer than ``wait_s``."""
        failed = False
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if not self.enabled or not is_unreachable(exc):
                    raise
                self._wait(exc)
                failed = True
                if before_retry is not None:
                    self.call(before_retry)
                continue
            if failed:
                self._answered()
            return result

    # -- internals ----------------------------------------------------------------------------------------
    def _print(self, line: str) -> None:
        print(line, file=self.out or sys.stderr, flush=True)

    def _wait(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                self.outages += 1
                self._print(
                    f"tracking server {self.tracking_uri} not answering; retrying for up to {self.wait_s:.0f} s "
                    f"({WAIT_ENV} sets how long)"
                )
            since = self._since
        while True:
            left = since + self.wait_s - time.monotonic()
            if left <= 0:
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                raise TrackingError(
                    f"tracking_uri {self.tracking_uri!r}: the tracking server did not answer for {self.wait_s:.0f} s "
                    f"({reason}); start it again (or raise {WAIT_ENV})"
                ) from None
            if self._healthy(timeout_s=min(5.0, max(0.5, left))):
                return
            time.sleep(min(self.poll_s, max(0.0, left)))

    def _answered(self) -> None:
        with self._lock:
            if self._since is not None:
                waited = time.monotonic() - self._since
                self.waited_s += waited
                self._since = None
                self._print(f"tracking server {self.tracking_uri} answers again after {waited:.0f} s; writes resumed")

    def _healthy(self, *, timeout_s: float) -> bool:
        try:
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=timeout_s) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False

"""Waiting out a tracking server that stops answering (``rnc.platform.tracking_outage``), against a real HTTP
server on a free port that is stopped and started again: one line when the outage starts, one when the server
answers again, the call run again; past the bound a ``TrackingError``; a refusal (not an outage) raised at once.
The launch-level check with a real ``mlflow server`` is in ``test_launch_faults.py``."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from rnc.errors import TrackingError
from rnc.platform.tracking_outage import OutageWait, is_unreachable


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """A health endpoint that can be started and stopped on one port."""

    def __init__(self, port: int) -> None:
        self.port, self.httpd = port, None

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Health)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _get(url: str) -> str:
    return requests.get(url, timeout=2).text


def test_an_outage_is_waited_out_with_one_message_each_way() -> None:
    port = _free_port()
    server = _Server(port)
    out = io.StringIO()
    wait = OutageWait(f"http://127.0.0.1:{port}", 30, poll_s=0.1, out=out)
    cleaned = []
    restarter = threading.Timer(1.0, server.start)  # the server comes back while the call waits
    restarter.start()
    try:
        t0 = time.monotonic()
        answer = wait.call(_get, f"http://127.0.0.1:{port}/health", before_retry=lambda: cleaned.append(1))
        waited = time.monotonic() - t0
    finally:
        restarter.join()
        server.stop()
    assert answer == "OK" and 0.9 < waited < 20
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == (f"tracking server http://127.0.0.1:{port} not answering; retrying for up to 30 s "
                        "(RNC_TRACKING_WAIT_S sets how long)")
    assert lines[1].startswith(f"tracking server http://127.0.0.1:{port} answers again after ")
    assert cleaned == [1] and wait.outages == 1


def test_past_the_bound_the_launch_gets_one_clear_error(monkeypatch) -> None:
    port = _free_port()
    monkeypatch.setenv("RNC_TRACKING_WAIT_S", "1.5")
    out = io.StringIO()
    wait = OutageWait(f"http://127.0.0.1:{port}", poll_s=0.1, out=out)
    t0 = time.monotonic()
    bound = r"did not answer for 2 s .*start it again \(or raise RNC_TRACKING_WAIT_S\)"
    with pytest.raises(TrackingError, match=bound):
        wait.call(_get, f"http://127.0.0.1:{port}/health")
    assert 1.4 < time.monotonic() - t0 < 15
    assert out.getvalue().count("not answering") == 1
    with pytest.raises(TrackingError):  # the same outage: no second message, no second wait
        wait.call(_get, f"http://127.0.0.1:{port}/health")
    assert out.getvalue().count("not answering") == 1


def test_a_refusal_is_not_an_outage() -> None:
    port = _free_port()
    server = _Server(port)
    server.start()
    calls = []

    def refused() -> None:
        calls.append(1)
        response = requests.get(f"http://127.0.0.1:{port}/missing", timeout=2)
        response.raise_for_status()

    try:
        with pytest.raises(requests.HTTPError):
            OutageWait(f"http://127.0.0.1:{port}", 30, out=io.StringIO()).call(refused)
    finally:
        server.stop()
    assert calls == [1]
    assert not OutageWait("sqlite:///x.db", 30).enabled


def test_what_counts_as_not_answering(monkeypatch) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = _free_port()
    with pytest.raises(MlflowException) as refused:  # nothing listens there
        MlflowClient(f"http://127.0.0.1:{port}").search_experiments()
    assert is_unreachable(refused.value)
    assert is_unreachable(ConnectionResetError())
    assert not is_unreachable(MlflowException("RESOURCE_DOES_NOT_EXIST: Run 'x' not found"))

"""A real browser on a finished launch: headless Chromium (Debian's ``chromium`` package) opens the MLflow UI the
launch prints, and the launch's HTML front plot from disk with no network.

Set-up: when ``chromium`` is missing, the test installs it with ``apt-get update && apt-get install -y chromium``
(CI runs as root); it skips only where apt-get is unavailable and ``CI`` is not set. Screenshots and the DOM dumps
go to ``$RNC_TEST_ARTIFACTS/browser`` (default ``test-artifacts/browser`` under the repository root) as test
artifacts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser")


def _find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _find_browser()
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing and cannot be installed here (needs apt-get as root)")
        pytest.skip("chromium is missing and apt-get (as root) is unavailable to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, capture_output=True, timeout=900)
    found = _find_browser()
    assert found, "apt-get installed chromium but no chromium executable is on PATH"
    return found


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("RNC_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory):
    import ray
    from rich.console import Console

    from rnc.platform.config import validate_config
    from rnc.platform.launch import run_launch

    root = tmp_path_factory.mktemp("browser-launch")
    config = validate_config(
        {
            "name": "browser-test",
            "seed": 1,
            "space": {"name": "mbv3", "options": {"resolution": 32}},
            "hardware": {"preset": "rnc", "budgets": [64]},
            "searchers": [{"name": "random"}],
            "objectives": [{"name": "latency"}, {"name": "energy"}],
            "search": {"evaluations": 12, "batch_size": 6, "reference_samples": 8},
            "pools": {"simulators": 1},
            "storage_path": str(root / "ray"),
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        },
        where="test",
    )
    console = Console(record=True, width=100)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        result = run_launch(config, console=console, show_progress=False)
    finally:
        ray.shutdown()
    return result, console.export_text(), root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_ui(launch):
    result, printed, root = launch
    command_line = next(line.strip() for line in printed.splitlines() if " ui --backend-store-uri " in line)
    program = command_line.split(" ui ")[0]
    assert Path(program.split()[0]).is_absolute()  # works without activating the virtualenv
    port = _free_port()
    command = [*program.split(), "ui", "--backend-store-uri", result.tracking_uri, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"  # nothing of the virtualenv on PATH
    server = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # a loaded 2-core machine takes minutes to start it
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "mlflow ui exited"
            assert time.monotonic() < deadline, "mlflow ui did not answer within 600 s"
            time.sleep(0.5)
        yield base
    finally:
        _stop_group(server)


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop ``proc`` and everything it started (``mlflow ui`` runs uvicorn, a job runner and huey consumers in its
    session): SIGTERM to the process group, SIGKILL after 30 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)


class Browser:
    """Headless Chromium driven over the DevTools protocol (aiohttp's websocket client): open a URL, wait until the
    page's text satisfies a condition (the MLflow UI is a single-page app that fills in after its API calls),
    take a screenshot."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", "--window-size=1600,1000", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        deadline = time.monotonic() + 120
        self.port = None
        while self.port is None:
            line = self.proc.stderr.readline()
            assert line or self.proc.poll() is None, "chromium exited before its DevTools endpoint came up"
            if "DevTools listening on ws://" in line:
                self.port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
            assert time.monotonic() < deadline, "chromium did not start within 120 s"

    def close(self) -> None:
        _stop_group(self.proc)

    def _run(self, steps) -> object:
        """Run ``steps(call)`` against the first page over one DevTools websocket; ``call(method, **params)``."""
        import asyncio
        import json

        import aiohttp

        async def run() -> object:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{self.port}/json/list") as response:
                    pages = [t for t in await response.json(content_type=None) if t["type"] == "page"]
                async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    counter = iter(range(1, 10**6))

                    async def call(method: str, **params) -> dict:
                        ident = next(counter)
                        await ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
                        while True:
                            message = json.loads((await ws.receive()).data)
                            if message.get("id") == ident:
                                return message.get("result", {})

                    return await steps(call)

        return asyncio.run(run())

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the current page."""

        async def steps(call) -> object:
            return (await call("Runtime.evaluate", expression=expression)).get("result", {}).get("value")

        return self._run(steps)

    def visit(self, url: str, screenshot: Path, until, timeout_s: float = 120.0) -> str:
        """Open ``url``; poll ``document.body.innerText`` until ``until(text)`` or ``timeout_s``; save a screenshot
        and the page text next to it; return the text."""
        import asyncio
        import base64

        async def steps(call) -> str:
            await call("Page.enable")
            await call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            text = ""
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                result = await call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''")
                text = result.get("result", {}).get("value", "") or ""
                if until(text):
                    break
            await asyncio.sleep(2.0)  # let the last rows and charts paint
            shot = await call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return text

        text = str(self._run(steps))
        screenshot.with_suffix(".txt").write_text(text)
        return text


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory):
    b = Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _printed_link(printed: str, label: str, base: str) -> str:
    line = next(line for line in printed.splitlines() if line.startswith(label))
    return base + "/#/" + line.split("/#/", 1)[1].strip()


def test_launch_prints_runs_url_and_ui_shows_candidate_runs(browser, launch, mlflow_ui, artifacts) -> None:
    from mlflow import MlflowClient

    result, printed, _ = launch
    client = MlflowClient(result.tracking_uri)
    experiment = client.get_experiment_by_name("browser-test")
    assert f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning" in printed
    front = result.candidates[result.candidates.pareto_budget]
    names = {
        r.info.run_name
        for r in client.search_runs([experiment.experiment_id], "metrics.pareto_budget = 1", max_results=100)
    }
    assert len(names) == len(front) > 0
    all_url = _printed_link(printed, "every run:", mlflow_ui)
    text = browser.visit(all_url, artifacts / "runs.png", until=lambda t: result.launch_id in t)
    assert result.launch_id in text  # opens on the runs table (classic ML view), not the GenAI overview
    table_url = _printed_link(printed, "fronts:", mlflow_ui)
    text = browser.visit(table_url, artifacts / "front_table.png", until=lambda t: any(n in t for n in names))
    shown = [n for n in names if n in text]
    assert shown, "no front candidate run is listed in the runs table"  # named for searcher, budget and network
    assert (artifacts / "front_table.png").stat().st_size > 10_000
    candidate = front.iloc[0]
    run = client.search_runs([experiment.experiment_id], f"tags.`rnc.candidate_id` = '{candidate.candidate_id}'")[0]
    run_url = f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
    text = browser.visit(run_url, artifacts / "candidate_run.png", until=lambda t: "pareto_budget" in t)
    for name in ("latency_ns", "energy_uj", "pareto_budget", "feasible", "network"):
        assert name in text, f"{name} is not shown on the candidate's run page"
    latency = run.data.metrics["latency_ns"]
    assert (f"{latency:.0f}" if latency == int(latency) else f"{latency:g}") in text.replace(",", "")


def test_html_front_plot_renders_points_offline(browser, launch, artifacts) -> None:
    from rnc.platform.report import plot_fronts

    result, _, root = launch
    html = plot_fronts(result.candidates, result.objectives)["plots/front_budget_64.html"]
    assert b"<script src=" not in html and len(html) > 1_000_000  # plotly.js inline, nothing loaded from elsewhere
    page = root / "front_budget_64.html"
    page.write_bytes(html)
    count = "document.querySelectorAll('path.point').length"
    text = browser.visit(page.as_uri(), artifacts / "front_plot.png", until=lambda t: "latency (µs)" in t)
    assert "latency (µs)" in text and "energy (µJ)" in text  # axis titles with units
    points = browser.evaluate(count)
    assert points >= len(result.candidates), f"{points} plotted points for {len(result.candidates)} candidates"


def test_report_plan_on_demand_attaches_the_candidates_plan(launch, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from rnc.platform.cli import app

    result, _, _ = launch
    candidate = result.candidates.iloc[3]
    out = CliRunner().invoke(
        app,
        ["report", "--tracking-uri", result.tracking_uri, "--out", str(tmp_path), "--plan", candidate.candidate_id],
    )
    assert out.exit_code == 0, out.output
    client = MlflowClient(result.tracking_uri)
    run = client.search_runs(
        [client.get_experiment_by_name("browser-test").experiment_id],
        f"tags.`rnc.candidate_id` = '{candidate.candidate_id}'",
    )[0]
    import json

    plan = json.loads(Path(client.download_artifacts(run.info.run_id, "plan.json", str(tmp_path))).read_text())
    assert plan["candidate_id"] == candidate.candidate_id
    assert plan["plan"]["crossbars_used"] == candidate.crossbars_used  # the search measured the same compile
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["plan.json"]
    bad = CliRunner().invoke(app, ["report", "--tracking-uri", result.tracking_uri, "--plan", "nope/00000"])
    assert bad.exit_code == 2 and "no such candidate" in bad.output

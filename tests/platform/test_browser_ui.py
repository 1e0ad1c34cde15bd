"""A real browser on a finished launch: headless Chromium (Debian's ``chromium`` package) opens the MLflow UI the
launch prints, and the launch's HTML front plot from disk with no network.

Set-up: when ``chromium`` is missing, the test installs it with ``apt-get update && apt-get install -y chromium``
(CI runs as root); it skips only where apt-get is unavailable and ``CI`` is not set. Screenshots and the DOM dumps
go to ``$RNC_TEST_ARTIFACTS/browser`` (default ``test-artifacts/browser`` under the repository root) as test
artifacts.
"""

from __future__ import annotations

import os
import shutil
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
               "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"  # nothing of the virtualenv on PATH
    server = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None, "mlflow ui exited"
        assert time.monotonic() < deadline, "mlflow ui did not answer within 120 s"
        time.sleep(0.5)
    yield base
    server.terminate()
    server.wait(timeout=30)


def _browse(chromium: str, url: str, screenshot: Path, budget_ms: int = 20000) -> str:
    """Load ``url`` headless, save a screenshot, return the DOM after ``budget_ms`` of virtual time."""
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", "--window-size=1600,1000", f"--virtual-time-budget={budget_ms}"]
    subprocess.run([*flags, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=180)
    dom = subprocess.run([*flags, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=180)
    screenshot.with_suffix(".html").write_text(dom.stdout)
    return dom.stdout


def test_launch_prints_runs_url_and_ui_shows_candidate_runs(chromium, launch, mlflow_ui, artifacts) -> None:
    from mlflow import MlflowClient

    result, printed, _ = launch
    experiment = MlflowClient(result.tracking_uri).get_experiment_by_name("browser-test")
    assert f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning" in printed
    runs_url = f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    dom = _browse(chromium, runs_url, artifacts / "runs.png")
    assert "random b64 #000" in dom  # candidate runs are listed, named for searcher, budget and network
    assert (artifacts / "runs.png").stat().st_size > 10_000
    candidate = result.candidates.iloc[0]
    run = MlflowClient(result.tracking_uri).search_runs(
        [experiment.experiment_id], f"tags.`rnc.candidate_id` = '{candidate.candidate_id}'"
    )[0]
    run_url = f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
    dom = _browse(chromium, run_url, artifacts / "candidate_run.png")
    for name in ("latency_ns", "energy_uj", "pareto_budget", "feasible"):
        assert name in dom, f"metric {name} is not shown on the candidate's run page"
    assert f"{candidate.latency_ns:.4g}"[:4] in dom.replace(",", "")


def test_html_front_plot_renders_points_offline(chromium, launch, artifacts) -> None:
    from rnc.platform.report import plot_fronts

    result, _, root = launch
    html = plot_fronts(result.candidates, result.objectives)["plots/front_budget_64.html"]
    assert b"cdn.plot.ly" not in html and b'<script src="http' not in html  # plotly.js is inline
    page = root / "front_budget_64.html"
    page.write_bytes(html)
    env_proxy = {"--proxy-server": "127.0.0.1:9"}  # any network access would fail
    flags = [f"{k}={v}" for k, v in env_proxy.items()]
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *flags,
         "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        check=True, capture_output=True, text=True, timeout=180,
    ).stdout
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *flags,
         "--window-size=1200,800", "--virtual-time-budget=10000", f"--screenshot={artifacts / 'front_plot.png'}",
         page.as_uri()],
        check=True, capture_output=True, timeout=180,
    )
    points = dom.count('class="point"')
    assert points >= len(result.candidates), f"{points} plotted points for {len(result.candidates)} candidates"

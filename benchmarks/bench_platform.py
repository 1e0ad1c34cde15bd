"""Platform overhead of `rnc-platform launch` on simulator-only candidates (no supernet), by phase.

Each measured launch runs as a user runs it, in a fresh Python process: imports, preflight, a local Ray started
and stopped by the launch, a SQLite MLflow store in a temporary folder. Measured per launch:

- phases: the process's wall time by phase -- imports, preflight, then the launch's own phase timer
  (``LaunchResult.stats["phases_s"]``: Ray start, tracking and pool actors' start with the JIT warm-up, reference
  samples, the Tune run, fronts and artifacts, Ray stop, printing); the Tune run split into Tune's start (until
  the first trial's function runs), the trials' loops (first trial start to last trial end) and Tune's stop;
- compile: the simulator actors' compile time (``SimulatorService.stats()["compile_s"]``) / actors (they compile
  in parallel), and the share of the wall time outside compiling (``1 - compile / wall``);
- cold: a fresh clone's first launch (an empty ``NUMBA_CACHE_DIR``, a new MLflow store); warm: the next launch in
  the same folder (Numba's on-disk cache filled, the MLflow store there); cluster: a warm launch into a Ray instance
  already running in the process (started before the clock starts, as a cluster started beforehand would be), so
  Ray's own start and stop are not part of the launch; with the simulator actor's JIT warm-up time;
- MLflow cost per candidate (the tracking actor's write time / candidates written);
- driver memory: the driver's RSS sampled every 0.25 s during the Tune phase (first, last and peak sample).

Several source trees (``--code``, each put first on ``PYTHONPATH`` of its launches; default: this checkout) run
side by side, alternating, so a noisy machine affects them alike.

    python benchmarks/bench_platform.py [--candidates 1000] [--simulators 1] [--cache cold warm cluster]
        [--code DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config_dict(root: Path, candidates: int, simulators: int, name: str) -> dict:
    return {
        "name": name,
        "seed": 0,
        "space": {"name": "mbv3", "options": {"resolution": 32}},
        "hardware": {"preset": "rnc", "budgets": [64, 128]},
        "searchers": [{"name": "nsga2"}, {"name": "random"}],
        "objectives": [{"name": "latency"}, {"name": "energy"}, {"name": "utilization"}],
        "search": {"evaluations": candidates // 4, "batch_size": 50, "reference_samples": 16},
        "pools": {"simulators": simulators},
        "storage_path": str(root / "ray"),
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
    }


class RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.stop.is_set():
            resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
            self.samples.append((time.monotonic(), resident_pages * page / 2**20))
            time.sleep(0.25)


def child(args: argparse.Namespace) -> None:
    """One launch in this process; prints one JSON line."""
    ray_preinit_s = None
    if args.cache == "cluster":  # Ray up before the clock starts; the launch uses it and leaves it running
        import ray

        t_ray = time.perf_counter()
        ray.init(num_cpus=max(2, args.simulators + 1), include_dashboard=False, configure_logging=False)
        ray_preinit_s = time.perf_counter() - t_ray
    t0 = time.perf_counter()
    from rich.console import Console

    from rnc.platform.config import validate_config
    from rnc.platform.launch import run_launch
    from rnc.platform.preflight import preflight

    t_import = time.perf_counter()
    config = validate_config(
        _config_dict(Path(args.workdir), args.candidates, args.simulators, "bench"), where="benchmark"
    )
    checked = preflight(config)
    t_preflight = time.perf_counter()
    sampler = RssSampler()
    sampler.start()
    result = run_launch(config, checked=checked, console=Console(quiet=True), show_progress=False)
    sampler.stop.set()
    wall_s = time.perf_counter() - t0
    stats = result.stats
    n_sim = len(stats["simulators"])
    compile_s = sum(s["compile_s"] for s in stats["simulators"]) / n_sim
    trials = list(stats["trials"].values())
    phases = {"import_s": t_import - t0, "preflight_s": t_preflight - t_import, **stats["phases_s"]}
    fit_start, fit_end = stats["tune_window_monotonic"]
    tune_split = {}
    if all("start_monotonic_s" in t for t in trials):  # trials report their start (this checkout's tuning.py)
        starts = [t["start_monotonic_s"] for t in trials]
        ends = [t["start_monotonic_s"] + t["trial_elapsed_s"] for t in trials]
        tune_split = {
            "tune_start_s": min(starts) - fit_start,
            "trial_loops_s": max(ends) - min(starts),
            "tune_stop_s": fit_end - max(ends),
        }
    tracking = stats["tracking"]
    rss = [mb for t, mb in sampler.samples if fit_start <= t <= fit_end] or [mb for _, mb in sampler.samples]
    row = {
        "code": args.code,
        "simulators": n_sim,
        "cache": args.cache,
        "candidates": len(result.candidates),
        "ray_started_before_s": ray_preinit_s,
        "wall_s": wall_s,
        "launch_wall_s": result.wall_s,
        "compile_s": compile_s,
        "outside_compile_share": 1 - compile_s / wall_s,
        "outside_compile_share_launch": 1 - compile_s / result.wall_s,
        "jit_warmup_s": max(s["warmup_s"] for s in stats["simulators"]),
        "phases_s": phases,
        "tune_split_s": tune_split,
        "trial_setup_s_max": max(t["setup_s"] for t in trials),
        "trial_loop_s": [t["trial_elapsed_s"] - t["setup_s"] for t in trials],
        "waiting_for_pools_s": [t["waiting_for_pools_s"] for t in trials],
        "cache_hits": sum(s["hits"] for s in stats["simulators"]),
        "mlflow_candidate_ms": 1e3 * tracking["candidate_write_s"] / max(1, tracking["candidates_written"]),
        "mlflow_all_writes_ms_per_candidate": 1e3 * tracking["write_s"] / len(result.candidates),
        "driver_rss_mb_tune_first_last_peak": [round(rss[0]), round(rss[-1]), round(max(rss))],
    }
    print("RESULT " + json.dumps(_rounded(row)), flush=True)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--simulators", type=int, nargs="+", default=[1])
    parser.add_argument("--cache", nargs="+", default=["cold", "warm", "cluster"], choices=["cold", "warm", "cluster"],
                        help="states, in order: cold (empty Numba cache, new MLflow store), warm (the next launch in "
                        "the same folder), cluster (warm, on a Ray cluster started beforehand)")
    parser.add_argument("--code", nargs="+", default=[str(ROOT)], help="source trees to compare side by side")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.code, args.cache, args.simulators = os.environ["BENCH_CODE"], os.environ["BENCH_CACHE"], args.simulators[0]
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-platform-") as tmp:
        for n_sim in args.simulators:
            for state in args.cache:
                for i, code in enumerate(args.code):
                    row = _run_child(Path(tmp), state, n_sim, i, code, args.candidates)
                    print(json.dumps(row), flush=True)


def _run_child(tmp: Path, state: str, n_sim: int, index: int, code: str, candidates: int) -> dict:
    """One launch in a fresh process with ``code`` first on its path and its own Numba cache folder (emptied
    first for ``state`` cold)."""
    cache_dir = tmp / f"numba-cache-{index}"
    if state == "cold":
        subprocess.run(["rm", "-rf", str(cache_dir)], check=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(code).resolve()),
        "NUMBA_CACHE_DIR": str(cache_dir),
        "BENCH_CODE": code,
        "BENCH_CACHE": state,
    }
    workdir = tmp / f"run-{n_sim}-{index}"  # warm: the next launch in the cold launch's folder
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--workdir", str(workdir),
           "--candidates", str(candidates), "--simulators", str(n_sim)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - t0
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"launch failed ({code}, cache {state}): exit {out.returncode}")
    row = json.loads(lines[-1].removeprefix("RESULT "))
    row["process_s"] = round(process_s, 3)
    return row

if __name__ == "__main__":
    main()

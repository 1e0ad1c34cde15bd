"""Platform overhead and scaling of `rnc-platform launch` on simulator-only candidates (no supernet).

Measures, on a local Ray and a SQLite MLflow store in a temporary folder:

- phases: the launch's wall time by phase (``LaunchResult.stats["phases_s"]``: Ray start, actor start with the
  JIT warm-up, reference samples, the Tune run, fronts and artifacts, Ray stop, printing) and the share of the
  whole launch spent outside compiling (compile = the simulator actors' compile time / actors);
- overhead: the share of the Tune phase's wall time spent outside evaluation (Ray, Tune, searchers, MLflow),
  evaluation being the simulator actors' compile time (``SimulatorService.stats()["compile_s"]``), on N
  candidates (default 1,000: 2 searchers x 2 budgets x 250); and, inside the trials' ask/tell loops, the share
  of loop time outside the calls to the actor pools (ask, tell, fronts, checkpoint, ``tune.report``);
- MLflow cost per candidate, amortized: the tracking actor's write time / candidates written;
- driver memory: the driver's RSS sampled every 0.25 s during the Tune phase (first and last sample, peak);
- scaling: candidates/s of the Tune phase with 1 and 2 simulator actors.

    python benchmarks/bench_platform.py [--candidates 1000] [--simulators 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import ray
from rich.console import Console

from rnc.platform.config import validate_config
from rnc.platform.launch import run_launch


def _config(root: Path, candidates: int, simulators: int, name: str):
    per_trial = candidates // 4
    return validate_config(
        {
            "name": name,
            "seed": 0,
            "space": {"name": "mbv3", "options": {"resolution": 32}},
            "hardware": {"preset": "rnc", "budgets": [64, 128]},
            "searchers": [{"name": "nsga2"}, {"name": "random"}],
            "objectives": [{"name": "latency"}, {"name": "energy"}, {"name": "utilization"}],
            "search": {"evaluations": per_trial, "batch_size": 50, "reference_samples": 16},
            "pools": {"simulators": simulators},
            "storage_path": str(root / "ray"),
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        },
        where="benchmark",
    )


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--simulators", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    console = Console(quiet=True)
    ray.init(num_cpus=max(3, max(args.simulators) + 1), include_dashboard=False, configure_logging=False)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n_sim in args.simulators:
                sampler = RssSampler()
                sampler.start()
                result = run_launch(
                    _config(Path(tmp), args.candidates, n_sim, f"bench-sim{n_sim}"),
                    console=console,
                    show_progress=False,
                )
                sampler.stop.set()
                sampler.join()
                stats = result.stats
                n = len(result.candidates)
                compile_s = sum(s["compile_s"] for s in stats["simulators"])
                eval_wall_s = compile_s / n_sim  # the actors compile in parallel
                tune_s = stats["tune_s"]
                trials = stats["trials"].values()
                setup_s = max(t["setup_s"] for t in trials)
                loop_s = [t["trial_elapsed_s"] - t["setup_s"] for t in trials]
                tracking = stats["tracking"]
                t0, t1 = stats["tune_window_monotonic"]
                rss = [mb for t, mb in sampler.samples if t0 <= t <= t1] or [mb for _, mb in sampler.samples]
                phases = {k: round(v, 2) for k, v in stats["phases_s"].items()}
                rows.append(
                    {
                        "simulators": n_sim,
                        "candidates": n,
                        "launch_wall_s": round(result.wall_s, 2),
                        "phases_s": phases,
                        "outside_compile_share_launch": round(1 - eval_wall_s / result.wall_s, 3),
                        "tune_fit_outside_trials_s": round(
                            stats["phases_s"]["tune_fit_s"] - max(t["trial_elapsed_s"] for t in trials), 2
                        ),
                        "tune_wall_s": round(tune_s, 2),
                        "trial_setup_s_max": round(setup_s, 2),
                        "search_loop_s_per_trial": [round(x, 2) for x in loop_s],
                        "evaluation_s": round(eval_wall_s, 2),
                        "cache_hits": sum(s["hits"] for s in stats["simulators"]),
                        "overhead_share_tune": round(1 - eval_wall_s / tune_s, 3),
                        "overhead_share_in_loops": round(
                            sum(t["outside_evaluation_s"] for t in trials) / sum(loop_s), 3
                        ),
                        "waiting_for_pools_s_per_trial": [round(t["waiting_for_pools_s"], 2) for t in trials],
                        "candidates_per_s_tune": round(n / tune_s, 1),
                        "mlflow_candidate_ms": round(
                            1e3 * tracking["candidate_write_s"] / tracking["candidates_written"], 2
                        ),
                        "mlflow_all_writes_ms_per_candidate": round(1e3 * tracking["write_s"] / n, 2),
                        "driver_rss_mb_tune_first_last_peak": [round(rss[0]), round(rss[-1]), round(max(rss))],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

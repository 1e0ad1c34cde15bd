"""Platform overhead and scaling of `rnc-platform launch` on simulator-only candidates (no supernet).

Measures, on a local Ray and a SQLite MLflow store in a temporary folder:

- overhead: the share of the Tune phase's wall time spent outside evaluation (Ray, Tune, searchers, MLflow),
  evaluation being the simulator actors' compile time (``SimulatorService.stats()["compile_s"]``), with one
  simulator actor, on N candidates (default 1,000: 2 searchers x 2 budgets x 250);
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
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.stop.is_set():
            resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
            self.samples.append(resident_pages * page / 2**20)
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
                compile_s = sum(s["compile_s"] for s in stats["simulators"])
                tune_s = stats["tune_s"]
                tracking = stats["tracking"]
                rows.append(
                    {
                        "simulators": n_sim,
                        "candidates": len(result.candidates),
                        "launch_wall_s": round(result.wall_s, 2),
                        "tune_wall_s": round(tune_s, 2),
                        "compile_s": round(compile_s, 2),
                        "cache_hits": sum(s["hits"] for s in stats["simulators"]),
                        "overhead_share": round(1 - compile_s / max(n_sim, 1) / tune_s, 3),
                        "candidates_per_s": round(len(result.candidates) / tune_s, 1),
                        "mlflow_ms_per_candidate": round(
                            1e3 * tracking["write_s"] / max(1, tracking["candidates_written"]), 2
                        ),
                        "driver_rss_mb_first_last_peak": [
                            round(sampler.samples[0]),
                            round(sampler.samples[-1]),
                            round(max(sampler.samples)),
                        ],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()

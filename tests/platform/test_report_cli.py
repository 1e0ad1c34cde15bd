"""``rnc-platform report``: a launch stored by hand in a real MLflow SQLite store, read back and printed.

The store holds what a finished launch leaves (a launch run tagged ``rnc.kind=launch`` with ``candidates.parquet``
and ``summary.json``); its candidates and fronts are worked out by hand below, so the test checks that the report
finds the launch (by default, by launch id, by a run name with a quote), prints exactly the front members, counts
candidates and feasible ones, and writes the plots.

Candidates (objectives: latency_ns min, energy_uj min):

    budget 64:  A (10, 5)  B (20, 2)  C (30, 6)  D (5, 1) infeasible
    budget 128: E (8, 7)   F (12, 1)  G (15, 3)

- front of budget 64: A, B (C is dominated by A: 10 < 30 and 5 < 6; D is infeasible);
- front of budget 128: E, F (G is dominated by F: 12 < 15 and 1 < 3);
- front across budgets: E, A, F (B is dominated by F: 12 < 20 and 1 < 2; E has the lowest latency of the
  feasible ones, A beats F on latency, F beats both on energy).
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from rnc.platform.cli import app

runner = CliRunner()

ROWS = [  # id, budget, latency_ns, energy_uj, feasible, pareto_budget, pareto_global
    ("A", 64, 10.0, 5.0, True, True, True),
    ("B", 64, 20.0, 2.0, True, True, False),
    ("C", 64, 30.0, 6.0, True, False, False),
    ("D", 64, 5.0, 1.0, False, False, False),
    ("E", 128, 8.0, 7.0, True, True, True),
    ("F", 128, 12.0, 1.0, True, True, True),
    ("G", 128, 15.0, 3.0, True, False, False),
]
METRICS = ("accuracy", "hw_accuracy", "latency_ns", "throughput_ips", "energy_uj", "area_mm2", "edap", "utilization",
           "crossbars_used")


def _frame() -> pd.DataFrame:
    records = []
    for i, (cid, budget, latency, energy, feasible, front_b, front_g) in enumerate(ROWS):
        row = {
            "candidate_id": f"cand-{cid}", "trial": f"nsga2-b{budget}", "searcher": "nsga2", "budget": budget,
            "generation": 0, "index": i, "genome_key": f"{i}-0-0", "genome": json.dumps([i, 0, 0]),
            "feasible": feasible, **{m: math.nan for m in METRICS},
            "pareto_budget": front_b, "pareto_global": front_g, "gene.depth": i % 3,
        }
        row.update(latency_ns=latency, energy_uj=energy, crossbars_used=budget // 2, utilization=0.5)
        records.append(row)
    return pd.DataFrame(records)


def _store_launch(client: MlflowClient, experiment_id: str, run_name: str, launch_id: str) -> str:
    run = client.create_run(experiment_id, run_name=run_name, tags={"rnc.kind": "launch", "rnc.launch_id": launch_id})
    buf = io.BytesIO()
    _frame().to_parquet(buf, index=False)
    client.log_dict(run.info.run_id, {"objectives": [["latency_ns", "min"], ["energy_uj", "min"]]}, "summary.json")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "candidates.parquet"
        path.write_bytes(buf.getvalue())
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    root = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("reported", artifact_location=(root / "artifacts").as_uri())
    _store_launch(client, exp, "older", "reported-older")
    run_id = _store_launch(client, exp, "it's", "reported-20261130-000000-abcd")
    return uri, run_id, root


def _front_ids(text: str) -> set[str]:
    return {f"cand-{c}" for c in "ABCDEFG" if f"cand-{c}" in text}


@pytest.mark.parametrize("which", [None, "reported-20261130-000000-abcd", "it's", "run-id"])
def test_report_prints_the_fronts_and_writes_plots(store, tmp_path, which):
    uri, run_id, _ = store
    out = tmp_path / "plots-here"
    args = ["report", "--tracking-uri", uri, "--out", str(out)]
    if which is not None:
        args.insert(1, run_id if which == "run-id" else which)
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    text = result.stdout
    assert "launch reported-20261130-000000-abcd" in text
    assert "7 candidates, 6 feasible, budgets [64, 128]" in text
    budget_64 = text.split("budget 64 crossbars")[1].split("budget 128 crossbars")[0]
    budget_128 = text.split("budget 128 crossbars")[1].split("across budgets")[0]
    across = text.split("across budgets")[1]
    assert "(2 networks)" in budget_64 and _front_ids(budget_64) == {"cand-A", "cand-B"}
    assert "(2 networks)" in budget_128 and _front_ids(budget_128) == {"cand-E", "cand-F"}
    assert "(3 networks)" in across and _front_ids(across) == {"cand-A", "cand-E", "cand-F"}
    # across budgets, sorted by the first objective: E (8 ns), A (10 ns), F (12 ns)
    assert across.index("cand-E") < across.index("cand-A") < across.index("cand-F")
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == sorted(f"front_{k}.{ext}" for k in ("budget_64", "budget_128", "all_budgets")
                           for ext in ("png", "html"))
    assert (out / "plots" / "front_budget_64.png").read_bytes()[:4] == b"\x89PNG"
    assert result.stderr == ""


def test_report_unknown_run_is_one_error_line(store, tmp_path):
    uri, _, _ = store
    result = runner.invoke(app, ["report", "no-such-launch", "--tracking-uri", uri, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "no launch matching 'no-such-launch'" in result.stderr
    assert not (tmp_path / "o").exists()

"""``rnc-platform report [RUN]``: print and plot a finished launch from MLflow."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run: str | None = typer.Argument(None, help="Launch run id, run name or launch id. Default: the latest."),
        tracking_uri: str = typer.Option(
            "sqlite:///rnc-runs/mlflow.db", "--tracking-uri", help="MLflow tracking URI of the launch."
        ),
        out: Path | None = typer.Option(
            None, "--out", help="Folder for the front plots (PNG + HTML). Default: rnc-runs/report-<launch id>."
        ),
        max_rows: int = typer.Option(20, "--max-rows", min=1, help="Rows per front table."),
        plan: str | None = typer.Option(
            None, "--plan", help="A candidate id (nsga2-b96/00012): compile it again, write its mapping plan to "
            "--out and attach it to its MLflow run as plan.json.",
        ),
    ) -> None:
        """Pareto fronts per budget and across budgets of a finished launch, as tables and plots."""
        from rnc.platform.config import absolute_tracking_uri
        from rnc.platform.report import load_launch, mlflow_links, mlflow_ui_command, plot_fronts, print_fronts
        from rnc.platform.storage import check_writable_dir
        from rnc.platform.tracking_check import check_tracking_uri

        console = Console()
        uri = absolute_tracking_uri(check_tracking_uri(tracking_uri, "--tracking-uri", must_exist=True))
        if out is not None:
            check_writable_dir(out, "--out")
        launch, df, objectives = load_launch(uri, run)
        launch_id = launch.data.tags.get("rnc.launch_id", launch.info.run_id)
        folder = out or Path("rnc-runs") / f"report-{launch_id}"
        check_writable_dir(folder, "--out")
        console.print(
            f"[bold]launch[/] {launch_id} (run {launch.info.run_id}, {launch.info.status}): {len(df)} candidates, "
            f"{int(df.feasible.sum())} feasible, budgets {sorted(int(b) for b in df.budget.unique())}"
        )
        if plan is not None:
            import json

            from rnc.platform.report import log_candidate_plan

            content = log_candidate_plan(uri, launch, df, plan)
            path = folder / f"plan-{plan.replace('/', '-')}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=1))
            console.print(f"mapping plan of {plan} written to {path} and attached to its MLflow run as plan.json")
            return
        print_fronts(df, objectives, console, max_rows=max_rows)
        for rel, content in plot_fronts(df, objectives).items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        console.print(
            f"plots in {folder}/plots; open the launch in the MLflow UI:\n  {mlflow_ui_command(uri)}\nthen open\n"
            f"{mlflow_links(launch.info.experiment_id, objectives)}",
            soft_wrap=True,
        )

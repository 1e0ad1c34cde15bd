"""``rnc-platform launch [CONFIG.yaml]``: run a distributed search (see :mod:`rnc.platform.launch`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console


def _parse_budgets(text: str | None) -> list[int] | None:
    from rnc.platform.config import ConfigError

    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--budgets {text!r}: expected comma-separated integers, e.g. --budgets 64,128") from None


def register(app: typer.Typer) -> None:
    @app.command("launch")
    def launch(
        config: Path | None = typer.Argument(
            None, help="Experiment YAML (examples/*.yaml). Default: the embedded default (digits, mbv3, 2 budgets)."
        ),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster: 'auto' or 'ray://HOST:PORT'. Default: a local embedded Ray."
        ),
        tracking_uri: str | None = typer.Option(
            None, "--tracking-uri", help="MLflow tracking URI (overrides the config), e.g. http://mlflow:5000."
        ),
        resume: bool = typer.Option(False, "--resume", help="Resume the latest interrupted launch of this config."),
        seed: int | None = typer.Option(None, "--seed", min=0, help="Override the config's seed."),
        storage_path: str | None = typer.Option(
            None, "--storage-path", help="Ray Tune storage (overrides the config); shared on multi-node clusters."
        ),
        budgets: str | None = typer.Option(
            None, "--budgets", help="Crossbar budgets, comma-separated (0 = unlimited), e.g. --budgets 64,128."
        ),
        evaluations: int | None = typer.Option(
            None, "--evaluations", min=1, help="Distinct networks each trial evaluates (search.evaluations)."
        ),
        set_values: list[str] = typer.Option(
            [], "--set", help="Override any config field, KEY=VALUE with a dotted KEY (repeatable), "
            "e.g. --set search.batch_size=8 --set supernet.epochs=2."
        ),
    ) -> None:
        """Search Pareto fronts of networks x crossbar budgets with Ray Tune; track every candidate in MLflow."""
        from rnc.platform.cli_errors import INTERRUPTED_EXIT, emit
        from rnc.platform.config import ExperimentConfig
        from rnc.platform.preflight import preflight

        cfg = ExperimentConfig.from_yaml(config) if config is not None else ExperimentConfig.default()
        cfg = cfg.with_overrides(
            seed=seed,
            tracking_uri=tracking_uri,
            storage_path=storage_path,
            budgets=_parse_budgets(budgets),
            evaluations=evaluations,
            sets=list(set_values),
        )
        checked = preflight(cfg, resume=resume)  # before the launch machinery (Ray, MLflow) is even imported
        from rnc.platform.launch import LaunchError, LaunchInterrupted, ResumableLaunchError, run_launch

        again = ["rnc-platform", "launch", *([shlex.quote(str(config))] if config is not None else [])]
        for flag, value in (("--address", address), ("--tracking-uri", tracking_uri), ("--seed", seed),
                            ("--storage-path", storage_path), ("--budgets", budgets),
                            ("--evaluations", evaluations), *(("--set", item) for item in set_values)):
            if value is not None:
                again += [flag, shlex.quote(str(value))]
        try:
            run_launch(cfg, address=address, resume=resume, console=Console(), checked=checked)
        except LaunchInterrupted as exc:
            emit(f"interrupted: {exc}; runs marked KILLED, no final artifacts; resume with: {' '.join(again)} --resume")
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except ResumableLaunchError as exc:
            raise LaunchError(f"{exc}; then resume with: {' '.join(again)} --resume") from exc

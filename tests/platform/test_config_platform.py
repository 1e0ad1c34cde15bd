"""ExperimentConfig: YAML loading, defaults, and errors that name the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnc.platform.config import ConfigError, ExperimentConfig, absolute_tracking_uri, validate_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MINIMAL = {
    "name": "t",
    "space": {"name": "mbv3"},
    "searchers": [{"name": "nsga2"}],
    "objectives": [{"name": "latency"}, {"name": "accuracy"}],
}


def test_embedded_default_is_the_documented_experiment() -> None:
    cfg = ExperimentConfig.default()
    assert cfg.space.name == "mbv3"
    assert cfg.dataset.name == "digits"
    assert {s.name for s in cfg.searchers} == {"nsga2", "bayes"}
    assert len(cfg.hardware.budgets) == 2
    assert len(cfg.grid()) == 4
    assert cfg.tracking_uri == "sqlite:///rnc-runs/mlflow.db"
    assert cfg.needs_accuracy
    # accuracy on the crossbars, co-designed with the ADC resolution and the crossbar size (NAX)
    assert cfg.needs_hw_accuracy
    assert [o.name for o in cfg.objectives] == ["hw_accuracy", "latency", "energy"]
    genes = cfg.space.options["hardware_genes"]
    assert set(genes) == {"adc_bits", "crossbar_size"} and len(genes["adc_bits"]) >= 2
    assert cfg.hardware.for_budget(96).dac_bits == 8  # one read per input keeps the analog simulation affordable


def test_example_files_validate_and_default_file_matches_embedded() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert {f.stem for f in files} >= {"default", "rnc-mbv3", "nax", "imc-blocks"}
    for path in files:
        ExperimentConfig.from_yaml(path)
    assert ExperimentConfig.from_yaml(EXAMPLES / "default.yaml") == ExperimentConfig.default()


def test_objective_goals_default_to_their_natural_direction() -> None:
    cfg = validate_config(MINIMAL, where="t")
    assert [(o.name, o.goal, o.metric, o.sign) for o in cfg.objectives] == [
        ("latency", "min", "latency_ns", 1.0),
        ("accuracy", "max", "accuracy", -1.0),
    ]
    assert cfg.constraint_names == ["fit_budget"]


@pytest.mark.parametrize(
    ("patch", "field", "reason"),
    [
        ({"objectives": [{"name": "latency"}, {"name": "speed"}]}, "objectives.1.name", "Input should be"),
        ({"objectives": [{"name": "latency"}, {"name": "latency"}]}, "objectives", "distinct"),
        ({"objectives": [{"name": "latency", "goal": "up"}, {"name": "area"}]}, "objectives.0.goal", "'min' or 'max'"),
        ({"hardware": {"budgets": [-1]}}, "hardware.budgets", ">= 0"),
        ({"hardware": {"preset": "rnc", "file": "x.yaml"}}, "hardware", "either 'preset' or 'file'"),
        ({"search": {"batch_size": 0}}, "search.batch_size", "greater than or equal to 1"),
        ({"constraints": {"min_accuracy": 1.5}}, "constraints.min_accuracy", "less than or equal to 1"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({"searcher": []}, "searcher", "unknown field"),
    ],
)
def test_errors_name_field_and_reason(patch: dict, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({**MINIMAL, **patch}, where="exp.yaml")
    text = str(err.value)
    assert text.startswith("exp.yaml: invalid experiment config")
    assert "\n" not in text  # one line: problems are separated by "; "
    problems = text.split("invalid experiment config: ", 1)[1].split("; ")
    line = next(p for p in problems if p.startswith(f"{field}:"))
    assert reason in line


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ExperimentConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ExperimentConfig.from_yaml(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        ExperimentConfig.from_yaml(bad)


def test_overrides_and_hardware(tmp_path: Path) -> None:
    cfg = validate_config({**MINIMAL, "hardware": {"budgets": [32, 0], "set": {"adc_bits": 6}}}, where="t")
    over = cfg.with_overrides(seed=7, tracking_uri="http://mlflow:5000")
    assert (over.seed, over.tracking_uri) == (7, "http://mlflow:5000")
    hw = cfg.hardware.for_budget(32)
    assert (hw.crossbars, hw.adc_bits, hw.name) == (32, 6, "rnc")
    with pytest.raises(ConfigError, match="seed"):
        cfg.with_overrides(seed=-1)
    assert absolute_tracking_uri("sqlite:///a/b.db").startswith("sqlite:////")
    assert absolute_tracking_uri("http://h:5000") == "http://h:5000"


def test_object_store_storage_is_refused_with_what_to_use() -> None:
    config = ExperimentConfig.default()
    with pytest.raises(ConfigError, match=r"storage_path: .*NFS mount"):
        config.with_overrides(storage_path="s3://bucket/rnc")
    assert config.with_overrides(storage_path="/mnt/rnc-shared/ray").storage_path == "/mnt/rnc-shared/ray"


def test_command_line_overrides_budgets_evaluations_and_set() -> None:
    cfg = validate_config(MINIMAL, where="t")
    over = cfg.with_overrides(budgets=[64, 0], evaluations=12, sets=["search.batch_size=4", "supernet.epochs=2"])
    assert (over.hardware.budgets, over.search.evaluations, over.search.batch_size) == ([64, 0], 12, 4)
    assert over.supernet.epochs == 2
    assert over.with_overrides(sets=["hardware.set.adc_bits=6"]).hardware.for_budget(8).adc_bits == 6
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cfg.with_overrides(sets=["search.batch_size"])
    with pytest.raises(ConfigError, match=r"search\.batch_sizes: unknown field"):
        cfg.with_overrides(sets=["search.batch_sizes=3"])
    with pytest.raises(ConfigError, match=r"search\.evaluations"):
        cfg.with_overrides(evaluations=0)

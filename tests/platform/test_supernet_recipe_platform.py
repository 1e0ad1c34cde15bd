"""The supernet training recipe reached from a launch config and from ``rnc-platform supernet train``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rnc.platform.cli import app
from rnc.platform.config import ConfigError, validate_config

MINIMAL = {
    "name": "t", "space": {"name": "mbv3"}, "searchers": [{"name": "nsga2"}],
    "objectives": [{"name": "latency"}, {"name": "accuracy"}],
}


def test_config_recipe_is_validated_with_the_field_named():
    config = validate_config({**MINIMAL, "supernet": {"recipe": {"shrink": "progressive"}}}, where="exp.yaml")
    assert config.supernet.recipe == {"shrink": "progressive"}
    assert validate_config(MINIMAL, where="exp.yaml").supernet.recipe == {}
    with pytest.raises(ConfigError) as err:
        validate_config({**MINIMAL, "supernet": {"recipe": {"shrink": "sometimes"}}}, where="exp.yaml")
    text = str(err.value)
    assert "supernet.recipe:" in text and "shrink" in text and "progressive" in text and "\n" not in text


@pytest.mark.parametrize(
    ("space", "options", "expected"),
    [
        ("mbv3", ["distill=teacher"], ("distill", "inplace")),  # a bad value
        ("mbv3", ["balance=stages"], ("--recipe", "num_stages")),  # a valid value the space cannot take
        ("mbv3", ["split=stages"], ("--recipe", "num_stages")),
        ("mbv3", ["split_epoch=2"], ("--recipe", "split=stages")),
        ("imc-blocks", ["split=stages", "split_epoch=4"], ("--recipe", "split_epoch 4", "4 epochs")),  # never reached
    ],
)
def test_cli_bad_recipe_exits_2_before_training(tmp_path, space, options, expected):
    out = tmp_path / "ckpt"
    recipe = [arg for value in options for arg in ("--recipe", value)]
    result = CliRunner().invoke(
        app, ["supernet", "train", "--space", space, "--epochs", "4", "--out", str(out), *recipe]
    )
    assert result.exit_code == 2, result.output
    assert all(word in result.output for word in expected), result.output
    assert not out.exists()


def test_config_recipe_teacher_per_stage_needs_balance():
    recipe = {"balance": "stages", "teacher": "per-stage"}
    ok = {**MINIMAL, "space": {"name": "imc-blocks"}, "supernet": {"recipe": recipe}}
    assert validate_config(ok, where="exp.yaml").supernet.recipe["teacher"] == "per-stage"
    with pytest.raises(ConfigError, match="balance=stages"):
        validate_config({**MINIMAL, "supernet": {"recipe": {"teacher": "per-stage"}}}, where="exp.yaml")

"""``rnc-platform hardware list|show|check``: presets, roll-up tables, validation errors naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rnc.platform.cli import app
from rnc.simulator import HardwareConfig

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_list_prints_every_preset_with_its_peak():
    res = runner.invoke(app, ["hardware", "list"])
    assert res.exit_code == 0, res.output
    for name in HardwareConfig.presets():
        assert name in res.output
    assert "483" in res.output  # ISAAC: 41.3 TOPS / 85.4 mm2 (the paper's CE is 479 GOPS/s/mm2)
    assert "ISAAC (Shafiee et al." in res.output


def test_show_prints_hierarchy_components_and_actions():
    res = runner.invoke(app, ["hardware", "show", "isaac"])
    assert res.exit_code == 0, res.output
    for text in ("329.810", "0.3723", "hyper_transport", "convert 1.5625 pJ @column_convert", "(none)",
                 "41.29 TOPS", "digital unit: 0.26 pJ/op"):
        assert text in res.output


def test_check_accepts_a_valid_file_and_prints_its_rollup(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: isaac\nname: mine\ntiles_per_chip: 84\n")
    res = runner.invoke(app, ["hardware", "check", str(path)])
    assert res.exit_code == 0, res.output
    # by hand: 2 ops x 84 tiles x 12 IMAs x 8 crossbars x 128 x 16 weights / (16 reads x 100 ns) = 20.64 TOPS
    assert "ok:" in res.output and "20.64 TOPS" in res.output


def test_check_rejects_a_misspelt_event_with_one_line_on_stderr(tmp_path):
    data = HardwareConfig.preset("isaac").model_dump()
    data["components"]["dac"]["actions"]["drive"]["event"] = "row_driv"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "rnc.platform.cli", "hardware", "check", str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "components.dac.actions.drive.event: unknown compiler event 'row_driv'" in lines[0]
    assert str(path) in lines[0]


def test_unknown_preset_and_missing_file_exit_2(tmp_path):
    res = runner.invoke(app, ["hardware", "show", "nope"])
    assert res.exit_code == 2 and "neither a preset" in res.output
    res = runner.invoke(app, ["hardware", "check", str(tmp_path / "absent.yaml")])
    assert res.exit_code == 2 and "does not exist" in res.output

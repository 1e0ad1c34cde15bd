"""``rnc-platform compile``: output, JSON plan, errors (Typer CliRunner) and one real console-script run."""

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rnc.platform.cli import app

runner = CliRunner()


def test_compile_torchvision_model_writes_json(tmp_path):
    out = tmp_path / "plan" / "squeezenet.json"
    res = runner.invoke(app, ["compile", "torchvision:squeezenet1_1:10", "--input", "3x64x64", "--hardware", "rnc",
                              "--crossbars", "128", "--strategy", "rnc", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "features.0" in res.output and "utilization" in res.output
    data = json.loads(out.read_text())
    for key in ("feasible", "crossbars_used", "utilization", "latency_ns", "energy_pj", "area_mm2", "edap",
                "layers", "placements"):
        assert key in data
    assert data["feasible"] is True and data["crossbars_used"] <= 128
    assert {"layer", "crossbar", "row", "col", "rows", "cols", "copy"} <= set(data["placements"][0])
    assert [p.name for p in out.parent.iterdir()] == ["squeezenet.json"]  # no temporary file left


def test_compile_python_factory_isaac_with_set(tmp_path):
    model_file = tmp_path / "net.py"
    model_file.write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))\n"
    )
    res = runner.invoke(app, ["compile", f"{model_file}:build", "--input", "3x8x8", "--hardware", "isaac",
                              "--set", "cell_bits=4", "--set", "weight_bits=8", "--strategy", "isaac"])
    assert res.exit_code == 0, res.output
    assert "isaac" in res.output and "feasible" in res.output


def test_compile_attention_shows_digital_unit_and_refusal_exits_2(tmp_path):
    model_file = tmp_path / "net.py"
    model_file.write_text(
        "import torch, torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)\n"
        "        self.head = nn.Linear(16, 4)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.attn(x, x, x)[0].mean(1))\n"
        "def build():\n"
        "    return Net()\n"
        "def lstm():\n"
        "    return nn.Sequential(nn.LSTM(4, 4))\n"
    )
    out = tmp_path / "plan.json"
    res = runner.invoke(app, ["compile", f"{model_file}:build", "--input", "5x16", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "attn.in_proj" in res.output and "digital matmul" in res.output and "digital softmax" in res.output
    data = json.loads(out.read_text())
    assert data["digital"]["ops"] == 2 * (2 * 5 * 5 * 8) + 5 * 2 * 5 * 5  # QK^T + AV, softmax
    assert data["energy_by_component_pj"]["digital"] == pytest.approx(data["digital"]["energy_pj"])
    res = runner.invoke(app, ["compile", f"{model_file}:build", "--input", "5x16", "--shared", "twice"])
    assert res.exit_code == 2 and "--shared 'twice'" in res.output
    res = runner.invoke(app, ["compile", f"{model_file}:lstm", "--input", "3x4"])
    assert res.exit_code == 2 and "(LSTM): recurrent layers" in res.output


def test_compile_hardware_yaml_and_infeasible_budget(tmp_path):
    hw_file = tmp_path / "hw.yaml"
    hw_file.write_text("base: rnc\ncrossbar_rows: 64\ncrossbar_cols: 64\n")
    res = runner.invoke(app, ["compile", "rnc:vgg8", "--input", "3x32x32", "--hardware", str(hw_file),
                              "--crossbars", "5", "--strategy", "rnc"])
    assert res.exit_code == 0, res.output
    assert "infeasible" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["torchvision:no_such_net"], "no classification model"),
        (["torchvision:squeezenet1_1:ten"], "not an integer"),
        (["squeezenet1_1"], "expected torchvision:NAME"),
        (["missing/file.py:build"], "does not exist"),
        (["torchvision:squeezenet1_1", "--input", "3xAx64"], "such as 3x64x64"),
        (["torchvision:squeezenet1_1", "--input", "3x64"], "cannot run on input 3x64"),
        (["torchvision:squeezenet1_1", "--input", "1x64x64"], "cannot run on input"),
        (["torchvision:squeezenet1_1", "--set", "bogus=1"], "unknown hardware field"),
        (["torchvision:squeezenet1_1", "--set", "cell_bits"], "KEY=VALUE"),
        (["torchvision:squeezenet1_1", "--hardware", "nowhere.yaml"], "does not exist"),
        (["torchvision:squeezenet1_1", "--strategy", "magic"], "unknown strategy"),
        (["torchvision:squeezenet1_1", "--depthwise-mapping", "diagonal"], "unknown depthwise_mapping"),
        (["torchvision:squeezenet1_1", "--min-gain", "1.5"], "min_gain must be in [0, 1)"),
    ],
)
def test_compile_errors_are_clear(tmp_path, args, message):
    out = tmp_path / "out.json"
    res = runner.invoke(app, ["compile", *args, "--json", str(out)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr  # one line, never wrapped
    assert not out.exists()


def test_unreadable_hardware_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("crossbar_rows: [1, 2\n")
    res = runner.invoke(app, ["compile", "rnc:vgg8", "--input", "3x32x32", "--hardware", str(bad)])
    assert res.exit_code == 2 and "not valid YAML" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.slow
def test_console_script_runs(tmp_path):
    exe = shutil.which("rnc-platform") or str(__import__("pathlib").Path(sys.executable).with_name("rnc-platform"))
    out = tmp_path / "vgg8.json"
    proc = subprocess.run(
        [exe, "compile", "rnc:vgg8", "--input", "3x32x32", "--hardware", "isaac", "--set", "weight_bits=8",
         "--set", "cell_bits=2", "--strategy", "isaac", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["crossbars_used"] == 3176

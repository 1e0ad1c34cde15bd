"""The bad-input table: every case exits 2 with one line on stderr naming what is wrong, and writes nothing.

Each case runs the real CLI in-process (Typer's ``CliRunner``, stderr kept apart) from an empty working folder.
After it: exit code 2, stderr is exactly one line starting with ``error:`` and containing the expected phrase
(whatever the length of the temporary paths: the line is never wrapped), no traceback, and no new file under the
working folder or the inputs folder (nothing half-written: no ``latest.json``, no ``mlflow.db``, no plots).

Launch cases stop in preflight; if preflight ever let one through, the guard below fails the case instead of
starting Ray.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rnc.platform.cli import app

runner = CliRunner()

GOOD_EXPERIMENT = {
    "name": "bad-input",
    "space": {"name": "mbv3", "options": {"resolution": 16}},
    "hardware": {"preset": "rnc", "budgets": [96]},
    "searchers": [{"name": "nsga2"}],
    "objectives": [{"name": "latency"}, {"name": "energy"}],
    "search": {"evaluations": 8, "batch_size": 4},
}


def _experiment(**changes) -> dict:
    data = json.loads(json.dumps(GOOD_EXPERIMENT))
    for dotted, value in changes.items():
        target = data
        parts = dotted.split("__")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        if value is _DELETE:
            target.pop(parts[-1], None)
        else:
            target[parts[-1]] = value
    return data


_DELETE = object()

#: name -> experiment mapping (written as YAML into the inputs folder as ``exp-<name>.yaml``)
EXPERIMENTS: dict[str, dict] = {
    "unknown_field": {**_experiment(), "serchers": []},
    "missing_space": _experiment(space=_DELETE),
    "unknown_space": _experiment(space={"name": "mbv4"}),
    "unknown_space_option": _experiment(space={"name": "mbv3", "options": {"resolutoin": 16}}),
    "bad_space_option": _experiment(space={"name": "mbv3", "options": {"resolution": 4}}),
    "unknown_searcher": _experiment(searchers=[{"name": "nsga3"}]),
    "pop_sise": _experiment(searchers=[{"name": "nsga2", "options": {"pop_sise": 8}}]),
    "bad_pop_size": _experiment(searchers=[{"name": "nsga2", "options": {"pop_size": 1}}]),
    "bayes_sampler": _experiment(searchers=[{"name": "bayes", "options": {"sampler": "magic"}}]),
    "duplicate_searchers": _experiment(searchers=[{"name": "nsga2"}, {"name": "nsga2"}]),
    "one_objective": _experiment(objectives=[{"name": "latency"}]),
    "unknown_objective": _experiment(objectives=[{"name": "latncy"}, {"name": "energy"}]),
    "duplicate_objectives": _experiment(objectives=[{"name": "energy"}, {"name": "energy"}]),
    "bad_goal": _experiment(objectives=[{"name": "latency", "goal": "up"}, {"name": "energy"}]),
    "negative_budget": _experiment(hardware={"preset": "rnc", "budgets": [-1]}),
    "duplicate_budgets": _experiment(hardware={"preset": "rnc", "budgets": [64, 64]}),
    "empty_budgets": _experiment(hardware={"preset": "rnc", "budgets": []}),
    "unknown_preset": _experiment(hardware={"preset": "isacc", "budgets": [64]}),
    "preset_and_file": _experiment(hardware={"preset": "rnc", "file": "hw.yaml", "budgets": [64]}),
    "set_crossbars": _experiment(hardware={"preset": "rnc", "set": {"crossbars": 5}, "budgets": [64]}),
    "set_unknown_field": _experiment(hardware={"preset": "rnc", "set": {"cell_bitz": 2}, "budgets": [64]}),
    "set_bad_value": _experiment(hardware={"preset": "rnc", "set": {"cell_bits": 0}, "budgets": [64]}),
    "missing_hardware_file": _experiment(hardware={"file": "nowhere/hw.yaml", "budgets": [64]}),
    "layer_sizes_unknown": _experiment(
        hardware={"preset": "rnc", "set": {"layer_crossbar_sizes": {"stem.0": [64, 64]}}, "budgets": [64]}
    ),
    "bad_name": _experiment(name="my experiment"),
    "negative_seed": _experiment(seed=-1),
    "zero_evaluations": _experiment(search={"evaluations": 0}),
    "zero_batch": _experiment(search={"batch_size": 0}),
    "bad_strategy": _experiment(search={"strategy": "greedy"}),
    "min_accuracy_above_1": _experiment(constraints={"min_accuracy": 2}),
    "negative_latency_cap": _experiment(constraints={"max_latency_ns": -5}),
    "object_store": _experiment(storage_path="s3://bucket/runs"),
    "tracking_scheme": _experiment(tracking_uri="htp:/x::1"),
    "tracking_unreachable": _experiment(tracking_uri="http://127.0.0.1:9"),
    "tracking_bad_port": _experiment(tracking_uri="http://localhost:port"),
    "cifar_missing": _experiment(
        objectives=[{"name": "accuracy"}, {"name": "latency"}], dataset={"name": "cifar10", "root": "no/such/dir"}
    ),
    "imagefolder_no_root": _experiment(
        objectives=[{"name": "accuracy"}, {"name": "latency"}], dataset={"name": "imagefolder"}
    ),
    "unknown_dataset": _experiment(
        objectives=[{"name": "accuracy"}, {"name": "latency"}], dataset={"name": "mnist"}
    ),
    "zero_epochs": _experiment(supernet={"epochs": 0}),
    "stage_balance_without_stages": _experiment(
        objectives=[{"name": "accuracy"}, {"name": "latency"}], supernet={"recipe": {"balance": "stages"}}
    ),
    "split_never_reached": _experiment(
        space={"name": "imc-blocks"}, objectives=[{"name": "accuracy"}, {"name": "latency"}],
        supernet={"epochs": 2, "recipe": {"split": "stages", "split_epoch": 2}},
    ),
    "pools_zero_simulators": _experiment(pools={"simulators": 0}),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of bad (and a few good) input files the cases point to."""
    d = tmp_path_factory.mktemp("inputs")
    rng_bytes = bytes(range(128, 256)) * 4
    (d / "random.yaml").write_bytes(rng_bytes)
    (d / "empty.yaml").write_text("")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "broken.yaml").write_text("crossbar_rows: [1, 2\n")
    (d / "scalar.yaml").write_text("just a string\n")
    hw = {
        "hw-unknown-field.yaml": "base: rnc\ncrossbar_rowz: 64\n",
        "hw-bad-type.yaml": "base: rnc\ncrossbar_rows: many\n",
        "hw-zero-rows.yaml": "base: rnc\ncrossbar_rows: 0\n",
        "hw-component-int.yaml": "base: rnc\ncomponents: {adc: 5}\n",
        "hw-component-unknown.yaml": "base: rnc\ncomponents: {adcc: {power_mw: 3}}\n",
        "hw-component-field.yaml": "base: rnc\ncomponents: {adc: {power_mv: 3}}\n",
        "hw-base-unknown.yaml": "base: nope\n",
        "hw-dac-gt-input.yaml": "base: rnc\ninput_bits: 4\ndac_bits: 8\n",
        "hw-cell-gt-weight.yaml": "base: rnc\nweight_bits: 2\ncell_bits: 4\n",
        "hw-layer-names.yaml": "base: rnc\nlayer_crossbar_sizes: {feature.0: [64, 64], clasifier.1: [32, 32]}\n",
        "hw-layer-zero.yaml": "base: rnc\nlayer_crossbar_sizes: {features.0: [0, 64]}\n",
        "hw-encoding.yaml": "base: rnc\nsigned_encoding: twos\n",
        "hw-nonideal-field.yaml": "base: rnc\nnonideal: {conductance_sigm: 0.1}\n",
        "hw-stuck-rates.yaml": "base: rnc\nnonideal: {stuck_at_on_rate: 0.7, stuck_at_off_rate: 0.7}\n",
    }
    for name, text in hw.items():
        (d / name).write_text(text)
    (d / "folder.yaml").mkdir()
    (d / "a-file").write_text("not a folder\n")
    (d / "model.py").write_text("def build():\n    return 3\n\n\ndef boom():\n    raise RuntimeError('x')\n")
    (d / "syntax.py").write_bytes(rng_bytes)
    for name, data in EXPERIMENTS.items():
        (d / f"exp-{name}.yaml").write_text(yaml.safe_dump(data))
    (d / "exp-good.yaml").write_text(yaml.safe_dump(_experiment()))
    _checkpoints(d)
    _tracking_store(d)
    return d


def _checkpoints(d: Path) -> None:
    manifest = {"format": 1, "space": "mbv3", "space_options": {"resolution": 16}, "dataset": {"name": "digits"}}
    for name in ("ckpt-empty-weights", "ckpt-truncated", "ckpt-good", "ckpt-bad-json", "ckpt-random-manifest",
                 "ckpt-no-weights", "ckpt-format", "ckpt-no-space"):
        (d / name).mkdir()
    for name in ("ckpt-empty-weights", "ckpt-truncated", "ckpt-good", "ckpt-no-weights"):
        (d / name / "manifest.json").write_text(json.dumps(manifest))
    (d / "ckpt-empty-weights" / "supernet.pt").write_bytes(b"")
    buf_path = d / "ckpt-good" / "supernet.pt"
    torch.save({"w": torch.zeros(64)}, buf_path)
    (d / "ckpt-truncated" / "supernet.pt").write_bytes(buf_path.read_bytes()[:100])
    (d / "ckpt-bad-json" / "manifest.json").write_text("{not json")
    (d / "ckpt-random-manifest" / "manifest.json").write_bytes(bytes(range(128, 256)))
    (d / "ckpt-format" / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    (d / "ckpt-no-space" / "manifest.json").write_text(json.dumps({"format": 1}))
    (d / "ckpt-dir-empty").mkdir()


def _tracking_store(d: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{d / 'mlflow.db'}")
    client.create_experiment("no-launch-yet")
    (d / "not-sqlite.db").write_bytes(b"\x00garbage" * 8)


NO_LAUNCH = "Ray was not started"

# (case id, argument list with {d} for the inputs folder, expected phrase in the error line)
CASES: list[tuple[str, list[str], str]] = [
    # -- compile: the MODEL argument, --input, options ------------------------------------------------------
    ("compile-model-no-colon", ["compile", "squeezenet1_1"], "expected torchvision:NAME"),
    ("compile-model-unknown-tv", ["compile", "torchvision:no_such_net"], "no classification model"),
    ("compile-model-classes-word", ["compile", "torchvision:squeezenet1_1:ten"], "not an integer"),
    ("compile-model-classes-zero", ["compile", "torchvision:squeezenet1_1:0"], "NUM_CLASSES must be positive"),
    ("compile-model-unknown-rnc", ["compile", "rnc:vgg9"], "no model factory 'vgg9'"),
    ("compile-model-private-rnc", ["compile", "rnc:_helper"], "no model factory"),
    ("compile-model-missing-file", ["compile", "missing/file.py:build"], "does not exist"),
    ("compile-model-not-py", ["compile", "{d}/empty.yaml:build"], "expected torchvision:NAME or a .py file"),
    ("compile-model-not-module", ["compile", "{d}/model.py:build"], "not an nn.Module"),
    ("compile-model-factory-raises", ["compile", "{d}/model.py:boom"], "boom() failed"),
    ("compile-model-no-factory", ["compile", "{d}/model.py:nothing"], "defines no callable 'nothing'"),
    ("compile-model-binary-py", ["compile", "{d}/syntax.py:build"], "importing"),
    ("compile-input-letters", ["compile", "rnc:vgg8", "--input", "3xAx64"], "such as 3x64x64"),
    ("compile-input-2d", ["compile", "rnc:vgg8", "--input", "3x64"], "cannot run on input 3x64"),
    ("compile-input-4d", ["compile", "rnc:vgg8", "--input", "1x3x32x32"], "cannot run on input 1x3x32x32"),
    ("compile-input-zero", ["compile", "rnc:vgg8", "--input", "3x0x32"], "positive integer"),
    ("compile-input-negative", ["compile", "rnc:vgg8", "--input", "3x-2x32"], "positive integer"),
    ("compile-input-channels", ["compile", "rnc:vgg8", "--input", "1x32x32"], "cannot run on input"),
    ("compile-set-yaml", ["compile", "rnc:vgg8", "--input", "3x32x32", "--set", "cell_bits=["], "not valid YAML"),
    ("compile-set-no-equals", ["compile", "rnc:vgg8", "--set", "cell_bits"], "KEY=VALUE"),
    ("compile-set-unknown", ["compile", "rnc:vgg8", "--set", "cell_bitz=2"], "did you mean 'cell_bits'"),
    ("compile-set-bad-value", ["compile", "rnc:vgg8", "--set", "cell_bits=0"], "cell_bits"),
    ("compile-set-not-nested", ["compile", "rnc:vgg8", "--set", "cell_bits.x=1"], "not a nested hardware section"),
    ("compile-set-nested-unknown", ["compile", "rnc:vgg8", "--set", "nonideal.sigma=1"], "unknown hardware field"),
    ("compile-crossbars-negative", ["compile", "rnc:vgg8", "--crossbars", "-1"], "--crossbars"),
    ("compile-crossbars-word", ["compile", "rnc:vgg8", "--crossbars", "many"], "--crossbars"),
    ("compile-strategy", ["compile", "rnc:vgg8", "--input", "3x32x32", "--strategy", "magic"], "unknown strategy"),
    ("compile-unknown-option", ["compile", "rnc:vgg8", "--crossbar", "64"], "No such option"),
    ("compile-depthwise-zero", ["compile", "rnc:vgg8", "--depthwise-split", "0"], "--depthwise-split"),
    ("compile-json-in-file", ["compile", "rnc:vgg8", "--input", "3x32x32", "--json", "{d}/a-file/out.json"],
     "is a file, not a folder"),
    ("compile-json-is-dir", ["compile", "rnc:vgg8", "--input", "3x32x32", "--json", "{d}"], "is a folder"),
    ("compile-hardware-unknown", ["compile", "rnc:vgg8", "--hardware", "isacc"], "neither a preset"),
    # -- hardware files --------------------------------------------------------------------------------------
    ("hw-missing", ["compile", "rnc:vgg8", "--hardware", "nowhere.yaml"], "does not exist"),
    ("hw-random-bytes", ["compile", "rnc:vgg8", "--hardware", "{d}/random.yaml"], "random.yaml: not a text file"),
    ("hw-empty", ["compile", "rnc:vgg8", "--hardware", "{d}/empty.yaml"], "the hardware file is empty"),
    ("hw-list", ["compile", "rnc:vgg8", "--hardware", "{d}/list.yaml"], "expected a mapping"),
    ("hw-scalar", ["compile", "rnc:vgg8", "--hardware", "{d}/scalar.yaml"], "expected a mapping"),
    ("hw-not-yaml", ["compile", "rnc:vgg8", "--hardware", "{d}/broken.yaml"], "not valid YAML at line"),
    ("hw-folder", ["compile", "rnc:vgg8", "--hardware", "{d}/folder.yaml"], "does not exist"),
    ("hw-unknown-field", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-unknown-field.yaml"], "crossbar_rowz"),
    ("hw-bad-type", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-bad-type.yaml"], "crossbar_rows"),
    ("hw-zero-rows", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-zero-rows.yaml"], "crossbar_rows"),
    ("hw-component-int", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-component-int.yaml"],
     "components.adc: expected a mapping"),
    ("hw-component-unknown", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-component-unknown.yaml"],
     "did you mean 'adc'"),
    ("hw-component-field", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-component-field.yaml"], "power_mv"),
    ("hw-base-unknown", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-base-unknown.yaml"], "unknown hardware preset"),
    ("hw-dac-gt-input", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-dac-gt-input.yaml"], "dac_bits"),
    ("hw-cell-gt-weight", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-cell-gt-weight.yaml"], "cell_bits"),
    ("hw-layer-names", ["compile", "torchvision:squeezenet1_1", "--hardware", "{d}/hw-layer-names.yaml"],
     "did you mean 'classifier.1'"),
    ("hw-layer-zero", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-layer-zero.yaml"], "must be positive"),
    ("hw-encoding", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-encoding.yaml"], "signed_encoding"),
    ("hw-nonideal-field", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-nonideal-field.yaml"], "conductance_sigm"),
    ("hw-stuck-rates", ["compile", "rnc:vgg8", "--hardware", "{d}/hw-stuck-rates.yaml"], "must be <= 1"),
    # -- experiment configs (launch) -----------------------------------------------------------------------------
    ("exp-missing", ["launch", "nowhere.yaml"], "does not exist"),
    ("exp-random-bytes", ["launch", "{d}/random.yaml"], "random.yaml: not a text file"),
    ("exp-empty", ["launch", "{d}/empty.yaml"], "the experiment file is empty"),
    ("exp-list", ["launch", "{d}/list.yaml"], "expected a mapping"),
    ("exp-not-yaml", ["launch", "{d}/broken.yaml"], "not valid YAML"),
    ("exp-unknown-field", ["launch", "{d}/exp-unknown_field.yaml"], "did you mean 'searchers'"),
    ("exp-missing-space", ["launch", "{d}/exp-missing_space.yaml"], "space: Field required"),
    ("exp-unknown-space", ["launch", "{d}/exp-unknown_space.yaml"], "did you mean 'mbv3'"),
    ("exp-unknown-space-option", ["launch", "{d}/exp-unknown_space_option.yaml"], "did you mean 'resolution'"),
    ("exp-bad-space-option", ["launch", "{d}/exp-bad_space_option.yaml"], "too small"),
    ("exp-unknown-searcher", ["launch", "{d}/exp-unknown_searcher.yaml"], "did you mean 'nsga2'"),
    ("exp-pop-sise", ["launch", "{d}/exp-pop_sise.yaml"], "did you mean 'pop_size'"),
    ("exp-bad-pop-size", ["launch", "{d}/exp-bad_pop_size.yaml"], "pop_size must be an int >= 2"),
    ("exp-bayes-sampler", ["launch", "{d}/exp-bayes_sampler.yaml"], "sampler must be one of"),
    ("exp-duplicate-searchers", ["launch", "{d}/exp-duplicate_searchers.yaml"], "searchers must be distinct"),
    ("exp-one-objective", ["launch", "{d}/exp-one_objective.yaml"], "objectives"),
    ("exp-unknown-objective", ["launch", "{d}/exp-unknown_objective.yaml"], "objectives.0.name"),
    ("exp-duplicate-objectives", ["launch", "{d}/exp-duplicate_objectives.yaml"], "objectives must be distinct"),
    ("exp-bad-goal", ["launch", "{d}/exp-bad_goal.yaml"], "objectives.0.goal"),
    ("exp-negative-budget", ["launch", "{d}/exp-negative_budget.yaml"], "budgets must be >= 0"),
    ("exp-duplicate-budgets", ["launch", "{d}/exp-duplicate_budgets.yaml"], "budgets must be distinct"),
    ("exp-empty-budgets", ["launch", "{d}/exp-empty_budgets.yaml"], "hardware.budgets"),
    ("exp-unknown-preset", ["launch", "{d}/exp-unknown_preset.yaml"], "neither a preset"),
    ("exp-preset-and-file", ["launch", "{d}/exp-preset_and_file.yaml"], "either 'preset' or 'file'"),
    ("exp-set-crossbars", ["launch", "{d}/exp-set_crossbars.yaml"], "hardware.budgets"),
    ("exp-set-unknown-field", ["launch", "{d}/exp-set_unknown_field.yaml"], "did you mean 'cell_bits'"),
    ("exp-set-bad-value", ["launch", "{d}/exp-set_bad_value.yaml"], "cell_bits"),
    ("exp-missing-hardware-file", ["launch", "{d}/exp-missing_hardware_file.yaml"], "does not exist"),
    ("exp-layer-sizes-unknown", ["launch", "{d}/exp-layer_sizes_unknown.yaml"], "unknown layer 'stem.0'"),
    ("exp-bad-name", ["launch", "{d}/exp-bad_name.yaml"], "name: use letters"),
    ("exp-negative-seed", ["launch", "{d}/exp-negative_seed.yaml"], "seed"),
    ("exp-zero-evaluations", ["launch", "{d}/exp-zero_evaluations.yaml"], "search.evaluations"),
    ("exp-zero-batch", ["launch", "{d}/exp-zero_batch.yaml"], "search.batch_size"),
    ("exp-bad-strategy", ["launch", "{d}/exp-bad_strategy.yaml"], "search.strategy"),
    ("exp-min-accuracy", ["launch", "{d}/exp-min_accuracy_above_1.yaml"], "constraints.min_accuracy"),
    ("exp-stage-balance-mbv3", ["launch", "{d}/exp-stage_balance_without_stages.yaml"],
     "supernet.recipe: recipe balance=stages needs a 'num_stages' gene"),
    ("exp-split-never-reached", ["launch", "{d}/exp-split_never_reached.yaml"],
     "supernet.recipe: recipe split_epoch 2 is not before the last epoch (2 epochs"),
    ("exp-latency-cap", ["launch", "{d}/exp-negative_latency_cap.yaml"], "constraints.max_latency_ns"),
    ("exp-object-store", ["launch", "{d}/exp-object_store.yaml"], "not an object-store URI"),
    ("exp-tracking-scheme", ["launch", "{d}/exp-tracking_scheme.yaml"], "unknown tracking URI scheme 'htp'"),
    ("exp-tracking-unreachable", ["launch", "{d}/exp-tracking_unreachable.yaml"], "no MLflow server answers"),
    ("exp-tracking-bad-port", ["launch", "{d}/exp-tracking_bad_port.yaml"], "malformed port"),
    ("exp-cifar-missing", ["launch", "{d}/exp-cifar_missing.yaml"], "cifar10: no data in"),
    ("exp-imagefolder-no-root", ["launch", "{d}/exp-imagefolder_no_root.yaml"], "needs a root folder"),
    ("exp-unknown-dataset", ["launch", "{d}/exp-unknown_dataset.yaml"], "unknown dataset 'mnist'"),
    ("exp-zero-epochs", ["launch", "{d}/exp-zero_epochs.yaml"], "supernet.epochs"),
    ("exp-zero-simulators", ["launch", "{d}/exp-pools_zero_simulators.yaml"], "pools.simulators"),
    ("launch-storage-in-file", ["launch", "{d}/exp-good.yaml", "--storage-path", "{d}/a-file/ray"],
     "is a file, not a folder"),
    ("launch-tracking-override", ["launch", "{d}/exp-good.yaml", "--tracking-uri", "mysql:/x"], "malformed database"),
    ("launch-resume-nothing", ["launch", "{d}/exp-good.yaml", "--resume"], "no launch of 'bad-input'"),
    ("launch-seed-negative", ["launch", "{d}/exp-good.yaml", "--seed", "-3"], "--seed"),
    # -- supernet train / eval ---------------------------------------------------------------------------------
    ("train-unknown-space", ["supernet", "train", "--space", "mbv4", "--epochs", "1", "--out", "ck"],
     "did you mean 'mbv3'"),
    ("train-unknown-dataset", ["supernet", "train", "--dataset", "digit", "--epochs", "1", "--out", "ck"],
     "did you mean 'digits'"),
    ("train-bad-option", ["supernet", "train", "--epochs", "1", "--out", "ck", "--option", "resolution"],
     "KEY=VALUE"),
    ("train-bad-recipe-item", ["supernet", "train", "--epochs", "1", "--out", "ck", "--recipe", "distill"],
     "--recipe 'distill': expected KEY=VALUE"),
    ("train-unknown-option", ["supernet", "train", "--epochs", "1", "--out", "ck", "--option", "resolutin=16"],
     "did you mean 'resolution'"),
    ("train-zero-epochs", ["supernet", "train", "--epochs", "0", "--out", "ck"], "--epochs"),
    ("train-out-in-file", ["supernet", "train", "--epochs", "1", "--out", "{d}/a-file/ck"], "is a file, not a folder"),
    ("train-cifar-missing", ["supernet", "train", "--dataset", "cifar10", "--data-root", "nodir", "--epochs", "1",
                             "--out", "ck"], "cifar10: no data in"),
    ("train-imagefolder-no-root", ["supernet", "train", "--dataset", "imagefolder", "--epochs", "1", "--out", "ck"],
     "needs a root folder"),
    ("eval-missing", ["supernet", "eval", "--checkpoint", "nowhere"], "does not exist"),
    ("eval-empty-dir", ["supernet", "eval", "--checkpoint", "{d}/ckpt-dir-empty"], "manifest.json is missing"),
    ("eval-empty-weights", ["supernet", "eval", "--checkpoint", "{d}/ckpt-empty-weights"], "is empty (0 bytes)"),
    ("eval-truncated", ["supernet", "eval", "--checkpoint", "{d}/ckpt-truncated"], "supernet.pt: cannot read"),
    ("eval-bad-json", ["supernet", "eval", "--checkpoint", "{d}/ckpt-bad-json"], "not valid JSON"),
    ("eval-random-manifest", ["supernet", "eval", "--checkpoint", "{d}/ckpt-random-manifest"], "not valid JSON"),
    ("eval-no-weights", ["supernet", "eval", "--checkpoint", "{d}/ckpt-no-weights"], "supernet.pt is missing"),
    ("eval-format", ["supernet", "eval", "--checkpoint", "{d}/ckpt-format"], "format 99"),
    ("eval-no-space", ["supernet", "eval", "--checkpoint", "{d}/ckpt-no-space"], "missing key 'space'"),
    ("eval-genome-float", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--genome", "[0.5, 0, 0]"],
     "integer choice indices"),
    ("eval-genome-bool", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--genome", "[true, 0, 0]"],
     "integer choice indices"),
    ("eval-genome-short", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--genome", "[0, 0]"], "genes"),
    ("eval-genome-word", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--genome", "biggest"],
     "expected largest"),
    ("eval-genome-scalar", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--genome", "3"],
     "a JSON list or object"),
    ("eval-genome-unknown-gene", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--genome", '{"kernal": 3}'],
     "unknown gene 'kernal'"),
    ("eval-hardware", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--hardware", "isacc"],
     "neither a preset"),
    ("eval-device", ["supernet", "eval", "--checkpoint", "{d}/ckpt-good", "--device", "tpu"], "--device"),
    # -- spaces / report ---------------------------------------------------------------------------------------
    ("spaces-unknown", ["spaces", "--space", "mbv33"], "did you mean 'mbv3'"),
    ("report-scheme", ["report", "--tracking-uri", "htp:/x::1"], "unknown tracking URI scheme 'htp'"),
    ("report-unreachable", ["report", "--tracking-uri", "http://127.0.0.1:9"], "no MLflow server answers"),
    ("report-no-store", ["report", "--tracking-uri", "sqlite:///nowhere/mlflow.db"], "no tracking store"),
    ("report-not-sqlite", ["report", "--tracking-uri", "sqlite:///{d}/not-sqlite.db"], "is not an SQLite database"),
    ("report-sqlite-folder", ["report", "--tracking-uri", "sqlite:///{d}"], "must name a file"),
    ("report-quote-in-name", ["report", "it's", "--tracking-uri", "sqlite:///{d}/mlflow.db"],
     "no launch matching \"it's\""),
    ("report-no-launch", ["report", "--tracking-uri", "sqlite:///{d}/mlflow.db"], "holds no launch"),
    ("report-out-in-file", ["report", "--tracking-uri", "sqlite:///{d}/mlflow.db", "--out", "{d}/a-file/plots"],
     "is a file, not a folder"),
    ("report-max-rows", ["report", "--max-rows", "0"], "--max-rows"),
    ("unknown-command", ["compiel"], "No such command"),
]


def _snapshot(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


@pytest.fixture
def guard_launch(monkeypatch):
    import rnc.platform.launch as launch

    def _refuse(*args, **kwargs):
        raise AssertionError(NO_LAUNCH + ": preflight passed a bad config")

    monkeypatch.setattr(launch, "_run_launch", _refuse)


def test_table_is_large_enough():
    assert len(CASES) >= 80
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("case_id", "args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, args, expected, inputs, tmp_path, monkeypatch, guard_launch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = [a.replace("{d}", str(inputs)) for a in args]
    before = _snapshot(work, inputs)
    started = time.monotonic()
    result = runner.invoke(app, argv)
    elapsed = time.monotonic() - started
    stderr = result.stderr
    assert result.exit_code == 2, (case_id, result.exit_code, stderr, result.stdout, result.exception)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"{case_id}: expected one line on stderr, got {stderr!r}"
    assert lines[0].startswith("error: "), lines[0]
    assert expected in lines[0], f"{case_id}: {expected!r} not in {lines[0]!r}"
    assert "Traceback" not in stderr + result.stdout
    assert _snapshot(work, inputs) == before, f"{case_id}: files were written"
    assert elapsed < 60, f"{case_id}: took {elapsed:.0f} s"


def test_error_line_is_not_wrapped_whatever_the_path_length(tmp_path, monkeypatch):
    """The flaky-CI example: the phrase must be found whatever the length of the temporary path."""
    monkeypatch.setenv("COLUMNS", "40")
    for depth in range(4):
        folder = tmp_path.joinpath(*["x" * (7 + depth)] * (depth + 1))
        folder.mkdir(parents=True)
        bad = folder / "bad.yaml"
        bad.write_text("crossbar_rows: [1, 2\n")
        result = runner.invoke(app, ["compile", "rnc:vgg8", "--input", "3x32x32", "--hardware", str(bad)])
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and "not valid YAML" in result.stderr


def test_debug_shows_the_traceback():
    result = runner.invoke(app, ["--debug", "compile", "rnc:vgg8", "--input", "3x64"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("error: model")


def test_unreachable_tracking_fails_in_seconds(tmp_path, monkeypatch, guard_launch):
    """A server that accepts the connection but never answers (MLflow's client would retry for minutes) fails
    within the reachability timeout."""
    monkeypatch.chdir(tmp_path)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # never accepted: the TCP handshake completes in the backlog, no byte ever comes back
    port = silent.getsockname()[1]
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(_experiment(tracking_uri=f"http://127.0.0.1:{port}")))
    started = time.monotonic()
    try:
        result = runner.invoke(app, ["launch", str(exp)])
    finally:
        silent.close()
    assert result.exit_code == 2 and "no MLflow server answers" in result.stderr, result.stderr
    assert time.monotonic() - started < 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_out_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = runner.invoke(app, ["compile", "rnc:vgg8", "--input", "3x32x32", "--json", str(ro / "x.json")])
        assert result.exit_code == 2 and "cannot write in" in result.stderr
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)

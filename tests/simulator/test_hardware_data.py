"""Hardware as data: energy charged through the events each action names, validation that names the field,
the digital unit, presets as package YAML files, and the worked example of docs/simulator.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch.nn as nn
import yaml

from rnc.simulator import HardwareConfig, HardwareConfigError, compile_workload, rollup, trace_workload
from rnc.simulator.hardware import COMPILER_EVENTS, PRESET_DIR

DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


@pytest.fixture(scope="module")
def linear():
    """One Linear(128, 16): 1 position, 16 outputs x 8 slices = 128 columns, 16 bit-serial reads."""
    return trace_workload(nn.Sequential(nn.Linear(128, 16)), (128,))


def _isaac_dict() -> dict:
    return HardwareConfig.preset("isaac").model_dump()


def test_energy_of_one_linear_layer_by_hand(linear):
    """By hand from ISAAC Table 6 (energy = power x action time): 16 reads of a 128x128 box.

    crossbar: 16 x 128 x 128 active cell-reads x 30 pJ / 16384 cells = 480 pJ; DAC: 16 x 128 drives x
    0.390625 pJ = 800 pJ; ADC + sample-and-hold: 16 x 128 conversions x (1.5625 + 0.0009765625) pJ = 3202 pJ;
    shift-and-add (IMA + tile): 2048 x 0.1 pJ = 204.8 pJ; buffer: ceil((128 + 16) x 16 bits / 256) = 9 words
    x (20.7 + 7 + 1.24 + 0.23 + 1.68) pJ = 277.65 pJ."""
    r = compile_workload(linear, HardwareConfig.preset("isaac"), "isaac")
    e = r.energy_by_component_pj
    assert e["crossbar"] == pytest.approx(480.0)
    assert e["dac"] == pytest.approx(800.0)
    assert e["adc"] == pytest.approx(3202.0)
    assert e["shift_add"] == pytest.approx(204.8)
    assert e["buffer"] == pytest.approx(277.65)
    assert e["digital"] == 0.0 and e["leakage"] == 0.0
    assert r.energy_pj == pytest.approx(4964.45)


def test_energy_follows_the_table_not_component_names(linear):
    """Renaming every component changes nothing; a new component charged on an event adds exactly its share."""
    comps = {(name if name == "digital_unit" else f"part_{i}"): c
             for i, (name, c) in enumerate(_isaac_dict()["components"].items())}
    renamed = HardwareConfig.preset("isaac").with_updates(components=comps)
    with pytest.raises(HardwareConfigError, match=r"components\.digital_unit: missing"):
        HardwareConfig.preset("isaac").with_updates(
            components={("unit" if k == "digital_unit" else k): v for k, v in comps.items()})
    base = compile_workload(linear, HardwareConfig.preset("isaac"), "isaac")
    assert compile_workload(linear, renamed, "isaac").energy_by_component_pj == base.energy_by_component_pj
    extra = dict(comps)
    extra["comparator"] = {"level": "ima", "count": 8, "power_mw": 1.0, "area_mm2": 0.001, "category": "adc",
                           "actions": {"compare": {"energy_pj": 1.0, "event": "column_convert"}}}
    more = compile_workload(linear, renamed.with_updates(components=extra), "isaac")
    assert more.energy_by_component_pj["adc"] == pytest.approx(base.energy_by_component_pj["adc"] + 2048 * 1.0)
    new_category = dict(extra)
    new_category["comparator"] = {**extra["comparator"], "category": "comparators"}
    split = compile_workload(linear, renamed.with_updates(components=new_category), "isaac")
    assert split.energy_by_component_pj["comparators"] == pytest.approx(2048.0)
    assert split.energy_by_component_pj["adc"] == pytest.approx(base.energy_by_component_pj["adc"])


def test_adc_energy_scales_with_resolution_by_data(linear):
    base = compile_workload(linear, HardwareConfig.preset("isaac"), "isaac").energy_by_component_pj["adc"]
    ten = compile_workload(linear, HardwareConfig.preset("isaac").with_updates(adc_bits=10), "isaac")
    # only the ADC action carries adc_reference_bits; sample-and-hold (2048 x 0.0009765625 pJ) does not scale
    hold = 2048 * 0.0009765625
    assert ten.energy_by_component_pj["adc"] == pytest.approx((base - hold) * 4 + hold)


def test_leakage_is_data(linear):
    comps = _isaac_dict()["components"]
    comps["dac"]["leakage_mw"] = 0.001  # 1024 DACs per IMA -> 1.024 mW per occupied IMA
    hw = HardwareConfig.preset("isaac").with_updates(components=comps)
    r = compile_workload(linear, hw, "isaac")
    assert r.energy_by_component_pj["leakage"] == pytest.approx(1.024 * r.latency_ns)  # one IMA, 1600 ns


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c["adc"]["actions"]["convert"].update(event="colum_convert"),
         "components.adc.actions.convert.event: unknown compiler event 'colum_convert'"),
        (lambda c: c.pop("dac"), "no action is charged on compiler event(s) row_drive"),
        (lambda c: c["router"].pop("actions"), "components.router.actions"),
        (lambda c: c["adc"].pop("category"), "components.adc: a component with actions must name"),
        (lambda c: c["digital_unit"].pop("ops_per_ns"), "components.digital_unit.ops_per_ns"),
        (lambda c: c["digital_unit"]["actions"].pop("op"), "no action is charged on compiler event(s) digital_op"),
        (lambda c: c["adc"].update(powr_mw=2.0), "components.adc.powr_mw"),
    ],
)
def test_invalid_tables_name_the_field(tmp_path, mutate, field):
    data = _isaac_dict()
    mutate(data["components"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(HardwareConfigError) as info:
        HardwareConfig.from_yaml(path)
    assert field in str(info.value)
    assert "\n" not in str(info.value)


def test_every_preset_is_package_yaml_with_a_digital_unit():
    names = HardwareConfig.presets()
    assert {"isaac", "rnc"} <= set(names)
    for name in names:
        text = (PRESET_DIR / f"{name}.yaml").read_text()
        assert text.startswith("#"), f"{name}.yaml must start with its source in a comment"
        hw = HardwareConfig.preset(name)
        unit = hw.digital_unit
        assert unit.energy_pj_per_op > 0 and unit.ops_per_ns > 0 and unit.area_mm2 > 0
        charged = {a.event for c in hw.components.values() for a in c.actions.values()}
        assert charged == set(COMPILER_EVENTS)
    isaac = HardwareConfig.preset("isaac").digital_unit
    assert (isaac.energy_pj_per_op, isaac.instances, isaac.level) == (0.26, 2, "tile")  # ISAAC Table 6 sigmoid


def test_isaac_computational_efficiency_matches_the_paper():
    """ISAAC (ISCA 2016) Sec. VIII-B: CE 479 GOPS/s/mm2 for the whole chip (ISAAC-CE, 16-bit)."""
    r = rollup(HardwareConfig.preset("isaac"))
    assert r.peak_gops_per_mm2 == pytest.approx(479.0, rel=0.02)
    assert [lv.units_per_chip for lv in r.levels] == [168 * 12, 168, 1]
    assert r.levels[1].power_mw == pytest.approx(r.tile_power_mw)
    assert r.levels[2].area_mm2 == pytest.approx(r.chip_with_links_area_mm2)


def _worked_example() -> str:
    text = DOCS.read_text()
    match = re.search(r"<!-- worked-example -->\s*```yaml\n(.*?)```", text, re.S)
    assert match, "docs/simulator.md lost its worked example"
    return match.group(1)


def test_docs_worked_example_is_one_yaml_file_and_compiles(tmp_path):
    path = tmp_path / "my_chip.yaml"
    path.write_text(_worked_example())
    hw = HardwareConfig.from_yaml(path)
    assert (hw.crossbar_rows, hw.crossbars_per_ima, hw.adcs_per_crossbar) == (256, 4, 2)
    r = rollup(hw)
    # by hand from the example's table: IMA = 4 x 1.2 + 8 x 2 + 1024 x 0.00390625 + 4 x 0.05 = 25 mW
    assert r.ima_power_mw == pytest.approx(25.0)
    # tile = 12 IMAs + eDRAM 20.7 + router 0.25 x 42 + 2 x 0.26 = 331.72 mW
    assert r.tile_power_mw == pytest.approx(331.72)
    # peak: 256 rows x floor(256 / 8) weights per crossbar, 16 reads of max(100, 128 / 1.28) = 100 ns
    assert r.peak_tops == pytest.approx(2 * 168 * 12 * 4 * 256 * 32 / 1600 / 1e3)
    net = trace_workload(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)),
                         (3, 8, 8))
    result = compile_workload(net, hw, "rnc")
    assert result.feasible and result.energy_pj > 0
    assert set(result.energy_by_component_pj) == {"crossbar", "adc", "dac", "shift_add", "buffer", "digital",
                                                  "leakage"}

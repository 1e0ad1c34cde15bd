"""Published architectures as presets: each roll-up against the figures its paper publishes.

PUMA (Ankit et al., ASPLOS 2019): the component table is the authors' simulator's (see the header of
``rnc/simulator/presets/puma.yaml``); the node figures it is checked against are the paper's: node power 62.5 W
and area 90.6 mm2 (Table 3, "Node" row, HyperTransport included), 52.31 TOPS peak, 577 GOPS/s/mm2 and
837 GOPS/s/W (abstract).
"""

from __future__ import annotations

import pytest
import torchvision

from rnc.simulator import HardwareConfig, compile_workload, rollup, trace_workload

PUMA_PAPER = {"node_power_w": 62.5, "node_area_mm2": 90.6, "peak_tops": 52.31, "gops_per_mm2": 577.0,
              "gops_per_w": 837.0}


@pytest.fixture(scope="module")
def puma():
    return rollup(HardwareConfig.preset("puma"))


def test_puma_node_power_and_area_match_table_3(puma):
    """Node = 138 tiles of 8 cores + routers + HyperTransport: within 10% of Table 3's 62.5 W / 90.6 mm2."""
    assert puma.chip_with_links_power_w == pytest.approx(PUMA_PAPER["node_power_w"], rel=0.10)
    assert puma.chip_with_links_area_mm2 == pytest.approx(PUMA_PAPER["node_area_mm2"], rel=0.10)
    assert [lv.name for lv in puma.levels] == ["core", "tile", "node"]
    assert [lv.units_per_chip for lv in puma.levels] == [138 * 8, 138, 1]


def test_puma_core_by_hand_from_the_simulator_constants(puma):
    """By hand from include/constants.py (mW, dynamic + leakage; mm2), the core of puma_ce_sweep.py.

    power: 2 MVMUs x 2.74 (lumped crossbars) + 16 ADCs x 2 + 256 DACs x 0.003896875 + 2048 S&H x 9.7e-6
    + 16 S&A x 0.05 + 4 x 0.2 (MVMU in/out memories) + 0.477 (register file) + 1.52169 (instruction memory)
    + 1.89867 (VFU) + 0.26 (sigmoid) + 0.25 (control) = 44.505 mW.
    area: 16 x 2.5e-5 + 16 x 0.0012 + 256 x 1.67e-7 + 2048 x 3.90625e-8 + 16 x 6e-5 + 4 x 0.00078 + 0.00192
    + 0.0030547 + 0.004032 + 0.0003 + 0.0032625 = 0.036372 mm2."""
    assert puma.ima_power_mw == pytest.approx(44.505, abs=1e-3)
    assert puma.ima_area_mm2 == pytest.approx(0.036372, abs=1e-6)


def test_puma_peak_throughput_by_hand(puma):
    """Crossbar MACs only: 138 x 8 x 16 crossbars x 128 rows x 16 weights (8 slices of 2 bits) x 2 ops per
    16 one-bit steps of max(100 ns read, 128 columns / 1 conversion per ns) = 128 ns: 35.33 TOPS."""
    assert puma.peak_tops == pytest.approx(138 * 8 * 16 * 128 * 16 * 2 / (16 * 128) / 1e3)


def test_puma_peak_with_100_ns_steps_by_hand(puma):
    """The PUMA simulator's other timing (include/constants.py: adc_lat_dict['8'] = 100 ns, xbar_ip_lat = 100 ns)
    instead of 128 conversions at 1 per ns: 16 steps of 100 ns, 138 x 8 x 16 x 128 x 16 x 2 / 1,600 ns =
    45.22 TOPS, still 13.5% under the paper's 52.31 (see the xfail below)."""
    faster = rollup(HardwareConfig.preset("puma").with_updates(adc_sample_rate_gsps=1.28))
    assert faster.peak_tops == pytest.approx(138 * 8 * 16 * 128 * 16 * 2 / 1600 / 1e3)
    assert faster.chip_with_links_power_w == pytest.approx(puma.chip_with_links_power_w)
    assert abs(faster.peak_tops / PUMA_PAPER["peak_tops"] - 1) > 0.10


@pytest.mark.xfail(strict=True, reason=(
    "known gap, not tuned: 2 ops per crossbar MAC over 16 steps of max(100 ns read, 128 columns at 1 "
    "conversion/ns) = 2,048 ns gives 35.3 TOPS; GOPS/s/mm2 383 vs 577 and GOPS/s/W 555 vs 837 (34% low) while "
    "node power and area match within 2%. No timing in the PUMA sources reaches the abstract: 100 ns steps "
    "45.2 TOPS (-15%), the simulator's (16 + 2) x 100 ns MVM 40.2 TOPS (-23%), its wiki's 2,304-cycle MVM "
    "31.4 TOPS (-40%); a third-party table (Nat. "
    "Commun. 2024, doi:10.1038/s41467-024-45670-9, Table 3) lists PUMA at 26.2 TOPS, 0.29 TOPS/mm2, "
    "0.42 TOPS/W, half the abstract's figures. The paper's op count is not recoverable from its text."))
def test_puma_peak_efficiency_matches_the_abstract(puma):
    assert puma.peak_tops == pytest.approx(PUMA_PAPER["peak_tops"], rel=0.10)
    assert puma.peak_gops_per_mm2 == pytest.approx(PUMA_PAPER["gops_per_mm2"], rel=0.10)
    assert puma.peak_gops_per_w == pytest.approx(PUMA_PAPER["gops_per_w"], rel=0.10)


def test_puma_charges_every_event_and_leakage():
    hw = HardwareConfig.preset("puma")
    assert hw.digital_unit.ops_per_ns == 1.0 and hw.digital_unit.level == "ima"
    assert sum(c.leakage_mw * c.count for c in hw.components.values() if c.level == "ima") > 0


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["puma"])
def test_mobilenet_v3_small_compiles_feasibly(preset):
    """torchvision mobilenet_v3_small (10 classes) at 3x64x64: fits the whole chip, and a budget of twice its
    minimum crossbar count is feasible with the rnc strategy."""
    hw = HardwareConfig.preset(preset)
    net = trace_workload(torchvision.models.mobilenet_v3_small(num_classes=10), (3, 64, 64))
    first = compile_workload(net, hw, "rnc")
    assert first.feasible
    chip = rollup(hw).chip_crossbars
    assert first.min_crossbars <= chip
    budget = 2 * first.min_crossbars
    r = compile_workload(net, hw, "rnc", crossbars=budget)
    assert r.feasible and r.crossbars_used <= budget
    assert r.latency_ns > 0 and r.energy_pj > 0
    assert r.energy_by_component_pj["leakage"] > 0
    isaac = compile_workload(net, hw, "isaac")
    assert isaac.feasible

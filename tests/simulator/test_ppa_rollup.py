"""The ISAAC component-table roll-up (ISCA 2016, Table 6) and the read-cycle convention."""

import pytest

from rnc.simulator import HardwareConfig, rollup
from rnc.simulator.ppa import read_cycle_ns


def test_isaac_rollup_matches_the_paper():
    r = rollup(HardwareConfig.preset("isaac"))
    assert r.ima_power_mw == pytest.approx(24.1, rel=0.01)
    assert r.ima_area_mm2 == pytest.approx(0.0131, rel=0.01)
    assert r.imas_power_mw == pytest.approx(289, rel=0.01)
    assert r.imas_area_mm2 == pytest.approx(0.157, rel=0.01)
    assert r.tile_power_mw == pytest.approx(330, rel=0.01)
    assert r.tile_area_mm2 == pytest.approx(0.372, rel=0.01)
    assert r.chip_power_w == pytest.approx(55.4, rel=0.01)
    assert r.chip_area_mm2 == pytest.approx(62.5, rel=0.01)
    assert r.chip_with_links_power_w == pytest.approx(65.8, rel=0.01)
    assert r.chip_with_links_area_mm2 == pytest.approx(85.4, rel=0.01)
    assert r.chip_crossbars == 168 * 12 * 8
    assert r.peak_tops == pytest.approx(41.3, rel=0.03)


def test_rollup_follows_the_hierarchy_counts():
    hw = HardwareConfig.preset("isaac")
    half = rollup(hw.with_updates(tiles_per_chip=84))
    full = rollup(hw)
    assert half.chip_power_w == pytest.approx(full.chip_power_w / 2)
    assert half.peak_tops == pytest.approx(full.peak_tops / 2)
    # 1-bit cells: twice the slices, half the weights per crossbar, half the peak
    assert rollup(hw.with_updates(cell_bits=1)).peak_tops == pytest.approx(full.peak_tops / 2)


def test_read_cycle_is_adc_bound_beyond_128_columns():
    hw = HardwareConfig.preset("isaac")
    assert read_cycle_ns(hw, 128) == pytest.approx(100.0)
    assert read_cycle_ns(hw, 16) == pytest.approx(100.0)
    assert read_cycle_ns(hw, 256) == pytest.approx(200.0)
    assert read_cycle_ns(hw.with_updates(adcs_per_crossbar=2), 256) == pytest.approx(100.0)

"""Power, performance and area conventions: the component-table roll-up and the per-action energies.

Conventions (sources in ``docs/simulator.md``):

- **Roll-up** (Accelergy/CiMLoop style, numbers from ISAAC, ISCA 2016, Table 6): every component of the
  table has a ``count`` inside its container (``ima`` / ``tile`` / ``chip``); an IMA's power and area are the
  sum of ``count x power_mw`` and ``count x area_mm2`` of its components, a tile is ``imas_per_tile`` IMAs
  plus its own components, a chip ``tiles_per_chip`` tiles plus its chip-level components (ISAAC's
  HyperTransport links). :func:`rollup` returns every level, with and without the chip-level components.
- **Read cycle**: one crossbar read (one input bit-slice applied to all rows) lasts
  ``max(read_ns, ceil(active_columns / adcs_per_crossbar) / adc_sample_rate_gsps)`` ns -- ISAAC's 100 ns read
  is exactly the time one 1.28 GS/s ADC needs for 128 columns; wider crossbars or fewer ADCs are ADC-bound.
- **Energy per action** = ``power_mw x action_ns`` pJ. A crossbar read costs the crossbar's action energy
  scaled by the fraction of its cells that are active; each active row one DAC drive; each converted column
  one ADC conversion (plus its sample-and-hold) and one shift-and-add. ADC energy scales as
  ``2 ** (adc_bits - 8)`` from the table's 8-bit ADC (energy per conversion doubles per bit, the trend ISAAC
  and the Murmann ADC survey use for SAR ADCs at this resolution).
- **Buffers**: every activation word of 256 bits (ISAAC's eDRAM-to-IMA bus width) is read once from the
  tile's eDRAM over the bus into the IMA input register, and every output word is written back through the
  IMA output register and the tile output register; each such word costs one action of each of those
  components.
- **Leakage**: ``leakage_mw`` of every component instance in the occupied IMAs and tiles, during the
  single-image latency. ISAAC's table gives total power only, so its preset has no separate leakage.
- **Peak throughput** (ISAAC's definition of CE): every crossbar of the chip computes
  ``rows x floor(cols / slices_per_weight)`` MACs per ``reads_per_input`` read cycles; 1 MAC = 2 ops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rnc.simulator.hardware import Component, HardwareConfig

ADC_REFERENCE_BITS = 8
BUS_WORD_BITS = 256

# Which components make up each energy category.
ENERGY_GROUPS: dict[str, tuple[str, ...]] = {
    "adc": ("adc", "sample_hold"),
    "dac": ("dac",),
    "crossbar": ("crossbar",),
    "buffer": ("edram_buffer", "bus", "input_register", "output_register", "tile_output_register"),
    "shift_add": ("ima_shift_add", "tile_shift_add"),
}
ENERGY_CATEGORIES = ("adc", "dac", "crossbar", "buffer", "shift_add", "leakage")


@dataclass(frozen=True)
class Rollup:
    """Power and area of one IMA, the IMAs of a tile, one tile and one chip, plus the chip's peak throughput."""

    ima_power_mw: float
    ima_area_mm2: float
    imas_power_mw: float
    imas_area_mm2: float
    tile_power_mw: float
    tile_area_mm2: float
    chip_power_w: float
    chip_area_mm2: float
    chip_with_links_power_w: float
    chip_with_links_area_mm2: float
    chip_crossbars: int
    peak_tops: float
    peak_tops_per_w: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def components_of(hw: HardwareConfig) -> dict[str, Component]:
    """The hardware's component table; an empty table falls back to ISAAC's (32 nm)."""
    if hw.components:
        return hw.components
    return HardwareConfig.preset("isaac").components


def _level_sums(comps: dict[str, Component], level: str, attr: str) -> float:
    return sum(c.count * getattr(c, attr) for c in comps.values() if c.level == level)


def read_cycle_ns(hw: HardwareConfig, active_columns: int) -> float:
    """Duration of one crossbar read converting ``active_columns`` columns (see module conventions)."""
    adc_ns = math.ceil(active_columns / hw.adcs_per_crossbar) / hw.adc_sample_rate_gsps
    return max(hw.read_ns, adc_ns)


def rollup(hw: HardwareConfig) -> Rollup:
    """Roll the component table up the IMA / tile / chip hierarchy (ISAAC, ISCA 2016, Table 6)."""
    comps = components_of(hw)
    ima_p = _level_sums(comps, "ima", "power_mw")
    ima_a = _level_sums(comps, "ima", "area_mm2")
    imas_p, imas_a = ima_p * hw.imas_per_tile, ima_a * hw.imas_per_tile
    tile_p = imas_p + _level_sums(comps, "tile", "power_mw")
    tile_a = imas_a + _level_sums(comps, "tile", "area_mm2")
    chip_p_mw, chip_a = tile_p * hw.tiles_per_chip, tile_a * hw.tiles_per_chip
    links_p_mw, links_a = _level_sums(comps, "chip", "power_mw"), _level_sums(comps, "chip", "area_mm2")
    chip_crossbars = hw.crossbars_per_ima * hw.imas_per_tile * hw.tiles_per_chip
    weights_per_crossbar = hw.crossbar_rows * (hw.crossbar_cols // hw.slices_per_weight)
    mvm_ns = hw.reads_per_input * read_cycle_ns(hw, hw.crossbar_cols)
    peak_tops = 2.0 * chip_crossbars * weights_per_crossbar / mvm_ns / 1e3
    total_w = (chip_p_mw + links_p_mw) / 1e3
    return Rollup(
        ima_power_mw=ima_p, ima_area_mm2=ima_a, imas_power_mw=imas_p, imas_area_mm2=imas_a,
        tile_power_mw=tile_p, tile_area_mm2=tile_a, chip_power_w=chip_p_mw / 1e3, chip_area_mm2=chip_a,
        chip_with_links_power_w=total_w, chip_with_links_area_mm2=chip_a + links_a,
        chip_crossbars=chip_crossbars, peak_tops=peak_tops,
        peak_tops_per_w=peak_tops / total_w if total_w > 0 else 0.0,
    )


def _energy(comps: dict[str, Component], name: str) -> float:
    comp = comps.get(name)
    return comp.energy_pj if comp is not None else 0.0


def ppa_parameters(hw: HardwareConfig) -> np.ndarray:
    """The scalar PPA parameters the Numba kernels read, as one float64 array (see ``PARAM_*`` indices)."""
    comps = components_of(hw)
    crossbar = comps.get("crossbar")
    cells = hw.crossbar_rows * hw.crossbar_cols
    e_cell = crossbar.energy_pj / cells if crossbar is not None else 0.0
    e_adc = (_energy(comps, "adc") * 2.0 ** (hw.adc_bits - ADC_REFERENCE_BITS)) + _energy(comps, "sample_hold")
    e_word = sum(_energy(comps, name) for name in ENERGY_GROUPS["buffer"])
    e_sa = sum(_energy(comps, name) for name in ENERGY_GROUPS["shift_add"])
    leak_ima = sum(c.count * c.leakage_mw for c in comps.values() if c.level == "ima")
    leak_tile = sum(c.count * c.leakage_mw for c in comps.values() if c.level == "tile")
    area_ima = _level_sums(comps, "ima", "area_mm2")
    area_tile = _level_sums(comps, "tile", "area_mm2")
    area_xbar_cell = crossbar.area_mm2 / cells if crossbar is not None else 0.0
    out = np.zeros(N_PARAMS, np.float64)
    out[PARAM_READ_NS] = hw.read_ns
    out[PARAM_ADCS] = hw.adcs_per_crossbar
    out[PARAM_ADC_GSPS] = hw.adc_sample_rate_gsps
    out[PARAM_READS_PER_INPUT] = hw.reads_per_input
    out[PARAM_INPUT_BITS] = hw.input_bits
    out[PARAM_E_CELL] = e_cell
    out[PARAM_E_DAC] = _energy(comps, "dac")
    out[PARAM_E_ADC] = e_adc
    out[PARAM_E_SHIFT_ADD] = e_sa
    out[PARAM_E_WORD] = e_word
    out[PARAM_WORD_BITS] = BUS_WORD_BITS
    out[PARAM_LEAK_IMA_MW] = leak_ima
    out[PARAM_LEAK_TILE_MW] = leak_tile
    out[PARAM_AREA_IMA] = area_ima
    out[PARAM_AREA_TILE] = area_tile
    out[PARAM_AREA_XBAR_CELL] = area_xbar_cell
    out[PARAM_XBARS_PER_IMA] = hw.crossbars_per_ima
    out[PARAM_IMAS_PER_TILE] = hw.imas_per_tile
    out[PARAM_REF_CELLS] = cells
    return out


(
    PARAM_READ_NS, PARAM_ADCS, PARAM_ADC_GSPS, PARAM_READS_PER_INPUT, PARAM_INPUT_BITS, PARAM_E_CELL,
    PARAM_E_DAC, PARAM_E_ADC, PARAM_E_SHIFT_ADD, PARAM_E_WORD, PARAM_WORD_BITS, PARAM_LEAK_IMA_MW,
    PARAM_LEAK_TILE_MW, PARAM_AREA_IMA, PARAM_AREA_TILE, PARAM_AREA_XBAR_CELL, PARAM_XBARS_PER_IMA,
    PARAM_IMAS_PER_TILE, PARAM_REF_CELLS,
) = range(19)
N_PARAMS = 19

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
- **Energy** is charged by data: every action of every component names the compiler event it is charged on
  (:data:`rnc.simulator.hardware.COMPILER_EVENTS`) and the component names its energy category. The kernel
  counts events (active cell-reads, row drives, column conversions, 256-bit words, digital operations);
  the energy of a category is ``sum over its actions of count(event) x energy_pj``. An ``array_read`` action
  is the energy of reading a whole array of the table's size, charged per active cell
  (``energy_pj / (rows x cols)`` per cell-read, ISAAC's scaling by the fraction of active cells). An action
  with ``adc_reference_bits`` scales as ``2 ** (adc_bits - adc_reference_bits)``. Nothing is charged by
  component name; an event with no action or an unknown event is rejected when the table is validated.
- **Buffers**: every activation word of 256 bits (ISAAC's eDRAM-to-IMA bus width) moved between the tile
  buffer and an IMA is one ``word_transfer`` event (inputs as im2col vectors, outputs written back).
- **Leakage**: ``leakage_mw`` of every component instance in the occupied IMAs and tiles, during the
  single-image latency (category ``leakage``). ISAAC's table gives total power only, so its preset has none.
- **Peak throughput** (ISAAC's definition of CE): every crossbar of the chip computes
  ``rows x floor(cols / slices_per_weight)`` MACs per ``reads_per_input`` read cycles; 1 MAC = 2 ops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rnc.simulator.hardware import (
    COMPILER_EVENTS,
    LEAKAGE_CATEGORY,
    Component,
    HardwareConfig,
    isaac_components,
)

BUS_WORD_BITS = 256
EVENTS = tuple(COMPILER_EVENTS)  # kernel order of the event counts


@dataclass(frozen=True)
class LevelRollup:
    """One level of the hierarchy: its name in the source, units per chip, and per-unit power and area.

    ``own_*`` are the level's own components (per unit); ``power_mw``/``area_mm2`` include everything below.
    """

    level: str
    name: str
    units_per_chip: int
    own_power_mw: float
    own_area_mm2: float
    power_mw: float
    area_mm2: float


@dataclass(frozen=True)
class Rollup:
    """Power and area of one IMA, the IMAs of a tile, one tile and one chip, plus the chip's peak throughput.

    ``peak_gops_per_mm2`` / ``peak_gops_per_w``: ISAAC's computational and power efficiency (CE, PE: peak
    GOPS/s per mm2 and per W of the whole chip, chip-level components included).
    """

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
    peak_gops_per_mm2: float
    peak_gops_per_w: float
    levels: tuple[LevelRollup, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def components_of(hw: HardwareConfig) -> dict[str, Component]:
    """The hardware's component table; an empty table falls back to ISAAC's (32 nm)."""
    if hw.components:
        return hw.components
    return isaac_components()


def _level_sums(comps: dict[str, Component], level: str, attr: str) -> float:
    return sum(c.count * getattr(c, attr) for c in comps.values() if c.level == level)


def read_cycle_ns(hw: HardwareConfig, active_columns: int) -> float:
    """Duration of one crossbar read converting ``active_columns`` columns (see module conventions)."""
    adc_ns = math.ceil(active_columns / hw.adcs_per_crossbar) / hw.adc_sample_rate_gsps
    return max(hw.read_ns, adc_ns)


def rollup(hw: HardwareConfig) -> Rollup:
    """Roll the component table up the IMA / tile / chip hierarchy (ISAAC, ISCA 2016, Table 6).

    Generic over the table: each level sums ``count x power_mw`` and ``count x area_mm2`` of whatever
    components it holds; the counts of the hierarchy come from the hardware fields.
    """
    comps = components_of(hw)
    own = {lvl: (_level_sums(comps, lvl, "power_mw"), _level_sums(comps, lvl, "area_mm2"))
           for lvl in ("ima", "tile", "chip")}
    ima_p, ima_a = own["ima"]
    imas_p, imas_a = ima_p * hw.imas_per_tile, ima_a * hw.imas_per_tile
    tile_p, tile_a = imas_p + own["tile"][0], imas_a + own["tile"][1]
    chip_p_mw, chip_a = tile_p * hw.tiles_per_chip, tile_a * hw.tiles_per_chip
    links_p_mw, links_a = own["chip"]
    chip_crossbars = hw.crossbars_per_ima * hw.imas_per_tile * hw.tiles_per_chip
    weights_per_crossbar = hw.crossbar_rows * (hw.crossbar_cols // hw.slices_per_weight)
    mvm_ns = hw.reads_per_input * read_cycle_ns(hw, hw.crossbar_cols)
    peak_tops = 2.0 * chip_crossbars * weights_per_crossbar / mvm_ns / 1e3
    total_w = (chip_p_mw + links_p_mw) / 1e3
    total_a = chip_a + links_a
    names = hw.level_names
    levels = (
        LevelRollup("ima", names.get("ima", "ima"), hw.imas_per_tile * hw.tiles_per_chip, ima_p, ima_a, ima_p, ima_a),
        LevelRollup("tile", names.get("tile", "tile"), hw.tiles_per_chip, *own["tile"], tile_p, tile_a),
        LevelRollup("chip", names.get("chip", "chip"), 1, links_p_mw, links_a, chip_p_mw + links_p_mw, total_a),
    )
    return Rollup(
        ima_power_mw=ima_p, ima_area_mm2=ima_a, imas_power_mw=imas_p, imas_area_mm2=imas_a,
        tile_power_mw=tile_p, tile_area_mm2=tile_a, chip_power_w=chip_p_mw / 1e3, chip_area_mm2=chip_a,
        chip_with_links_power_w=total_w, chip_with_links_area_mm2=total_a,
        chip_crossbars=chip_crossbars, peak_tops=peak_tops,
        peak_tops_per_w=peak_tops / total_w if total_w > 0 else 0.0,
        peak_gops_per_mm2=peak_tops * 1e3 / total_a if total_a > 0 else 0.0,
        peak_gops_per_w=peak_tops * 1e3 / total_w if total_w > 0 else 0.0,
        levels=levels,
    )


@dataclass(frozen=True)
class EnergyTable:
    """How the kernel's event counts become energy by category, for one hardware configuration.

    ``per_count_pj[c, e]``: pJ that category ``categories[c]`` is charged per kernel count of event ``EVENTS[e]``
    (an ``array_read`` count is one active cell-read); ``event_pj[e]`` is the column sum (all categories).
    """

    categories: tuple[str, ...]
    per_count_pj: np.ndarray
    event_pj: np.ndarray


def _action_pj(hw: HardwareConfig, energy_pj: float, event: str, adc_reference_bits: int | None,
               ref_cells: int) -> float:
    e = energy_pj
    if adc_reference_bits is not None:
        e *= 2.0 ** (hw.adc_bits - adc_reference_bits)
    if event == "array_read":
        e /= ref_cells
    return e


def energy_table(hw: HardwareConfig) -> EnergyTable:
    """The category x event energy matrix of ``hw``'s component table (see module conventions)."""
    comps = components_of(hw)
    ref_cells = hw.crossbar_rows * hw.crossbar_cols
    categories: list[str] = []
    for comp in comps.values():
        if comp.actions and comp.category not in categories:
            categories.append(comp.category)
    per = np.zeros((len(categories), len(EVENTS)), np.float64)
    for comp in comps.values():
        for action in comp.actions.values():
            per[categories.index(comp.category), EVENTS.index(action.event)] += _action_pj(
                hw, action.energy_pj, action.event, action.adc_reference_bits, ref_cells)
    return EnergyTable(tuple(categories), per, per.sum(axis=0))


def energy_by_category(table: EnergyTable, counts: np.ndarray, leakage_pj: float) -> dict[str, float]:
    """Energy (pJ) per category from the kernel's event ``counts`` (``EVENTS`` order), plus ``leakage``."""
    out = {cat: float(table.per_count_pj[i] @ counts) for i, cat in enumerate(table.categories)}
    out[LEAKAGE_CATEGORY] = out.get(LEAKAGE_CATEGORY, 0.0) + float(leakage_pj)
    return out


def ppa_parameters(hw: HardwareConfig) -> np.ndarray:
    """The scalar PPA parameters the Numba kernels read, as one float64 array (see ``PARAM_*`` indices)."""
    comps = components_of(hw)
    table = energy_table(hw)
    cells = hw.crossbar_rows * hw.crossbar_cols
    crossbar_area = sum(c.count * c.area_mm2 for c in comps.values()
                        if c.level == "ima" and any(a.event == "array_read" for a in c.actions.values()))
    xbar_cell_area = crossbar_area / (hw.crossbars_per_ima * cells)
    out = np.zeros(N_PARAMS, np.float64)
    out[PARAM_READ_NS] = hw.read_ns
    out[PARAM_ADCS] = hw.adcs_per_crossbar
    out[PARAM_ADC_GSPS] = hw.adc_sample_rate_gsps
    out[PARAM_READS_PER_INPUT] = hw.reads_per_input
    out[PARAM_INPUT_BITS] = hw.input_bits
    out[PARAM_E_CELL] = table.event_pj[EVENTS.index("array_read")]
    out[PARAM_E_ROW] = table.event_pj[EVENTS.index("row_drive")]
    out[PARAM_E_COLUMN] = table.event_pj[EVENTS.index("column_convert")]
    out[PARAM_E_WORD] = table.event_pj[EVENTS.index("word_transfer")]
    out[PARAM_WORD_BITS] = BUS_WORD_BITS
    out[PARAM_LEAK_IMA_MW] = _level_sums(comps, "ima", "leakage_mw")
    out[PARAM_LEAK_TILE_MW] = _level_sums(comps, "tile", "leakage_mw")
    out[PARAM_AREA_IMA] = _level_sums(comps, "ima", "area_mm2")
    out[PARAM_AREA_TILE] = _level_sums(comps, "tile", "area_mm2")
    out[PARAM_AREA_XBAR_CELL] = xbar_cell_area
    out[PARAM_XBARS_PER_IMA] = hw.crossbars_per_ima
    out[PARAM_IMAS_PER_TILE] = hw.imas_per_tile
    out[PARAM_REF_CELLS] = cells
    return out


(
    PARAM_READ_NS, PARAM_ADCS, PARAM_ADC_GSPS, PARAM_READS_PER_INPUT, PARAM_INPUT_BITS, PARAM_E_CELL,
    PARAM_E_ROW, PARAM_E_COLUMN, PARAM_E_WORD, PARAM_WORD_BITS, PARAM_LEAK_IMA_MW,
    PARAM_LEAK_TILE_MW, PARAM_AREA_IMA, PARAM_AREA_TILE, PARAM_AREA_XBAR_CELL, PARAM_XBARS_PER_IMA,
    PARAM_IMAS_PER_TILE, PARAM_REF_CELLS,
) = range(18)
N_PARAMS = 18

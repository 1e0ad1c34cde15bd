"""``rnc-platform hardware list|show NAME|check FILE``: hardware presets, their roll-up, and validation of a file.

Hardware is data (``rnc/simulator/presets/*.yaml``, Accelergy/CiMLoop style); these commands print what the
simulator makes of it: the hierarchy (IMA / tile / chip with the source's names), the component table with
each action's energy and compiler event, and the peak figures (TOPS, GOPS/s/mm2, GOPS/s/W). Bad input exits
with status 2 and one line on stderr naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

hardware_app = typer.Typer(
    name="hardware",
    help="Hardware descriptions as data: list the presets, show a roll-up, check a YAML file.",
    no_args_is_help=True,
)


def _load(spec: str):
    """The hardware ``spec`` names; a bad one raises ``HardwareConfigError``, which the CLI prints as one line on
    stderr with exit status 2 (:mod:`rnc.platform.cli_errors`)."""
    from rnc.simulator.hardware import HardwareConfig

    return HardwareConfig.resolve(spec)


def _console() -> Console:
    """Stdout console at least 150 columns wide, so the tables do not wrap when piped."""
    return Console(width=max(Console().width, 150))


def _source_line(name: str) -> str:
    """The first comment line of a preset file (its source), without the ``#``."""
    from rnc.simulator.hardware import PRESET_DIR

    for line in (PRESET_DIR / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _print_rollup(console: Console, hw) -> None:
    from rnc.simulator.ppa import rollup

    r = rollup(hw)
    levels = Table(title=f"{hw.name}: hierarchy roll-up", show_edge=False, pad_edge=False)
    for col in ("level", "called", "units / chip", "own power mW", "own area mm2", "power mW", "area mm2"):
        levels.add_column(col, justify="left" if col in ("level", "called") else "right")
    for lv in r.levels:
        levels.add_row(lv.level, lv.name, f"{lv.units_per_chip:,}", f"{lv.own_power_mw:,.3f}",
                       f"{lv.own_area_mm2:,.5f}", f"{lv.power_mw:,.3f}", f"{lv.area_mm2:,.4f}")
    console.print(levels)
    comps = Table(title="components (per unit)", show_edge=False, pad_edge=False)
    for col in ("component", "level", "count", "power mW", "area mm2", "leakage mW", "category", "actions"):
        comps.add_column(col, justify="right" if col in ("count", "power mW", "area mm2", "leakage mW") else "left")
    from rnc.simulator.ppa import components_of

    for cname, c in components_of(hw).items():
        actions = "; ".join(f"{a} {act.energy_pj:g} pJ @{act.event}" for a, act in c.actions.items()) or "(none)"
        comps.add_row(cname, c.level, f"{c.count:g}", f"{c.power_mw:g}", f"{c.area_mm2:g}", f"{c.leakage_mw:g}",
                      c.category or "", actions)
    console.print(comps)
    unit = hw.digital_unit
    console.print(
        f"chip: {r.chip_crossbars:,} crossbars of {hw.crossbar_rows}x{hw.crossbar_cols}, "
        f"{r.chip_with_links_power_w:,.2f} W, {r.chip_with_links_area_mm2:,.2f} mm2 "
        f"(without chip-level components {r.chip_power_w:,.2f} W, {r.chip_area_mm2:,.2f} mm2)"
    )
    console.print(
        f"peak ({hw.weight_bits}-bit weights, {hw.input_bits}-bit inputs): {r.peak_tops:,.2f} TOPS, "
        f"{r.peak_gops_per_mm2:,.1f} GOPS/s/mm2, {r.peak_gops_per_w:,.1f} GOPS/s/W"
    )
    console.print(
        f"digital unit: {unit.energy_pj_per_op:g} pJ/op, {unit.ops_per_ns:g} ops/ns per unit, "
        f"{unit.instances:g} per {unit.level}"
    )


@hardware_app.command("list")
def list_command() -> None:
    """Every preset with its crossbars, precisions and peak figures."""
    from rnc.simulator.hardware import HardwareConfig
    from rnc.simulator.ppa import rollup

    table = Table(show_edge=False, pad_edge=False)
    for col in ("preset", "crossbar", "cell/weight/input bits", "chip crossbars", "chip W", "chip mm2",
                "peak TOPS", "GOPS/s/mm2", "GOPS/s/W"):
        table.add_column(col, justify="left" if col in ("preset", "crossbar") else "right")
    sources = []
    for name in HardwareConfig.presets():
        hw = HardwareConfig.preset(name)
        r = rollup(hw)
        table.add_row(
            name, f"{hw.crossbar_rows}x{hw.crossbar_cols}", f"{hw.cell_bits}/{hw.weight_bits}/{hw.input_bits}",
            f"{r.chip_crossbars:,}", f"{r.chip_with_links_power_w:,.1f}", f"{r.chip_with_links_area_mm2:,.1f}",
            f"{r.peak_tops:,.1f}", f"{r.peak_gops_per_mm2:,.0f}", f"{r.peak_gops_per_w:,.0f}",
        )
        sources.append(f"[bold]{name}[/]: {_source_line(name)}")
    console = _console()
    console.print(table)
    for line in sources:
        console.print(line)


@hardware_app.command("show")
def show_command(name: str = typer.Argument(..., help="A preset name (see `hardware list`) or a YAML file.")) -> None:
    """The roll-up of one preset or file: hierarchy, components with their actions, peak figures."""
    _print_rollup(_console(), _load(name))


@hardware_app.command("check")
def check_command(path: Path = typer.Argument(..., help="A hardware YAML file (`base: PRESET` inherits).")) -> None:
    """Validate a hardware file; on success print its roll-up, else one line naming the field (exit 2)."""
    from rnc.simulator.hardware import HardwareConfigError

    if not path.is_file():
        raise HardwareConfigError(f"hardware file {str(path)!r} does not exist")
    hw = _load(str(path))
    console = _console()
    console.print(f"ok: {path} is a valid hardware description ({hw.name})")
    _print_rollup(console, hw)


def register(app: typer.Typer) -> None:
    app.add_typer(hardware_app, name="hardware")

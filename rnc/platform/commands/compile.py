"""``rnc-platform compile MODEL``: compile a network onto RRAM crossbars and print its plan and PPA."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rnc.errors import UserError
from rnc.platform.storage import check_writable_file

MODEL_HELP = (
    "torchvision:NAME[:NUM_CLASSES] (e.g. torchvision:squeezenet1_1:10), rnc:NAME[:NUM_CLASSES] for the "
    "project's example models (rnc:vgg8), or path/to/file.py:factory (a function returning an nn.Module)."
)


class ModelSpecError(UserError, ValueError):
    """A MODEL argument that cannot be turned into a torch module."""


def load_model(spec: str):
    """Build the ``torch.nn.Module`` named by ``spec`` (see ``MODEL_HELP``) with random weights."""
    import torch.nn as nn

    source, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelSpecError(f"model {spec!r}: expected torchvision:NAME[:NUM_CLASSES] or path/to/file.py:factory")
    if source in ("torchvision", "rnc"):
        name, _, classes = rest.partition(":")
        kwargs = {}
        if classes:
            try:
                kwargs["num_classes"] = int(classes)
            except ValueError:
                raise ModelSpecError(f"model {spec!r}: NUM_CLASSES {classes!r} is not an integer") from None
            if kwargs["num_classes"] < 1:
                raise ModelSpecError(f"model {spec!r}: NUM_CLASSES must be positive")
        if source == "torchvision":
            import torchvision

            available = torchvision.models.list_models(module=torchvision.models)
            if name not in available:
                raise ModelSpecError(
                    f"model {spec!r}: torchvision has no classification model {name!r}; e.g. "
                    "mobilenet_v3_small, squeezenet1_1, resnet18"
                )
            return torchvision.models.get_model(name, weights=None, **kwargs)
        from rnc.simulator import models as rnc_models

        factory = getattr(rnc_models, name, None)
        if name.startswith("_") or not callable(factory) or inspect.isclass(factory):
            raise ModelSpecError(f"model {spec!r}: rnc.simulator.models has no model factory {name!r} (try vgg8)")
        return factory(**kwargs)
    # path/to/file.py:factory  (the path may itself contain ':' on some systems: split at the last one)
    path_text, _, factory_name = spec.rpartition(":")
    path = Path(path_text)
    if path.suffix != ".py":
        raise ModelSpecError(f"model {spec!r}: expected torchvision:NAME or a .py file with :factory")
    if not path.is_file():
        raise ModelSpecError(f"model {spec!r}: file {str(path)!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"rnc_user_model_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ModelSpecError(f"model {spec!r}: cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(module_spec)
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # leave no __pycache__ beside the user's file
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelSpecError(f"model {spec!r}: importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.dont_write_bytecode = dont_write
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ModelSpecError(f"model {spec!r}: {str(path)!r} defines no callable {factory_name!r}")
    try:
        model = factory()
    except Exception as exc:
        raise ModelSpecError(f"model {spec!r}: {factory_name}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model {spec!r}: {factory_name}() returned {type(model).__name__}, not an nn.Module")
    return model


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt_ns(value: float) -> str:
    return f"{value / 1e3:,.1f}"


def _fmt_uj(energy_pj: float) -> str:
    return f"{energy_pj / 1e6:.4g}"


def print_result(result, console: Console, *, title: str) -> None:
    """The per-layer table and the totals of a :class:`rnc.simulator.CompileResult`, in the units ``launch``
    shows (latency µs, energy µJ; the metric table, :mod:`rnc.platform.metrics`)."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for col, justify in (
        ("#", "right"), ("layer", "left"), ("kind", "left"), ("shape", "left"), ("pos", "right"),
        ("xbar", "right"), ("copies", "right"), ("xbars*", "right"), ("share", "right"), ("cells", "right"),
        ("util", "right"), ("stage µs", "right"), ("finish µs", "right"), ("energy µJ", "right"),
    ):
        table.add_column(col, justify=justify)
    touched = 0
    shares = 0.0
    digital: dict[int, list[dict]] = {}
    for op in result.digital.operations:  # the digital unit's work, after the weight layer issued before it
        digital.setdefault(op["after_layer"], []).append(op)

    def add_digital(after: int) -> None:
        for op in digital.get(after, ()):
            table.add_row("", op["name"], f"digital {op['kind']}", "", f"{op['ops']:,} ops", "digital", "", "", "",
                          "", _fmt_ns(op["latency_ns"]), "", f"{op['energy_pj'] / 1e3:,.1f}")

    add_digital(-1)
    for row in result.layers:
        k = row["kernel"]
        shape = f"{row['in_channels']}->{row['out_channels']}"
        if row["kind"] != "linear":
            shape += f" {k[0]}x{k[1]}" + (f" g{row['groups']}" if row["groups"] > 1 else "")
        size = row["crossbar_size"]
        share = row["cells"] / (size[0] * size[1])  # crossbar-equivalents of this layer's cells
        touched += row["crossbars"]
        shares += share
        table.add_row(
            str(row["index"]), row["name"], row["kind"], shape, f"{row['positions']:,}", f"{size[0]}x{size[1]}",
            str(row["copies"]), str(row["crossbars"]), f"{share:,.2f}", f"{row['cells']:,}",
            f"{row['crossbar_share']:.0%}", _fmt_ns(row["stage_ns"]), _fmt_ns(row["finish_ns"]),
            _fmt_uj(row["energy_pj"]),
        )
        add_digital(row["index"])
    console.print(table)
    s = result.summary()
    budget = "unlimited" if s["budget"] == 0 else f"{s['budget']:,}"
    status = "[green]feasible[/]" if s["feasible"] else f"[red]infeasible[/] (needs at least {s['min_crossbars']:,})"
    energy = ", ".join(f"{k} {_fmt_uj(v)}" for k, v in s["energy_by_component_pj"].items())
    sizes = ", ".join(f"{n:,} of {size}" for size, n in result.crossbars_by_size.items())
    console.print(
        f"[dim]xbars* = crossbars a layer's weight boxes touch (all copies); packing puts boxes of several layers "
        f"into one crossbar, so the column sums to {touched:,} against {s['crossbars_used']:,} distinct crossbars. "
        f"share = the layer's cells in crossbar-equivalents (sums to {shares:,.1f}); util = its cells / cells of "
        f"the crossbars it touches.[/]"
    )
    console.print(
        f"[bold]{result.strategy}[/]: {status}; crossbars used {s['crossbars_used']:,} ({sizes}) of budget {budget}, "
        f"minimum {s['min_crossbars']:,}; utilization {s['utilization']:.1%}\n"
        f"latency {s['latency_ns'] / 1e3:,.1f} µs; throughput {s['throughput_ips']:,.1f} images/s; "
        f"energy {_fmt_uj(s['energy_pj'])} µJ ({energy} µJ); area {s['area_mm2']:.4f} mm²; "
        f"EDAP {s['edap']:.4g} pJ·ns·mm²; {s['tops']:.4g} TOPS; {s['tops_per_w']:.4g} TOPS/W"
    )


def register(app: typer.Typer) -> None:
    @app.command("compile")
    def compile_command(
        model: str = typer.Argument(..., help=MODEL_HELP, show_default=False),
        input_shape: str = typer.Option("3x64x64", "--input", help="Input shape CxHxW of one image."),
        hardware: str = typer.Option("rnc", "--hardware", help="Hardware preset (`hardware list`) or a YAML file."),
        set_values: list[str] = typer.Option(
            [], "--set", help="Override a hardware field, KEY=VALUE (repeatable), e.g. --set cell_bits=2."
        ),
        crossbars: int | None = typer.Option(
            None, "--crossbars", min=0, help="Crossbar budget (0 = unlimited). Default: the hardware's."
        ),
        strategy: str = typer.Option("rnc", "--strategy", help="Compilation strategy: rnc or isaac."),
        json_out: Path | None = typer.Option(None, "--json", help="Write the plan and PPA as JSON to this file."),
        seed: int = typer.Option(0, "--seed", help="Seed of the packer's random restarts."),
        duplicate: bool | None = typer.Option(
            None, "--duplicate/--no-duplicate", help="Duplicate bottleneck layers (default: on for rnc)."
        ),
        pack: bool | None = typer.Option(None, "--pack/--no-pack", help="Pack boxes of several layers (rnc)."),
        depthwise_split: int = typer.Option(1, "--depthwise-split", min=1, help="Channel chunks per depthwise layer."),
        depthwise_mapping: str = typer.Option(
            "auto", "--depthwise-mapping",
            help="Depthwise mapping (rnc): auto, channel-serial, block-diagonal or parallel.",
        ),
        duplication: str = typer.Option(
            "auto", "--duplication", help="Duplication policy (rnc): auto, balance (RNC) or latency."
        ),
        min_gain: float = typer.Option(
            0.005, "--min-gain", help="Stop rule: fraction of the latency a duplication step must gain (0 = off)."
        ),
        shared: str = typer.Option(
            "serialize", "--shared",
            help="A weight used twice: 'serialize' (stored once, uses in turn) or 'duplicate' (a copy per use).",
        ),
    ) -> None:
        """Compile MODEL onto crossbars: per-layer plan, totals, and optionally the full plan as JSON."""
        from rnc.simulator import HardwareConfig, WorkloadError, compile_workload, parse_input_shape, trace_workload
        from rnc.simulator.compiler import resolve_options
        from rnc.simulator.workload import ForwardPassError

        console = Console()
        if not console.is_terminal:  # files and pipes get the whole table, not an 80-column squeeze
            console = Console(width=200)
        shape = parse_input_shape(input_shape)
        if shared not in ("serialize", "duplicate"):
            raise WorkloadError(f"--shared {shared!r}: expected serialize or duplicate")
        hw = HardwareConfig.resolve(hardware)
        if set_values:
            hw = hw.set_values(list(set_values))
        if crossbars is not None:
            hw = hw.with_updates(crossbars=crossbars)
        resolve_options(strategy, hw, seed=seed, duplicate=duplicate, pack=pack, depthwise_split=depthwise_split,
                        depthwise_mapping=depthwise_mapping, duplication=duplication, min_gain=min_gain)
        if json_out is not None:
            check_writable_file(json_out, "--json")
        module = load_model(model)
        with console.status(f"tracing {model} at {input_shape}"):
            try:  # tracing runs the model once: a wrong --input shows here, named as such
                workload = trace_workload(module, shape, name=model, shared=shared)
            except ForwardPassError as exc:
                raise ModelSpecError(
                    f"model {model!r} cannot run on input {'x'.join(map(str, shape))}: {exc.reason}; check --input "
                    "(CxHxW for images)"
                ) from None
        with console.status(f"compiling {len(workload)} layers ({strategy})"):
            result = compile_workload(workload, hw, strategy, seed=seed, duplicate=duplicate, pack=pack,
                                      depthwise_split=depthwise_split, depthwise_mapping=depthwise_mapping,
                                      duplication=duplication, min_gain=min_gain)
        print_result(result, console, title=f"{model} @ {'x'.join(map(str, shape))} on {hw.name} ({strategy})")
        if json_out is not None:
            write_json_atomic(json_out, result.to_dict())
            console.print(f"plan and PPA written to {json_out}")

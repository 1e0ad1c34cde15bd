"""``rnc-platform spaces [--json]``: every registered search space with its genes and exact cardinality."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table


def _choices(values: list) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def register(app: typer.Typer) -> None:
    @app.command("spaces")
    def spaces_command(
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object: space name -> description."),
        name: str | None = typer.Option(None, "--space", help="Show only this space."),
    ) -> None:
        """List the search spaces: genes, choices and the exact number of distinct networks."""
        from rnc.errors import check_names
        from rnc.search.spaces import SPACES, UnknownSpaceError, get_space

        names = sorted(SPACES)
        if name is not None:
            check_names("search space", [name], names, where="--space", error=UnknownSpaceError)
            names = [name]
        described = {n: get_space(n).describe() for n in names}
        if json_out:
            typer.echo(json.dumps(described, indent=2, default=str))
            return
        console = Console()
        for space_name, info in described.items():
            genes = info["genes"]
            console.print(
                f"[bold]{space_name}[/]: {info['cardinality']:,} networks ({info['cardinality']:.3e}), "
                f"{len(genes)} genes, input {'x'.join(str(d) for d in info['input_shape'])}, "
                f"{info['num_classes']} classes"
            )
            if info.get("note"):
                console.print(f"  [dim]{info['note']}[/]")
            table = Table(show_edge=False, pad_edge=False)
            table.add_column("gene")
            table.add_column("choices")
            table.add_column("kind")
            for gene in genes:
                table.add_row(gene["name"], _choices(gene["choices"]), "hardware" if gene["hardware"] else "network")
            console.print(table)

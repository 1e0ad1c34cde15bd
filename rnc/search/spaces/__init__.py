"""Search spaces and their registry.

``SPACES`` maps a space name to its class; :func:`get_space` builds one with options (each space documents
its own: input shape or resolution, number of classes, widths...).

- ``mbv3`` -- RNC's once-for-all MobileNetV3-small space (:mod:`rnc.search.spaces.mbv3`).
- ``nax`` -- NAX's ResNet-20-style space with per-layer kernel and crossbar size (:mod:`rnc.search.spaces.nax`).
- ``imc-blocks`` -- block-type/depth/width space of multi-objective NAS for IMC (:mod:`rnc.search.spaces.imc_blocks`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from typing import Any

from rnc.errors import UserError, check_names
from rnc.search.spaces.base import Gene, GenomeError, SearchSpace, SupernetModule
from rnc.search.spaces.mbv3 import Mbv3Space

SPACES: dict[str, type[SearchSpace]] = {
    "mbv3": Mbv3Space,
}

# Spaces in their own modules, registered when the module is present: (name, module, class).
_OPTIONAL_SPACES = (
    ("nax", "rnc.search.spaces.nax", "NaxSpace"),
    ("imc-blocks", "rnc.search.spaces.imc_blocks", "ImcBlocksSpace"),
)
for _name, _module, _cls in _OPTIONAL_SPACES:
    if importlib.util.find_spec(_module) is not None:
        SPACES[_name] = getattr(importlib.import_module(_module), _cls)


class UnknownSpaceError(UserError, KeyError):
    """A space name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build the space ``name`` with ``options``; a clear error lists the valid names or the bad option."""
    check_names("search space", [name], sorted(SPACES), where="space", error=UnknownSpaceError)
    # the constructor's own keywords, plus hardware_genes, which SearchSpace adds to every space's constructor
    params = inspect.signature(SPACES[name]).parameters.values()
    accepted = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)] + ["hardware_genes"]
    check_names("option", sorted(options), accepted, where=f"search space {name!r}", error=GenomeError)
    try:
        return SPACES[name](**options)
    except (TypeError, ValueError) as exc:
        raise GenomeError(f"search space {name!r}: bad options {options}: {exc}") from None


__all__ = [
    "SPACES", "Gene", "GenomeError", "Mbv3Space", "SearchSpace", "SupernetModule", "UnknownSpaceError", "get_space",
]

"""``KEY=VALUE`` options from the command line (space options, searcher options, recipe options).

One parser for the CLI and the benchmarks: the value is read as JSON when it parses (``3``, ``[16, 32]``,
``true``), as text otherwise (``categorical``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rnc.errors import UserError


class OptionError(UserError, ValueError):
    """An option that is not ``KEY=VALUE``; the message names the flag and the item."""


def parse_key_values(items: Iterable[str], *, flag: str, example: str = "") -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: VALUE}``.

    Raises:
        OptionError: an item without ``=`` or with an empty key (``flag`` and ``example`` go into the message).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            hint = f", e.g. {flag} {example}" if example else ""
            raise OptionError(f"{flag} {item!r}: expected KEY=VALUE{hint}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out

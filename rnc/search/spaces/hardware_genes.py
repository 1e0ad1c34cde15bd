"""Optional hardware genes: crossbar size, ADC bits, cell bits (or any scalar hardware field) searched together
with the network, for hardware/network co-design.

A hardware gene is a :class:`~rnc.search.spaces.base.Gene` with ``hardware=True`` named ``hw.<field>``; its value
replaces that field of the base :class:`~rnc.simulator.HardwareConfig` in
:meth:`~rnc.search.spaces.base.SearchSpace.hardware_for`. ``hw.crossbar_size`` is the one derived field: a
square crossbar, setting both ``crossbar_rows`` and ``crossbar_cols`` (NAX, Negi et al., DAC 2022, co-designs
square crossbars of 64/128/256).

Per-layer hardware genes of a space (NAX's per-layer crossbar size) are applied after these global genes, so a
layer's own crossbar size wins over ``hw.crossbar_size`` for that layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rnc.simulator import HardwareConfig
from rnc.simulator.hardware import HardwareConfigError

HW_PREFIX = "hw."

#: Choices used when a hardware gene is named without choices (``hardware_genes=["adc_bits"]``).
DEFAULT_HARDWARE_CHOICES: dict[str, tuple[Any, ...]] = {
    "crossbar_size": (64, 128, 256),
    "adc_bits": (4, 5, 6, 7, 8),
    "cell_bits": (1, 2, 4),
    "dac_bits": (1, 2, 4),
}

#: HardwareConfig fields that are not scalars and cannot be a gene.
_NON_SCALAR_FIELDS = {"name", "layer_crossbar_sizes", "level_names", "components", "nonideal"}


def searchable_hardware_fields() -> list[str]:
    """Names accepted as hardware genes: ``crossbar_size`` and every scalar ``HardwareConfig`` field."""
    return ["crossbar_size", *(f for f in HardwareConfig.model_fields if f not in _NON_SCALAR_FIELDS)]


def field_updates(field: str, value: Any) -> dict[str, Any]:
    """The ``HardwareConfig`` updates one hardware gene value stands for."""
    if field == "crossbar_size":
        return {"crossbar_rows": value, "crossbar_cols": value}
    return {field: value}


def parse_hardware_genes(spec: Mapping[str, Sequence[Any]] | Iterable[str] | None) -> dict[str, tuple[Any, ...]]:
    """Validate a hardware-gene spec: ``{"adc_bits": [4, 6, 8], ...}`` or a list of names (default choices).

    Names may carry the ``hw.`` prefix. Every choice is checked against a default ``HardwareConfig`` so that a
    bad value fails here, naming the gene, rather than in the middle of a search.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    items: list[tuple[str, Any]] = list(spec.items()) if isinstance(spec, Mapping) else [(n, None) for n in spec]
    valid = searchable_hardware_fields()
    parsed: dict[str, tuple[Any, ...]] = {}
    for raw_name, raw_choices in items:
        field = str(raw_name).removeprefix(HW_PREFIX)
        if field not in valid:
            raise HardwareConfigError(
                f"hardware gene {raw_name!r}: not a searchable hardware field; choose from {', '.join(valid)}"
            )
        if raw_choices is None:
            if field not in DEFAULT_HARDWARE_CHOICES:
                raise HardwareConfigError(
                    f"hardware gene {field!r} has no default choices; give them, e.g. {{{field!r}: [...]}}"
                )
            choices = DEFAULT_HARDWARE_CHOICES[field]
        elif isinstance(raw_choices, (str, bytes)) or not isinstance(raw_choices, Iterable):
            raise HardwareConfigError(f"hardware gene {field!r}: choices must be a list, got {raw_choices!r}")
        else:
            choices = tuple(raw_choices)
        if not choices:
            raise HardwareConfigError(f"hardware gene {field!r}: needs at least one choice")
        if len(set(choices)) != len(choices):
            raise HardwareConfigError(f"hardware gene {field!r}: choices {list(choices)} repeat a value")
        reference = HardwareConfig(weight_bits=32, input_bits=32)  # loosest cross-field limits
        for value in choices:
            try:
                reference.with_updates(**field_updates(field, value))
            except HardwareConfigError as exc:
                raise HardwareConfigError(f"hardware gene {field!r}: choice {value!r} is invalid ({exc})") from None
        if field in parsed:
            raise HardwareConfigError(f"hardware gene {field!r} given twice")
        parsed[field] = choices
    return parsed


def apply_hardware_values(hw: HardwareConfig, values: Mapping[str, Any]) -> HardwareConfig:
    """``hw`` with every ``field -> value`` applied (validated; errors name the gene)."""
    if not values:
        return hw
    updates: dict[str, Any] = {}
    for field, value in values.items():
        updates.update(field_updates(field, value))
    try:
        return hw.with_updates(**updates)
    except HardwareConfigError as exc:
        genes = ", ".join(f"{HW_PREFIX}{f}={v!r}" for f, v in values.items())
        raise HardwareConfigError(f"hardware genes ({genes}) do not fit hardware {hw.name!r}: {exc}") from None

"""torchvision's classification models as crossbar workloads, built without allocating their weights.

:func:`build_torchvision` builds a model with every parameter on the ``meta`` device (shapes only), so a
sweep over ``torchvision.models.list_models(module=torchvision.models)`` -- up to RegNet-Y-128GF's 645 M
weights -- costs memory for one layer at a time; :func:`torchvision_workload` traces it at its input size
(3x224x224, or the model's own minimum where that is larger).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn

from rnc.simulator.tracing import trace_workload
from rnc.simulator.workload import Workload, WorkloadError

DEFAULT_INPUT = (3, 224, 224)


@contextlib.contextmanager
def meta_parameters() -> Iterator[None]:
    """Inside, every parameter and buffer registered on a module moves to ``meta`` at registration, so
    weight initialisation is free (the approach of Hugging Face accelerate's ``init_empty_weights``)."""
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def to_meta_parameter(module, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def to_meta_buffer(module, name, tensor, persistent=True):
        register_buffer(module, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter = to_meta_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = to_meta_buffer  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


def classification_models() -> list[str]:
    """Every classification model torchvision lists (``list_models(module=torchvision.models)``)."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def input_shape_for(name: str) -> tuple[int, int, int]:
    """3x224x224: every listed model's architecture runs at it (the ``min_size`` of some of their weights,
    e.g. ViT-H/14's 518 for its SWAG weights, belongs to those weights, not to the architecture built here)."""
    return DEFAULT_INPUT


def build_torchvision(name: str, **kwargs) -> nn.Module:
    """``torchvision.models.get_model(name, **kwargs)`` with its parameters on ``meta`` (no weights)."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise WorkloadError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()")
    with meta_parameters(), torch.no_grad():
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def torchvision_workload(name: str, input_shape: tuple[int, ...] | None = None) -> Workload:
    """The crossbar workload of torchvision model ``name`` (built on ``meta``) at ``input_shape``."""
    return trace_workload(build_torchvision(name), input_shape or input_shape_for(name), name=name)

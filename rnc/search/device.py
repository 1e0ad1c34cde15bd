"""Where supernets train and subnets are evaluated: ``cuda`` when torch sees a GPU, else ``cpu``."""

from __future__ import annotations

import torch


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """The torch device for ``requested`` (``None``/``"auto"``: ``cuda`` when available, else ``cpu``).

    Raises ``ValueError`` for a device string torch does not know, or ``cuda`` asked for on a machine without
    a usable GPU (one line: what was asked, what is there, what to do).
    """
    if requested is None or (isinstance(requested, str) and requested.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {requested!r} is not a torch device ({exc}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but torch sees no CUDA GPU; use --device cpu (or auto)")
    return device

"""Elastic layers for weight-sharing supernets (once-for-all, Cai et al., ICLR 2020).

Every elastic layer holds the weights of its *largest* configuration and runs any smaller one by slicing:

- :class:`ElasticConv2d` -- a dense conv (``groups=1``) with an elastic kernel, elastic input channels and
  elastic output channels. Smaller kernels are the centre of the largest one passed through a learned
  *kernel transform matrix*: going from kernel ``K`` to the next smaller ``k``, the centre ``k x k`` patch of
  every filter (already transformed from the sizes above) is flattened to ``k*k`` values and multiplied by a
  ``(k*k, k*k)`` matrix shared by all channels of the layer, initialised to the identity (OFA Sec. 3.2,
  "elastic kernel size"). The matrices are parameters ``kernel_transforms["7to5"]``, ``["5to3"]``...
- :class:`ElasticDepthwiseConv2d` -- the same for a depthwise conv (``groups = channels``).
- :class:`ElasticBatchNorm2d` -- a ``BatchNorm2d`` whose first ``C`` features normalise a ``C``-channel input;
  the running statistics of the first ``C`` features are updated in place (shared with the larger widths).
- :class:`ElasticLinear` -- a linear layer with elastic input and output features.

Channels are elastic by taking the *first* channels. So that the first channels are the most important ones
(OFA's "elastic width", channel sorting), :func:`sort_channels` orders the channels that a consumer layer
reads by the L1 norm of its weights over them (largest first) and applies the same permutation to the
layers that produce (and the other layers that read) those channels, and to their optimizer state.

Interface, shared by all elastic layers
---------------------------------------
- Active configuration is plain attributes set by the owner before ``forward``: ``active_out`` (output
  channels / features), ``active_kernel`` (convs), and ``active_in`` (input channels; ``None`` means "as many
  as the input has"; ``forward`` always slices to the input's channel count, ``active_in`` is what
  :meth:`export` uses).
- ``forward(x)`` runs the active configuration on ``x``.
- ``active_state_dict()`` returns the active configuration's tensors (fresh copies) under the keys of the
  plain module; ``export()`` returns the standalone ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` of the
  active configuration with those weights; its ``state_dict`` keys are those of the plain module,
  which is how supernets build ``extract(genome)`` (:func:`load_active_weights` copies a whole supernet's
  active weights into a standalone module with the same module names).
- ``permute_channels(order, side, optimizer=None)`` permutes the weights along the ``"in"`` or ``"out"``
  channel dimension (depthwise convs and batch-norm have a single side).

State-dict keys of an elastic layer are those of its plain counterpart (``weight``, ``bias``, batch-norm
buffers) plus, for convs with several kernel sizes, ``kernel_transforms.<K>to<k>``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from rnc.search.layers import pointwise_conv2d


def _centre(kernel_max: int, kernel: int) -> slice:
    start = (kernel_max - kernel) // 2
    return slice(start, start + kernel)


def _check_kernels(kernel_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(sorted({int(k) for k in kernel_sizes}))
    if not sizes or any(k < 1 or k % 2 == 0 for k in sizes):
        raise ValueError(f"kernel sizes must be odd positive integers, got {list(kernel_sizes)}")
    return sizes


class _ElasticKernel(nn.Module):
    """Shared machinery of elastic convs: weight of shape (out, in_per_group, K, K) and kernel transforms."""

    def __init__(self, out_channels: int, in_per_group: int, kernel_sizes: Sequence[int], stride: int, bias: bool):
        super().__init__()
        self.kernel_sizes = _check_kernels(kernel_sizes)
        self.max_kernel = self.kernel_sizes[-1]
        self.stride = int(stride)
        self.weight = nn.Parameter(torch.empty(out_channels, in_per_group, self.max_kernel, self.max_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.kernel_transforms = nn.ParameterDict()
        descending = self.kernel_sizes[::-1]
        for big, small in itertools.pairwise(descending):
            self.kernel_transforms[f"{big}to{small}"] = nn.Parameter(torch.eye(small * small))
        self.active_kernel = self.max_kernel
        self.__dict__["folded_bn"] = None  # set by fold_batchnorm (kept out of the module tree and state dict)

    def _inference_fold(
        self, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight, bias)`` with the linked batch-norm folded in when that batch-norm is in inference mode
        (:func:`fold_batchnorm`); otherwise unchanged."""
        bn = self.__dict__["folded_bn"]
        if bn is None or bn.training:
            return weight, bias
        scale, shift = bn.inference_affine(weight.shape[0])
        if bias is not None:
            shift = shift + bias * scale
        return weight * scale[:, None, None, None], shift

    def _check_active_kernel(self) -> int:
        if self.active_kernel not in self.kernel_sizes:
            raise ValueError(f"active kernel {self.active_kernel} not among this layer's sizes {self.kernel_sizes}")
        return self.active_kernel

    def kernel_weight(self, out_channels: int, in_channels: int, kernel: int) -> torch.Tensor:
        """The ``(out, in, k, k)`` weight of kernel ``k``: the centre of the largest kernel, transformed."""
        weight = self.weight[:out_channels, :in_channels]
        if kernel == self.max_kernel:
            return weight
        current = self.max_kernel
        for small in self.kernel_sizes[::-1][1:]:
            if small < kernel:
                break
            centre = _centre(current, small)
            patch = weight[:, :, centre, centre].reshape(-1, small * small)
            patch = F.linear(patch, self.kernel_transforms[f"{current}to{small}"])
            weight = patch.reshape(weight.shape[0], weight.shape[1], small, small)
            current = small
        return weight


class ElasticConv2d(_ElasticKernel):
    """Dense conv (``groups=1``) with elastic kernel, input and output channels; padding ``k // 2``."""

    def __init__(
        self,
        max_in_channels: int,
        max_out_channels: int,
        kernel_sizes: Sequence[int] = (1,),
        stride: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(max_out_channels, max_in_channels, kernel_sizes, stride, bias)
        self.max_in_channels = int(max_in_channels)
        self.max_out_channels = int(max_out_channels)
        self.active_in: int | None = None
        self.active_out = self.max_out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self._check_active_kernel()
        in_channels = x.shape[1]
        weight = self.kernel_weight(self.active_out, in_channels, kernel)
        bias = self.bias[: self.active_out] if self.bias is not None else None
        weight, bias = self._inference_fold(weight, bias)
        if kernel == 1:  # strided: subsampled (oneDNN #6035); on a 1x1 map: a matrix product (rnc.search.layers)
            return pointwise_conv2d(x, weight, bias, self.stride)
        return F.conv2d(x, weight, bias, self.stride, kernel // 2)

    @torch.no_grad()
    def active_state_dict(self) -> dict[str, torch.Tensor]:
        """The active configuration's tensors under ``nn.Conv2d``'s keys (fresh tensors)."""
        kernel = self._check_active_kernel()
        in_channels = self.active_in or self.max_in_channels
        state = {"weight": self.kernel_weight(self.active_out, in_channels, kernel).clone()}
        if self.bias is not None:
            state["bias"] = self.bias[: self.active_out].clone()
        return state

    @torch.no_grad()
    def export(self) -> nn.Conv2d:
        kernel = self._check_active_kernel()
        in_channels = self.active_in or self.max_in_channels
        conv = nn.Conv2d(in_channels, self.active_out, kernel, self.stride, kernel // 2, bias=self.bias is not None)
        conv.load_state_dict(self.active_state_dict())
        return conv

    def permute_channels(self, order: torch.Tensor, side: str, optimizer: torch.optim.Optimizer | None = None) -> None:
        if side == "out":
            _permute(self.weight, order, 0, optimizer)
            if self.bias is not None:
                _permute(self.bias, order, 0, optimizer)
        elif side == "in":
            _permute(self.weight, order, 1, optimizer)
        else:
            raise ValueError(f"side must be 'in' or 'out', got {side!r}")

    def extra_repr(self) -> str:
        return (
            f"{self.max_in_channels}, {self.max_out_channels}, kernel_sizes={self.kernel_sizes}, "
            f"stride={self.stride}, bias={self.bias is not None}"
        )


class ElasticDepthwiseConv2d(_ElasticKernel):
    """Depthwise conv (``groups = channels``) with elastic kernel and channels; padding ``k // 2``."""

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int] = (3,), stride: int = 1) -> None:
        super().__init__(max_channels, 1, kernel_sizes, stride, bias=False)
        self.max_channels = int(max_channels)
        self.active_in: int | None = None
        self.active_out = self.max_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self._check_active_kernel()
        channels = x.shape[1]
        weight, bias = self._inference_fold(self.kernel_weight(channels, 1, kernel), None)
        return F.conv2d(x, weight, bias, self.stride, kernel // 2, 1, channels)

    @torch.no_grad()
    def active_state_dict(self) -> dict[str, torch.Tensor]:
        """The active configuration's tensors under ``nn.Conv2d``'s keys (fresh tensors)."""
        channels = self.active_in or self.active_out
        return {"weight": self.kernel_weight(channels, 1, self._check_active_kernel()).clone()}

    @torch.no_grad()
    def export(self) -> nn.Conv2d:
        kernel = self._check_active_kernel()
        channels = self.active_in or self.active_out
        conv = nn.Conv2d(channels, channels, kernel, self.stride, kernel // 2, groups=channels, bias=False)
        conv.load_state_dict(self.active_state_dict())
        return conv

    def permute_channels(self, order: torch.Tensor, side: str = "out", optimizer=None) -> None:
        _permute(self.weight, order, 0, optimizer)

    def extra_repr(self) -> str:
        return f"{self.max_channels}, kernel_sizes={self.kernel_sizes}, stride={self.stride}"


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` over the first ``C`` features for a ``C``-channel input (running stats shared in place)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, **kwargs) -> None:
        super().__init__(num_features, eps, momentum, **kwargs)
        self.active_out = int(num_features)
        self.folded = False  # set by fold_batchnorm: in inference mode the producing conv applies this layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded and not self.training:
            return x
        channels = x.shape[1]
        if not self.training and self.track_running_stats and self.affine and x.dim() == 4:
            # inference: one fused multiply-add with the folded per-channel scale and shift; on channels-last
            # CPU tensors ATen's batch_norm kernel takes ~2.5x longer for the same arithmetic
            scale, shift = self.inference_affine(channels)
            return torch.addcmul(shift[None, :, None, None], x, scale[None, :, None, None])
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:channels] if self.running_mean is not None else None,
            self.running_var[:channels] if self.running_var is not None else None,
            self.weight[:channels] if self.affine else None,
            self.bias[:channels] if self.affine else None,
            use_batch_stats,
            factor,
            self.eps,
        )

    def inference_affine(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` of the first ``channels`` features in inference mode: ``y = x * scale + shift`` with
        ``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``."""
        scale = self.weight[:channels] * torch.rsqrt(self.running_var[:channels] + self.eps)
        return scale, self.bias[:channels] - self.running_mean[:channels] * scale

    @torch.no_grad()
    def active_state_dict(self, channels: int | None = None) -> dict[str, torch.Tensor]:
        """The first ``channels`` (default ``active_out``) features under ``nn.BatchNorm2d``'s keys."""
        channels = channels or self.active_out
        state = {}
        if self.affine:
            state["weight"], state["bias"] = self.weight[:channels].clone(), self.bias[:channels].clone()
        if self.track_running_stats:
            state["running_mean"] = self.running_mean[:channels].clone()
            state["running_var"] = self.running_var[:channels].clone()
            state["num_batches_tracked"] = self.num_batches_tracked.clone()
        return state

    @torch.no_grad()
    def export(self, channels: int | None = None) -> nn.BatchNorm2d:
        """A plain ``BatchNorm2d`` of the first ``channels`` (default ``active_out``) features, stats copied."""
        channels = channels or self.active_out
        bn = nn.BatchNorm2d(channels, self.eps, self.momentum, self.affine, self.track_running_stats)
        bn.load_state_dict(self.active_state_dict(channels))
        return bn

    def permute_channels(self, order: torch.Tensor, side: str = "out", optimizer=None) -> None:
        if self.affine:
            _permute(self.weight, order, 0, optimizer)
            _permute(self.bias, order, 0, optimizer)
        if self.track_running_stats:
            _permute(self.running_mean, order, 0, None)
            _permute(self.running_var, order, 0, None)


class ElasticLinear(nn.Module):
    """Linear layer with elastic input (first features) and output features."""

    def __init__(self, max_in_features: int, max_out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.max_in_features = int(max_in_features)
        self.max_out_features = int(max_out_features)
        reference = nn.Linear(max_in_features, max_out_features, bias=bias)  # PyTorch's default initialisation
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.bias = nn.Parameter(reference.bias.detach().clone()) if bias else None
        self.active_in: int | None = None
        self.active_out = self.max_out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_features = x.shape[-1]
        bias = self.bias[: self.active_out] if self.bias is not None else None
        return F.linear(x, self.weight[: self.active_out, :in_features], bias)

    @torch.no_grad()
    def active_state_dict(self) -> dict[str, torch.Tensor]:
        """The active configuration's tensors under ``nn.Linear``'s keys (fresh tensors)."""
        in_features = self.active_in or self.max_in_features
        state = {"weight": self.weight[: self.active_out, :in_features].clone()}
        if self.bias is not None:
            state["bias"] = self.bias[: self.active_out].clone()
        return state

    @torch.no_grad()
    def export(self) -> nn.Linear:
        in_features = self.active_in or self.max_in_features
        linear = nn.Linear(in_features, self.active_out, bias=self.bias is not None)
        linear.load_state_dict(self.active_state_dict())
        return linear

    def permute_channels(self, order: torch.Tensor, side: str, optimizer=None) -> None:
        if side == "out":
            _permute(self.weight, order, 0, optimizer)
            if self.bias is not None:
                _permute(self.bias, order, 0, optimizer)
        elif side == "in":
            _permute(self.weight, order, 1, optimizer)
        else:
            raise ValueError(f"side must be 'in' or 'out', got {side!r}")

    def extra_repr(self) -> str:
        return f"{self.max_in_features}, {self.max_out_features}, bias={self.bias is not None}"


ElasticLayer = ElasticConv2d | ElasticDepthwiseConv2d | ElasticBatchNorm2d | ElasticLinear
ELASTIC_TYPES = (ElasticConv2d, ElasticDepthwiseConv2d, ElasticBatchNorm2d, ElasticLinear)


def fold_batchnorm(conv: ElasticConv2d | ElasticDepthwiseConv2d, bn: ElasticBatchNorm2d) -> None:
    """Link ``bn`` to the conv whose output it always normalises directly: in inference mode (``bn.eval()``) the
    conv then runs with the batch-norm folded into its weight and bias (``w * gamma / sqrt(var + eps)``, bias
    ``beta - mean * gamma / sqrt(var + eps)``) and ``bn`` passes its input through -- the same function with one
    pass over the activations fewer. In training mode (training, batch-norm recalibration) both run as before.
    Only for pairs where nothing else reads the conv's output."""
    if not isinstance(bn, ElasticBatchNorm2d) or not isinstance(conv, _ElasticKernel):
        raise TypeError(f"fold_batchnorm links an elastic conv to an ElasticBatchNorm2d, got {type(conv).__name__}, "
                        f"{type(bn).__name__}")
    conv.__dict__["folded_bn"] = bn
    bn.folded = True


@torch.no_grad()
def load_active_weights(supernet: nn.Module, target: nn.Module, *, assign: bool = False) -> nn.Module:
    """Copy the supernet's *active* weights into ``target``, a standalone module of the same structure.

    Module names must match: every elastic layer of ``supernet`` whose name exists in ``target`` is
    :meth:`export`-ed (so its ``active_*`` attributes, ``active_in`` included, must describe the active
    subnet), every other parameter and buffer is copied by name; entries of ``target`` missing from the
    supernet raise (``load_state_dict(strict=True)``). With ``assign=True`` the target's tensors are replaced
    by (cloned) supernet tensors, so ``target`` may be built on the ``meta`` device and skip initialisation.
    Returns ``target``.
    """
    wanted = target.state_dict(keep_vars=True)
    state: dict[str, torch.Tensor] = {}
    elastic_names = set()
    target_modules = dict(target.named_modules())
    for name, module in supernet.named_modules():
        if isinstance(module, ELASTIC_TYPES) and name in target_modules:
            elastic_names.add(name)
            for key, value in module.active_state_dict().items():
                state[f"{name}.{key}"] = value
    for key, value in supernet.state_dict().items():
        if key in wanted and key not in state and key.rpartition(".")[0] not in elastic_names:
            state[key] = value.detach().clone()
    target.load_state_dict(state, strict=True, assign=assign)
    return target


@torch.no_grad()
def _permute(tensor: torch.Tensor, order: torch.Tensor, dim: int, optimizer: torch.optim.Optimizer | None) -> None:
    """Permute ``tensor`` in place along ``dim`` (first ``len(order)`` entries), and its optimizer state."""
    n = order.numel()
    index = [slice(None)] * tensor.dim()
    index[dim] = slice(0, n)
    view = tensor[tuple(index)]
    view.copy_(view.index_select(dim, order.to(tensor.device)))
    if optimizer is not None and isinstance(tensor, nn.Parameter):
        for value in optimizer.state.get(tensor, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == tensor.shape:
                state_view = value[tuple(index)]
                state_view.copy_(state_view.index_select(dim, order.to(value.device)))


def l1_importance(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """L1 norm of ``weight`` over every dimension but ``dim``: the importance of each channel along ``dim``."""
    dims = tuple(d for d in range(weight.dim()) if d != dim)
    return weight.detach().abs().sum(dim=dims)


@torch.no_grad()
def sort_channels(
    consumer: ElasticConv2d | ElasticLinear,
    producers: Iterable[ElasticLayer] = (),
    co_consumers: Iterable[ElasticConv2d | ElasticLinear] = (),
    *,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.Tensor:
    """Sort the channels read by ``consumer`` by importance (L1 norm of its weights over them, largest first).

    The same permutation is applied to the output side of every layer in ``producers`` (the conv that makes
    the channels, its batch-norm, a depthwise conv in between) and to the input side of ``co_consumers``
    (other layers reading the same channels, e.g. a squeeze-excitation reduce conv), so the network computes
    the same function before and after; with ``optimizer``, momentum buffers follow their weights.
    Returns the permutation (new position -> old channel).
    """
    importance = l1_importance(consumer.weight, 1)
    order = torch.argsort(importance, descending=True, stable=True)
    consumer.permute_channels(order, "in", optimizer)
    for layer in producers:
        layer.permute_channels(order, "out", optimizer)
    for layer in co_consumers:
        layer.permute_channels(order, "in", optimizer)
    return order


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90% of it (MobileNet rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


__all__ = [
    "ELASTIC_TYPES",
    "ElasticBatchNorm2d",
    "ElasticConv2d",
    "ElasticDepthwiseConv2d",
    "ElasticLayer",
    "ElasticLinear",
    "fold_batchnorm",
    "l1_importance",
    "load_active_weights",
    "make_divisible",
    "sort_channels",
]

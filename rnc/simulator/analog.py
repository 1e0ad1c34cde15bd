"""Accuracy on the crossbars: :func:`to_analog` turns a model into the model its crossbars compute.

Every ``Conv2d`` and ``Linear`` of a deep copy is replaced by an :class:`AnalogLayer` that computes, for a
whole batch at once, what its mapped crossbars would. Everything else (batch-norm, activations, pooling,
residual adds) stays digital and untouched. Inference only; the copy is returned in ``eval()`` mode.

Conventions (and their sources)
-------------------------------
Mapping (im2col; ISAAC, Shafiee et al. ISCA 2016; DNN+NeuroSim, Peng et al. IEDM 2019):
  a conv layer with ``groups`` g is g weight matrices of ``(Cin/g)*K*K`` rows. Rows are tiled over crossbars
  of ``R`` rows (``hw.crossbar_size_for(layer)``, so per-layer sizes are honoured) by *whole input
  channels*, ``floor(R / K*K)`` channels per crossbar at most, as NeuroSim maps convolutions; the
  ``ceil(Cin_g / floor(R/K*K))`` tiles are balanced (same crossbar count, fewer rows each when the
  division is uneven). A kernel larger than ``R`` rows is split by kernel positions. ``Linear`` is a 1x1
  conv. Bias is digital.
Weights (ISAAC Sec. 4; NeuroSim): symmetric per-layer quantization to ``weight_bits``
  (``scale = max|w| / (2**(b-1)-1)``), bit-sliced least significant first into
  ``ceil(weight_bits / cell_bits)`` cells of ``cell_bits`` bits on adjacent columns, digital weight
  ``2**(s*cell_bits)``. ``offset`` encoding stores ``q + 2**(b-1)`` and subtracts ``2**(b-1) * sum(x)``
  digitally (ISAAC's biased weights); ``differential`` stores ``max(q,0)`` and ``max(-q,0)`` on a positive
  and a negative column per slice (NeuroSim, aihwkit).
Cells: level ``l`` (0 .. L-1, ``L = 2**cell_bits``) is the conductance ``G_off + l*dG``; in units of
  ``dG``, ``g_off = (L-1)/(on_off_ratio-1)`` (0 when ``on_off_ratio`` is 0: ideal off state). The
  off-state current of every column is subtracted digitally from the input sums (NeuroSim's dummy-column
  reference, idealized as exact).
Device non-idealities (sampled once at conversion from ``seed`` and the layer's name, so the same seed gives
  the same faulty chip, whatever the device or the other layers):
  - programming variation: ``g <- g * (1 + conductance_sigma * N(0,1))``, clipped at 0 (relative,
    state-proportional, as CrossSim's "proportional" programming error and NeuroSim's device-to-device
    variation);
  - stuck-at faults: each cell independently stuck at ``G_on`` with ``stuck_at_on_rate`` and at ``G_off``
    with ``stuck_at_off_rate`` (NeuroSim's and aihwkit's stuck-at models);
  - drift: ``g <- g * (t/t0)**(-nu)`` with ``nu ~ N(drift_nu, drift_nu_sigma)`` per cell (clipped at 0),
    ``t = drift_time_s``, ``t0 = drift_t0_s``; outputs are multiplied by ``(t/t0)**drift_nu`` (global drift
    compensation, aihwkit's ``GlobalDriftCompensation`` idealized), so only the spread of ``nu`` costs
    accuracy;
  - read noise: ``g <- g * (1 + read_noise_sigma * N(0,1))``, redrawn on every forward pass (one draw per
    cell per batch, seeded by the pass count: reproducible from the same starting point).
IR drop (deliberately first order; CrossSim solves the full resistive network, GENIEx/RxNN learn it):
  the current of the cell on word line ``i`` (0 .. R-1) and bit line ``j`` (0 .. C-1) of an ``R x C``
  crossbar crosses ``(j+1)`` word-line and ``(R-i)`` bit-line wire segments of resistance
  ``r = wire_resistance_ratio * R_on`` in series with the cell, so its effective conductance is
  ``g / (1 + wire_resistance_ratio * (g/G_on) * ((j+1) + (R-i)))``. Error grows with the crossbar size
  and with the cell's conductance, so larger crossbars cost accuracy (NAX, Negi et al. DAC 2022). It
  ignores the currents of the other cells on the same wires (input-dependent drop) and sneak paths.
Inputs (ISAAC's bit-serial inputs; NeuroSim): quantized to ``input_bits`` with a per-layer range
  (``max|x|`` over the calibration batches); without calibration each sample (image, or vector for
  ``Linear``) is scaled by its own abs-max (aihwkit's ``NoiseManagementType.ABS_MAX`` per sample).
  Non-negative inputs use all ``input_bits`` as magnitude; signed inputs use ``input_bits - 1`` magnitude bits
  and are read in two phases (positive and negative parts, the negative one subtracted digitally). A
  magnitude streams in ``ceil(bits / dac_bits)`` slices of ``dac_bits`` bits, least significant first.
ADC (ISAAC; NeuroSim's linear ADC quantizer): each crossbar read converts each column's partial sum over at
  most ``R`` rows with an ``adc_bits`` uniform unipolar ADC: ``code = clip(round(p / step), 0,
  2**adc_bits - 1)``; then shift-and-add in digital: ``sum over input slices, tiles and column slices of
  code * step * 2**(b*dac_bits) * 2**(s*cell_bits)``. The step is one per layer (all crossbars of a layer
  share the ADC reference, set to 12 significant bits: see ``codes_exact_in_float32``). When every read
  conductance lies on the level lattice (an integer multiple of a unit ``u``: 1 for ideal cells and stuck
  cells with a whole-level ``g_off``; ``(t/t0)**-nu`` for drift with no spread in ``nu``) the partial sums
  are multiples of ``u`` and the step is never finer than ``u``
  (a step of ``u`` converts them exactly). Off the lattice (programming variation, drift spread, read noise,
  IR drop, a fractional ``g_off``) the step is not floored: flooring it would round sums that are not
  whole levels, which a finer ADC reference would resolve.
  - ``adc_range="calibrated"`` (default): ``step = max observed partial sum / (2**adc_bits - 1)``, the
    maximum taken over the calibration batches (NeuroSim takes it per batch, dynamically);
  - ``adc_range="full"``: fixed by the hardware, ``step = R * G_on * (2**dac_bits - 1) / (2**adc_bits - 1)``
    (the largest possible sum; ISAAC sizes its ADC for it), no data needed;
  - fixed ranges: ``calibration=analog_ranges(calibrated_model)`` (or a hand-written mapping of
    :class:`AnalogRange`) reuses ranges without data: the ranges are also buffers in ``state_dict()``.

Ideal settings (all non-idealities 0, enough bits) reproduce the float model up to the weight and input
quantization: with ``adc_bits`` at least ``log2(R * (L-1) * (2**dac_bits-1) + 1)`` the ADC is exact.

Deliberately simpler than the sources: one ADC range per layer (no per-column trimming), no ADC
non-linearity or offset, no sense-amplifier or DAC noise, no temporal (cycle-to-cycle) programming noise
beyond the read noise, static first-order IR drop, no weight-noise-aware training.

Speed (the results do not depend on it; ``AnalogLayer.fast_paths = False`` gives the reference path):
- lossless columns: on the lattice, with a step of one unit, a column whose largest possible partial sum
  ``sum(levels) * u * (2**dac_bits - 1)`` is within full scale is converted exactly, so its reads of every
  input slice sum to one convolution of the whole integer input; all such columns of a layer (with their
  shift-and-add weights and the digital offset/off-current corrections) form one plain convolution (with
  ISAAC's 1-bit DACs and 2-bit cells, every column of ResNet-20 on 128-row crossbars);
- the other reads: all tiles, column slices and input slices of a layer are read by one grouped convolution
  per chunk (tiles as groups, the columns read as extra output channels, input slices stacked on the batch),
  then a fused ADC + shift-and-add. On CPU, on-lattice cells are read as an exact integer convolution
  (oneDNN, uint8 input slices x int8 levels, int32 sums) and every code is the exact
  ``round_half_even(P / step)``: computed by oneDNN's requantization to uint8 where float32 provably rounds
  exactly (``codes_exact_in_float32``, ADCs of at most 8 bits), else in float64 by the ADC kernels. Elsewhere
  (off the lattice, GPU) the reads are float32 with the conductances divided by the step.
Conductances with their static non-idealities are computed once at conversion, only read noise per pass.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from rnc.errors import check_names
from rnc.simulator.analog_arith import AnalogError
from rnc.simulator.analog_attention import AnalogMultiheadAttention
from rnc.simulator.analog_geometry import MAPPED
from rnc.simulator.analog_layers import AnalogLayer
from rnc.simulator.hardware import HardwareConfig

__all__ = ["AnalogError", "AnalogLayer", "AnalogRange", "analog_layers", "analog_ranges", "calibrate_analog",
           "to_analog"]

AdcRange = Literal["calibrated", "full"]

UNSUPPORTED = {
    nn.Conv3d: "3-D convolutions are mapped by the workload (depth folded into H) but not simulated here",
    nn.ConvTranspose3d: "3-D convolutions are mapped by the workload (depth folded into H) but not simulated here",
    nn.RNNBase: "recurrent layers have no time axis in the crossbar model",
    nn.RNNCellBase: "recurrent layers have no time axis in the crossbar model",
    nn.Bilinear: "a bilinear form multiplies two activations; it is not a fixed weight matrix",
    nn.Embedding: "an embedding is a table lookup, not a matrix-vector product",
    nn.EmbeddingBag: "an embedding is a table lookup, not a matrix-vector product",
}


@dataclass(frozen=True)
class AnalogRange:
    """Fixed ranges of one layer: its input range (sign from ``input_min``) and the ADC's full scale.

    ``adc_max`` is in units of one cell level times one input level (``None``: the crossbar's full scale).
    """

    input_min: float
    input_max: float
    adc_max: float | None = None


def analog_layers(model: nn.Module) -> Iterator[AnalogLayer]:
    """The crossbar layers of an analog model, in module order."""
    return (m for m in model.modules() if isinstance(m, AnalogLayer))


def to_analog(
    model: nn.Module,
    hw: HardwareConfig,
    *,
    seed: int,
    calibration: Iterable[Any] | Mapping[str, AnalogRange] | None = None,
    adc_range: AdcRange = "calibrated",
    calibration_batches: int = 4,
    check_layer_names: bool = True,
) -> nn.Module:
    """A deep copy of ``model`` whose every Conv2d and Linear computes as its mapped crossbars would.

    Args:
        model: any ``nn.Module``; its Conv2d and Linear layers are mapped, everything else stays digital.
        hw: the hardware (precisions, crossbar sizes per layer, ``hw.nonideal``).
        seed: seeds the faults, variation and drift of every cell and the read noise; same seed, same chip.
        calibration: input batches (a DataLoader, a list of tensors or of ``(inputs, targets)``; the first
            ``calibration_batches`` are used) to calibrate every layer's input range and ADC range; or a
            mapping ``layer name -> AnalogRange`` (e.g. :func:`analog_ranges` of a calibrated model) to fix
            them; or ``None``: per-sample input scaling, and then ``adc_range`` must be ``"full"``.
        adc_range: ``"calibrated"`` (from ``calibration``) or ``"full"`` (the crossbar's full scale).
        calibration_batches: how many batches of ``calibration`` to use.
        check_layer_names: refuse ``hw.layer_crossbar_sizes`` entries that name no Conv2d/Linear of ``model``
            (off for search spaces whose subnets drop layers).

    Returns:
        The analog copy, in eval mode, on the model's device (it follows ``.to(device)``).

    Raises:
        AnalogError: unsupported layers, a missing or empty calibration, unknown layer names in fixed ranges or
            in ``hw.layer_crossbar_sizes`` (with the close matches).
    """
    if adc_range not in ("calibrated", "full"):
        raise AnalogError(f"adc_range={adc_range!r}: expected 'calibrated' or 'full'")
    if not isinstance(hw, HardwareConfig):
        raise AnalogError(f"hw must be a HardwareConfig, got {type(hw).__name__}; use HardwareConfig.resolve(...)")
    unsupported = [f"module {name or type(model).__name__!r} ({type(m).__name__}): {why}"
                   for name, m in model.named_modules() for cls, why in UNSUPPORTED.items() if isinstance(m, cls)]
    if unsupported:
        raise AnalogError(
            "to_analog maps Linear, Conv1d/2d, ConvTranspose1d/2d and MultiheadAttention; these modules hold "
            f"weights it cannot map onto crossbars: {'; '.join(unsupported)}. Replace them or keep them out of "
            "the model"
        )
    lazy = [name for name, m in model.named_modules()
            if isinstance(m, MAPPED) and isinstance(m.weight, nn.parameter.UninitializedParameter)]
    if lazy:
        raise AnalogError(f"lazy layers not initialized: {', '.join(lazy)}; run one forward pass first")
    if calibration is None and adc_range == "calibrated":
        raise AnalogError(
            "to_analog: the ADC range is calibrated on data (adc_range='calibrated') but calibration is None; "
            "pass calibration=<DataLoader or list of input batches>, calibration=analog_ranges(<analog model>) "
            "to reuse fixed ranges, or adc_range='full' for the crossbar's full-scale range"
        )
    if calibration_batches < 1:
        raise AnalogError(f"calibration_batches={calibration_batches}: must be at least 1")

    if check_layer_names and hw.layer_crossbar_sizes:
        mapped = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        check_names("layer", list(hw.layer_crossbar_sizes), mapped, where="to_analog: hw.layer_crossbar_sizes",
                    error=AnalogError)
    analog = copy.deepcopy(model)
    analog = _replace_mapped(analog, hw, seed)
    analog.eval()
    for p in analog.parameters():
        p.requires_grad_(False)

    layers = list(analog_layers(analog))
    if adc_range == "full":
        for layer in layers:
            layer.adc_step.fill_(_full_step(layer))
    if isinstance(calibration, Mapping):
        _apply_fixed_ranges(layers, calibration, adc_range)
    elif calibration is not None:
        calibrate_analog(analog, calibration, batches=calibration_batches, adc=adc_range == "calibrated")
    return analog


def calibrate_analog(model: nn.Module, calibration: Iterable[Any], *, batches: int = 4, adc: bool = True) -> None:
    """(Re)calibrate the input ranges and, with ``adc``, the ADC ranges of an analog model in place.

    Two passes over the first ``batches`` batches: (1) every layer computed with its realized float weights
    records its input range; (2) with inputs quantized, every layer records its largest partial sum before
    the ADC (passing partial sums on unquantized). Read-noise counters restart at 0 afterwards, so a
    calibrated model's outputs depend only on the seed.
    """
    layers = list(analog_layers(model))
    if not layers:
        raise AnalogError("calibrate_analog: the model has no analog layer; convert it with to_analog first")
    device = next(iter(layers)).conductance.device
    inputs = _calibration_inputs(calibration, batches, device)
    for layer in layers:
        layer.observed_min, layer.observed_max = math.inf, 0.0
    _run(model, layers, inputs, "observe_inputs")
    for layer in layers:
        lo = layer.observed_min if math.isfinite(layer.observed_min) else 0.0
        layer.set_ranges(input_min=lo, input_max=layer.observed_max, adc_max=None)
    if adc:
        for layer in layers:
            layer.observed_max = 0.0
        _run(model, layers, inputs, "observe_adc")
        for layer in layers:
            layer.adc_step.fill_(_step(layer, layer.observed_max))
    for layer in layers:
        layer.reads = 0
        layer._cached_plan = None


def analog_ranges(model: nn.Module) -> dict[str, AnalogRange]:
    """The fixed ranges of a calibrated analog model, by layer name (pass back as ``calibration=``)."""
    ranges = {}
    for layer in analog_layers(model):
        if math.isnan(float(layer.input_max)):
            raise AnalogError(f"layer {layer.name!r} has no calibrated input range; calibrate the model first")
        peak = float(layer.input_max)
        adc_max = float(layer.adc_step) * (2**layer.adc_bits - 1)
        ranges[layer.name] = AnalogRange(-peak if bool(layer.input_signed) else 0.0, peak, adc_max)
    return ranges


# -- helpers ------------------------------------------------------------------------------------------------
def _replace_mapped(analog: nn.Module, hw: HardwareConfig, seed: int) -> nn.Module:
    """Replace every mapped module of ``analog`` (in place; returns the root, which may itself be replaced).

    A module reachable under several names (called twice) becomes one analog module, named by its first
    path and put at every path: its weights are stored once. Modules inside a MultiheadAttention belong to it.
    """
    paths: dict[int, list[str]] = {}
    modules: dict[int, nn.Module] = {}
    for name, module in analog.named_modules(remove_duplicate=False):
        if isinstance(module, (*MAPPED, nn.MultiheadAttention)):
            paths.setdefault(id(module), []).append(name)
            modules[id(module)] = module
    attention = [names[0] for key, names in paths.items() if isinstance(modules[key], nn.MultiheadAttention)]
    inside = tuple(f"{name}." for name in attention)
    targets = [(names, modules[key]) for key, names in paths.items()
               if not any(n.startswith(inside) for n in names if inside)]
    if not targets:
        raise AnalogError(f"{type(analog).__name__} has no Conv2d or Linear layer to map onto crossbars")
    for names, module in targets:
        if isinstance(module, nn.MultiheadAttention):
            new: nn.Module = AnalogMultiheadAttention(names[0], module, hw, seed=seed)
        else:
            new = AnalogLayer(names[0], module, hw, seed=seed).to(module.weight.device)
        for name in names:
            if name:
                _replace(analog, name, new)
            else:  # the model is itself one mapped module
                analog = new
    return analog


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _full_step(layer: AnalogLayer) -> float:
    return _step(layer, layer.full_scale_adc_max())


def _step(layer: AnalogLayer, adc_max: float) -> float:
    from rnc.simulator.analog_arith import adc_step_for_range

    return adc_step_for_range(adc_max, layer.adc_bits, layer.level_unit)


def _apply_fixed_ranges(layers: list[AnalogLayer], ranges: Mapping[str, AnalogRange], adc_range: str) -> None:
    names = {layer.name for layer in layers}
    unknown = sorted(set(ranges) - names)
    missing = sorted(names - set(ranges))
    if unknown or missing:
        raise AnalogError(
            "calibration ranges do not match the model's crossbar layers: "
            + (f"unknown {unknown} " if unknown else "")
            + (f"missing {missing}" if missing else "")
        )
    for layer in layers:
        r = ranges[layer.name]
        if not isinstance(r, AnalogRange):
            raise AnalogError(f"calibration[{layer.name!r}] must be an AnalogRange, got {type(r).__name__}")
        layer.set_ranges(input_min=r.input_min, input_max=r.input_max, adc_max=None)
        if adc_range == "calibrated":
            if r.adc_max is None:
                raise AnalogError(f"calibration[{layer.name!r}].adc_max is None; give it or use adc_range='full'")
            layer.adc_step.fill_(_step(layer, r.adc_max))


def _calibration_inputs(calibration: Iterable[Any], batches: int, device: torch.device) -> list[torch.Tensor]:
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    try:
        iterator = iter(calibration)
    except TypeError:
        raise AnalogError(
            f"calibration must be an iterable of input batches (DataLoader, list), got {type(calibration).__name__}"
        ) from None
    inputs = []
    for index, batch in enumerate(itertools.islice(iterator, batches)):
        x = batch[0] if isinstance(batch, list | tuple) and batch else batch
        if not isinstance(x, torch.Tensor):
            raise AnalogError(
                f"calibration batch {index}: expected a tensor or (inputs, targets), got {type(batch).__name__}"
            )
        inputs.append(x.to(device))
    if not inputs:
        raise AnalogError("calibration yielded no batch; pass a DataLoader or a non-empty list of input batches")
    return inputs


def _run(model: nn.Module, layers: list[AnalogLayer], inputs: list[torch.Tensor], mode: str) -> None:
    for layer in layers:
        layer.mode = mode  # type: ignore[assignment]
    try:
        with torch.no_grad():
            for x in inputs:
                model(x)
    finally:
        for layer in layers:
            layer.mode = "analog"

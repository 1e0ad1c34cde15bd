"""Benchmark of rnc.simulator.to_analog: speed against the plain forward pass, and accuracy trends.

    python benchmarks/bench_analog.py speed     # ResNet-20, batch 256, analog vs plain side by side (CPU or GPU)
    python benchmarks/bench_analog.py accuracy  # accuracy vs ADC bits / variation / crossbar size (digits)

Prints Markdown tables (the figures in benchmarks/RESULTS.md). Threads are limited (``--threads``, default 1)
because the machine is shared; ratios are measured side by side, interleaved, and the median is reported.
The speed table times three passes on the same batch: the plain model, the analog copy (fast paths: lossless
columns as one exact convolution, integer reads), and the same analog copy on its reference path (every read
through the ADC in float, the path before the fast paths), and gives the largest output difference between the
two analog paths relative to the largest output.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
from rich.progress import track
from sklearn.datasets import load_digits

from rnc.simulator import HardwareConfig, NonIdealities, to_analog
from rnc.simulator.analog import analog_layers
from rnc.simulator.models import digits_cnn, resnet20


def timed(fn, device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call (CPU time is less disturbed by other jobs on the machine)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def set_fast_paths(model: nn.Module, enabled: bool) -> None:
    """Switch every analog layer between the fast paths and the reference path (every read through the ADC)."""
    for layer in analog_layers(model):
        layer.fast_paths = enabled


def _median_ratio(num: list[tuple[float, float]], den: list[tuple[float, float]], index: int) -> float:
    return statistics.median(a[index] / b[index] for a, b in zip(num, den, strict=False))


def speed(repeats: int, batch: int, dac_bits_filter: list[int] | None, device: torch.device,
          reference_repeats: int) -> None:
    """Plain forward, fast analog forward and reference analog forward, interleaved, on the same batch."""
    torch.manual_seed(0)
    model = resnet20().eval().to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    print(f"Medians of {repeats} interleaved passes ({reference_repeats} of the reference path), batch {batch}, "
          f"{device.type}, {torch.get_num_threads()} thread(s); slowdowns are per-pass ratios to the plain pass, "
          "wall-clock (CPU time).\n")
    print("| input_bits / dac_bits | plain s | analog s | slowdown | reference s | reference slowdown | "
          "speedup | max abs diff / max abs |")
    print("|---|---|---|---|---|---|---|---|")
    for input_bits, dac_bits in ((8, 8), (8, 4), (8, 1)):
        if dac_bits_filter and dac_bits not in dac_bits_filter:
            continue
        hw = HardwareConfig(cell_bits=2, weight_bits=8, input_bits=input_bits, dac_bits=dac_bits, adc_bits=8)
        analog = to_analog(model, hw, seed=0, calibration=[x[:32]])
        plain_s, fast_s, ref_s = [], [], []
        with torch.no_grad():
            model(x)
            fast = analog(x)
            set_fast_paths(analog, False)
            reference = analog(x)
            set_fast_paths(analog, True)
            for index in track(range(repeats), description=f"{input_bits}/{dac_bits}-bit inputs"):
                plain_s.append(timed(lambda: model(x), device))
                fast_s.append(timed(lambda: analog(x), device))  # noqa: B023
                if index < reference_repeats:
                    set_fast_paths(analog, False)
                    ref_s.append(timed(lambda: analog(x), device))  # noqa: B023
                    set_fast_paths(analog, True)
        plain, fast_t, ref_t = (statistics.median(t[0] for t in runs) for runs in (plain_s, fast_s, ref_s))
        diff = float((fast - reference).abs().max() / reference.abs().max())
        print(f"| {input_bits} / {dac_bits} | {plain:.3f} | {fast_t:.3f} | "
              f"**{_median_ratio(fast_s, plain_s, 0):.1f}x** ({_median_ratio(fast_s, plain_s, 1):.1f}x) | "
              f"{ref_t:.3f} | {_median_ratio(ref_s, plain_s, 0):.1f}x ({_median_ratio(ref_s, plain_s, 1):.1f}x) | "
              f"{_median_ratio(ref_s, fast_s, 0):.1f}x ({_median_ratio(ref_s, fast_s, 1):.1f}x) | {diff:.1e} |",
              flush=True)


def digits_model(width: int, epochs: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:1260], order[1260:]
    model = digits_cnn(width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in track(range(epochs), description="training"):
        for batch in train[torch.randperm(len(train))].split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval(), x[train[:256]], x[test], y[test]


def accuracy_tables(seeds: int, width: int, epochs: int) -> None:
    model, calib, x, y = digits_model(width, epochs)

    def acc(m: nn.Module) -> float:
        with torch.no_grad():
            return 100.0 * float((m(x).argmax(1) == y).float().mean())

    print(f"float accuracy: {acc(model):.1f}% on {len(y)} test digits")
    base = dict(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=8)

    def table(title: str, values: list, make) -> None:
        print(f"\n| {title} | accuracy % (mean ± std, {seeds} seeds) |\n|---|---|")
        for value in track(values, description=title):
            accs = [acc(to_analog(model, make(value), seed=s, calibration=[calib])) for s in range(seeds)]
            print(f"| {value} | {np.mean(accs):.1f} ± {np.std(accs):.1f} |", flush=True)

    for rows in (128, 512):
        table(f"ADC bits ({rows} rows)", [8, 6, 5, 4, 3, 2],
              lambda b, r=rows: HardwareConfig(**{**base, "adc_bits": b}, crossbar_rows=r, crossbar_cols=r))
    table("conductance sigma", [0.0, 0.05, 0.1, 0.2, 0.3],
          lambda s: HardwareConfig(**base, nonideal=NonIdealities(conductance_sigma=s)))
    table("stuck-at rate (ON+OFF)", [0.0, 0.01, 0.02, 0.05, 0.1],
          lambda r: HardwareConfig(**base, nonideal=NonIdealities(stuck_at_on_rate=r / 2, stuck_at_off_rate=r / 2)))
    table("crossbar size, IR drop r/R_on=1e-3", [32, 64, 128, 256, 512],
          lambda n: HardwareConfig(**{**base, "adc_bits": 12}, crossbar_rows=n, crossbar_cols=n,
                                   nonideal=NonIdealities(wire_resistance_ratio=1e-3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["speed", "accuracy", "all"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dac-bits", type=int, nargs="+", choices=[8, 4, 1], help="speed: only these DAC widths")
    parser.add_argument("--reference-repeats", type=int, default=1,
                        help="speed: timed passes of the reference path (every read through the ADC in float)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--width", type=int, default=16, help="digits CNN width")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("speed", "all"):
        speed(args.repeats, args.batch, args.dac_bits, torch.device(args.device), args.reference_repeats)
    if args.part in ("accuracy", "all"):
        accuracy_tables(args.seeds, args.width, args.epochs)


if __name__ == "__main__":
    main()

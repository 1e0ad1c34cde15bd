"""Accuracy on the crossbars for a small CNN trained here on scikit-learn's digits (a few seconds, fixed seed)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from rnc.simulator import HardwareConfig, NonIdealities, to_analog
from rnc.simulator.models import digits_cnn

SEEDS = (0, 1, 2)
BASE = dict(cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, adc_bits=8, crossbar_rows=128, crossbar_cols=128)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:1260], order[1260:]
    model = digits_cnn(width=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        for _epoch in range(12):
            for batch in train[torch.randperm(len(train))].split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
    model.eval()
    return model, x[train[:128]], x[test], y[test]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(1) == y).float().mean())


def sweep(trained, values, make_hw) -> list[tuple[float, float]]:
    """(mean, std) accuracy over three seeds for each value."""
    model, calib, x, y = trained
    rows = []
    for value in values:
        accs = [accuracy(to_analog(model, make_hw(value), seed=s, calibration=[calib]), x, y) for s in SEEDS]
        rows.append((float(np.mean(accs)), float(np.std(accs))))
    return rows


def assert_does_not_rise(rows: list[tuple[float, float]]) -> None:
    for (better_mean, better_std), (worse_mean, worse_std) in itertools.pairwise(rows):
        noise = 2 * max(better_std, worse_std) + 0.5
        assert worse_mean <= better_mean + noise, rows


def test_ideal_analog_matches_float(trained):
    model, calib, x, y = trained
    float_acc = accuracy(model, x, y)
    assert float_acc > 90
    ideal = HardwareConfig(**{**BASE, "adc_bits": 12})
    assert abs(accuracy(to_analog(model, ideal, seed=0, calibration=[calib]), x, y) - float_acc) <= 0.5


def test_accuracy_falls_with_adc_bits(trained):
    rows = sweep(trained, [8, 6, 4, 3], lambda bits: HardwareConfig(**{**BASE, "adc_bits": bits}))
    assert_does_not_rise(rows)
    assert rows[-1][0] < rows[0][0] - 5  # 3 bits at 128 rows is too few (NeuroSim needs about 4-5)


def test_accuracy_falls_with_variation(trained):
    rows = sweep(trained, [0.0, 0.1, 0.2, 0.3],
                 lambda sigma: HardwareConfig(**BASE, nonideal=NonIdealities(conductance_sigma=sigma)))
    assert_does_not_rise(rows)
    assert rows[-1][0] < rows[0][0]


def test_accuracy_falls_with_stuck_at_faults(trained):
    rows = sweep(trained, [0.0, 0.02, 0.05, 0.1],
                 lambda rate: HardwareConfig(**BASE, nonideal=NonIdealities(stuck_at_on_rate=rate / 2,
                                                                            stuck_at_off_rate=rate / 2)))
    assert_does_not_rise(rows)
    assert rows[-1][0] < rows[0][0] - 5


def test_larger_crossbars_lose_more_with_ir_drop(trained):
    def hw(size: int) -> HardwareConfig:
        return HardwareConfig(**{**BASE, "crossbar_rows": size, "crossbar_cols": size, "adc_bits": 12},
                              nonideal=NonIdealities(wire_resistance_ratio=1e-3))

    rows = sweep(trained, [32, 128, 512], hw)
    assert_does_not_rise(rows)
    assert rows[-1][0] < rows[0][0]

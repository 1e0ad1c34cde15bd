"""Latency, energy by component and area of a small network with a residual branch, worked out on paper from the
ISAAC preset (ISAAC, ISCA 2016, Table 6; conventions in docs/simulator.md), not from the compiler's output.

Network (input 3x8x8, every conv 'same' padded, so 8x8 = 64 output positions):

    conv1  Conv2d(3, 8, 3)   rows 3*3*3 = 27, columns 8 outputs x 8 slices = 64   (16-bit weights / 2-bit cells)
    conv2  Conv2d(8, 8, 3)   rows 8*3*3 = 72, columns 64        } parallel branches of the residual block,
    short  Conv2d(8, 8, 1)   rows 8,          columns 64        } both fed by conv1, added digitally
    fc     Linear(8, 4)      rows 8,          columns 4 x 8 = 32, after a global average pool (1 position)

ISAAC strategy: every layer alone on its own 128x128 crossbar (one box each, no packing, no duplication): 4
crossbars, 1 IMA (8 crossbars per IMA), 1 tile.

Timing. 16-bit inputs, 1-bit DACs: 16 reads per position. One read lasts max(100 ns, ceil(64 columns / 1 ADC)
/ 1.28 GS/s = 50 ns) = 100 ns (32 columns: 25 ns, still 100 ns).

    conv1: 64 positions x 16 reads x 100 ns = 102,400 ns; conv2 and short: 102,400 ns each; fc: 16 x 100 = 1,600
    latency = conv1 + max(conv2, short) + fc = 102,400 + 102,400 + 1,600 = 206,400 ns (the branches overlap on
    their own crossbars; a chain would take 308,800 ns)
    throughput: the busiest crossbar is busy 102,400 ns per image -> 1e9 / 102,400 = 9,765.625 images/s

Energy per action = power_mw x action_ns (pJ), from the preset:

    crossbar read of all 128x128 cells: 0.3 mW x 100 ns = 30 pJ, so 30 / 16,384 pJ per active cell
    DAC drive: 0.00390625 mW x 100 ns = 0.390625 pJ per active row
    ADC conversion: 2.0 mW x 0.78125 ns = 1.5625 pJ (8 bits: x 2**0) + sample-and-hold 9.765625e-6 x 100 =
        0.0009765625 pJ -> 1.5634765625 pJ per active column
    shift-and-add: IMA 0.05 x 1 + tile 0.05 x 1 = 0.1 pJ per active column
    buffer word (256 bits): eDRAM 20.7 + bus 7.0 + input register 1.24 + output register 0.23 + tile output
        register 1.68 = 30.85 pJ

Reads: conv1, conv2, short 64 x 16 = 1,024 each; fc 16.

    crossbar: 1024 x (27 + 72 + 8) x 64 x 30/16384 + 16 x 8 x 32 x 30/16384 = 3,240 + 8,640 + 960 + 7.5 = 12,847.5
    dac:      1024 x (27 + 72 + 8) x 0.390625 + 16 x 8 x 0.390625 = 10,800 + 28,800 + 3,200 + 50 = 42,850
    adc:      3 x 1024 x 64 x 1.5634765625 + 16 x 32 x 1.5634765625 = 307,392 + 800.5 = 308,192.5
    shift_add: 3 x 1024 x 64 x 0.1 + 16 x 32 x 0.1 = 19,660.8 + 51.2 = 19,712
    buffer: words = ceil(positions x (Cin*k*k + Cout) x 16 bits / 256):
        conv1 64 x 35 x 16 / 256 = 140; conv2 64 x 80 x 16 / 256 = 320; short 64 x 16 x 16 / 256 = 64;
        fc ceil(1 x 12 x 16 / 256) = 1 -> 525 words x 30.85 = 16,196.25
    leakage: the ISAAC preset has none -> 0

Area: 1 IMA + 1 tile's own components (all crossbars are the table's 128x128):

    IMA:  ADCs 8 x 0.0012 + DACs 1024 x 1.66015625e-7 + S&H 1024 x 3.90625e-8 + crossbars 8 x 0.000025
          + shift-add 4 x 0.00006 + input reg 0.0021 + output reg 0.00077 = 0.01312 mm2
    tile: eDRAM 0.083 + bus 0.090 + router 0.25 x 0.151 + sigmoid 2 x 0.0003 + shift-add 0.00006
          + max-pool 0.00024 + output reg 0.0032 = 0.21485 mm2
    area = 0.22797 mm2
"""

from __future__ import annotations

import pytest
import torch.nn as nn

from rnc.simulator import HardwareConfig, compile_workload, trace_workload


class ResidualNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.short = nn.Conv2d(8, 8, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.conv1(x).relu()
        y = self.conv2(x) + self.short(x)
        return self.fc(self.pool(y).flatten(1))


@pytest.fixture(scope="module")
def result():
    workload = trace_workload(ResidualNet(), (3, 8, 8), name="residual")
    return compile_workload(workload, HardwareConfig.preset("isaac"), strategy="isaac")


def test_mapping(result):
    assert result.crossbars_used == 4
    layers = {row["name"]: row for row in result.layers}
    assert {name: layers[name]["crossbars"] for name in layers} == {"conv1": 1, "conv2": 1, "short": 1, "fc": 1}


def test_latency_and_throughput_by_hand(result):
    layers = {row["name"]: row for row in result.layers}
    assert layers["conv1"]["stage_ns"] == pytest.approx(102_400)
    assert layers["fc"]["stage_ns"] == pytest.approx(1_600)
    # the two branches start together, when conv1 finishes
    assert layers["conv2"]["finish_ns"] == pytest.approx(204_800)
    assert layers["short"]["finish_ns"] == pytest.approx(204_800)
    assert result.latency_ns == pytest.approx(206_400)
    assert result.throughput_ips == pytest.approx(9_765.625)


def test_energy_by_component_by_hand(result):
    energy = result.summary()["energy_by_component_pj"]
    assert energy["crossbar"] == pytest.approx(12_847.5)
    assert energy["dac"] == pytest.approx(42_850)
    assert energy["adc"] == pytest.approx(308_192.5)
    assert energy["shift_add"] == pytest.approx(19_712)
    assert energy["buffer"] == pytest.approx(16_196.25)
    assert energy["leakage"] == pytest.approx(0)
    assert result.energy_pj == pytest.approx(12_847.5 + 42_850 + 308_192.5 + 19_712 + 16_196.25)


def test_area_and_edap_by_hand(result):
    assert result.area_mm2 == pytest.approx(0.22797)
    energy = 12_847.5 + 42_850 + 308_192.5 + 19_712 + 16_196.25
    assert result.summary()["edap"] == pytest.approx(energy * 206_400 * 0.22797)

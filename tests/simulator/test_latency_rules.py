"""Latency, throughput, the stop rule and the depthwise mappings on small hand-built graphs, answers by hand.

Hardware throughout: the ``rnc`` preset -- 128x128 crossbars, 8-bit weights in one cell, 8-bit inputs streamed
one bit per read (8 reads per output position), 100 ns per read (one 1.28 GS/s ADC converts up to 128 columns
in 100 ns). So a box that converts <= 128 columns takes 8 x 100 ns = 800 ns per output position it computes.
"""

import pytest

from rnc.simulator import HardwareConfig, Layer, Workload, compile_workload

HW = HardwareConfig.preset("rnc")
US = 1000.0  # ns


def fc(name, positions, preds=(), size=16):
    """A 1x1 conv of ``size x size`` weights (one small box) computing ``positions`` output positions."""
    return Layer(name, "conv", size, size, in_h=positions, in_w=1, out_h=positions, out_w=1, preds=preds)


def fork_join():
    # a (10 positions) -> b (30) and c (20) in parallel -> d (5, joins b and c)
    return Workload("fork", (16, 1, 1), (fc("a", 10), fc("b", 30, (0,)), fc("c", 20, (0,)), fc("d", 5, (1, 2))))


def test_single_image_latency_is_the_critical_path_when_branches_are_on_disjoint_crossbars():
    result = compile_workload(fork_join(), HW, strategy="isaac")  # every layer on its own crossbar
    assert result.crossbars_used == 4
    # stages: a 10 x 800 = 8 us, b 30 x 800 = 24 us, c 20 x 800 = 16 us, d 5 x 800 = 4 us
    starts = [row["start_ns"] for row in result.layers]
    assert starts == [0.0, 8 * US, 8 * US, 32 * US]  # b and c overlap; d waits for the longer branch b
    # critical path a -> b -> d: 8 + 24 + 4 = 36 us (the sum over all layers would be 52 us)
    assert result.latency_ns == pytest.approx(36 * US)
    # pipelined: the slowest crossbar is b's, busy 24 us per image
    assert result.throughput_ips == pytest.approx(1e9 / (24 * US))


def test_layers_sharing_a_crossbar_serialize_on_it():
    result = compile_workload(fork_join(), HW, strategy="rnc", duplicate=False)  # packing: all on one crossbar
    assert result.crossbars_used == 1
    starts = [row["start_ns"] for row in result.layers]
    # b runs 8-32 us; c, on the same crossbar, waits for it: 32-48 us; d 48-52 us
    assert starts == [0.0, 8 * US, 32 * US, 48 * US]
    assert result.latency_ns == pytest.approx(52 * US)
    # pipelined: the one crossbar is busy 8 + 24 + 16 + 4 = 52 us per image
    assert result.throughput_ips == pytest.approx(1e9 / (52 * US))


def off_critical_bottleneck():
    # a (40 positions) -> b (30) -> d (5); c (50) feeds d alone: c has the longest stage but is not critical
    return Workload("offpath", (16, 1, 1), (fc("a", 40), fc("b", 30, (0,)), fc("c", 50), fc("d", 5, (1, 2))))


def test_duplication_shortens_the_critical_path_not_the_longest_stage():
    workload = off_critical_bottleneck()
    # unpacked, one crossbar per layer; the budget leaves room for one copy of one layer
    latency = compile_workload(workload, HW, pack=False, crossbars=5, duplication="latency")
    balance = compile_workload(workload, HW, pack=False, crossbars=5, duplication="balance")
    # critical path a -> b -> d = 32 + 24 + 4 = 60 us; c -> d = 40 + 4 = 44 us.
    # RNC's balancing copies the longest stage, c (40 -> 20 us): the critical path stays 60 us.
    assert [row["copies"] for row in balance.layers] == [1, 1, 2, 1]
    assert balance.latency_ns == pytest.approx(60 * US)
    # latency-driven: the copy goes to the critical layer with the largest gain per cell, a (40 -> 20
    # positions, -16 us; b would gain 12 us, d 1.6 us): 16 + 24 + 4 = 44 us, tied with c -> d.
    assert [row["copies"] for row in latency.layers] == [2, 1, 1, 1]
    assert latency.latency_ns == pytest.approx(44 * US)
    auto = compile_workload(workload, HW, pack=False, crossbars=5)  # faster at equal utilization: replaces
    assert auto.latency_ns == pytest.approx(44 * US)


def full_chain():
    # two layers of one full 128x128 box each: every copy opens a crossbar of its own
    big = dict(in_channels=128, out_channels=128, out_w=1, in_w=1)
    return Workload("chain", (128, 1, 1), (Layer("l0", "conv", in_h=100, out_h=100, **big),
                                           Layer("l1", "conv", in_h=10, out_h=10, preds=(0,), **big)))


def test_stop_rule_leaves_crossbars_unused():
    workload = full_chain()
    # positions per copy: ceil(100 / d0) and ceil(10 / d1), 0.8 us each. A step adds the fewest copies that
    # shorten a stage and is made only if it gains >= min_gain (15%) of the latency:
    #   L = 80 + 8 = 88 us: l0 1->2 copies gains 40 us >= 13.2; l1 1->2 gains 4 us < 13.2   -> l0 x2
    #   L = 40 + 8 = 48 us: l0 2->3 (50 -> 34 positions) gains 12.8 >= 7.2; l1 4 < 7.2     -> l0 x3
    #   L = 27.2 + 8 = 35.2: l0 3->4 (34 -> 25) gains 7.2 >= 5.28; l1 4 < 5.28             -> l0 x4
    #   L = 20 + 8 = 28 us: l0 4->5 gains 4 < 4.2; l1 gains 4 < 4.2                          -> stop
    result = compile_workload(workload, HW, crossbars=10, duplication="latency", min_gain=0.15)
    assert [row["copies"] for row in result.layers] == [4, 1]
    assert result.crossbars_used == 5  # 5 of the 10 crossbars; the other 5 stay unused
    assert result.latency_ns == pytest.approx(28 * US)
    assert result.utilization == pytest.approx(1.0)  # against the 5 crossbars used
    # without the stop rule the budget fills: l0 x5 (ties go to the earlier layer), l1 x2, l0 x6, x7, x8;
    # then no full-box copy fits: l0 ceil(100/8) = 13 positions, l1 5: 10.4 + 4 = 14.4 us on 10 crossbars
    full = compile_workload(workload, HW, crossbars=10, duplication="latency", min_gain=0.0)
    assert [row["copies"] for row in full.layers] == [8, 2]
    assert full.crossbars_used == 10
    assert full.latency_ns == pytest.approx(14.4 * US)


def depthwise(positions=4, channels=8):
    return Workload("dw", (channels, 2, 2), (Layer("dw", "conv", channels, channels, kernel_h=3, kernel_w=3,
                                                     groups=channels, in_h=2, in_w=2, out_h=2,
                                                     out_w=positions // 2),))


@pytest.mark.parametrize(("mapping", "split", "box", "boxes", "stage_us"), [
    # RNC: one 9 x 8 box, one channel per read: 4 positions x 8 reads x 0.8 us
    ("channel-serial", 1, (9, 8), 1, 25.6),
    # block-diagonal: 8 channels on rows 0-71, one column each, read together: 4 x 1 x 0.8 us
    ("block-diagonal", 1, (72, 8), 1, 3.2),
    # two chunks of 4 channels, 36 x 4 each, on two crossbars in parallel
    ("block-diagonal", 2, (36, 4), 2, 3.2),
    # ISAAC: one 9 x 1 box per channel, each on its own crossbar (unpacked)
    ("parallel", 1, (9, 1), 8, 3.2),
])
def test_depthwise_mappings(mapping, split, box, boxes, stage_us):
    workload = depthwise()
    result = compile_workload(workload, HW, crossbars=0, pack=False, depthwise_mapping=mapping,
                              depthwise_split=split)
    row = result.layers[0]
    assert row["boxes"] == boxes and row["crossbars"] == boxes
    assert {(p.rows, p.cols) for p in result.placements} == {box}
    assert sum(p.cells for p in result.placements) == 72  # 8 channels x 9 weights; the rest are zeros
    assert row["stage_ns"] == pytest.approx(stage_us * US)
    # every mapping converts each channel once per position and input bit: 4 x 8 x 8 = 256 ADC conversions
    serial = compile_workload(workload, HW, crossbars=0, pack=False, depthwise_mapping="channel-serial")
    assert result.energy_by_component_pj["adc"] == pytest.approx(serial.energy_by_component_pj["adc"])


def test_parallel_depthwise_packed_onto_one_crossbar_serializes():
    # the compact packing puts all 8 one-channel boxes on one crossbar: 8 x 3.2 us one after another
    result = compile_workload(depthwise(), HW, crossbars=0, depthwise_mapping="parallel")
    assert result.crossbars_used == 1
    assert result.layers[0]["stage_ns"] == pytest.approx(25.6 * US)

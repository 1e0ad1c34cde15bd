"""trace_workload: shapes, counts and the dataflow graph on reference networks."""

import pytest
import torch.nn as nn
import torchvision

from rnc.simulator import WorkloadError, parse_input_shape, trace_workload
from rnc.simulator.models import vgg8


def test_vgg8_counts_match_neurosim():
    workload = trace_workload(vgg8(), (3, 32, 32))
    assert len(workload) == 8
    assert workload.total_weights == 12_973_440
    assert workload.total_macs == 615_917_568
    assert [lay.out_h for lay in workload.layers[:6]] == [32, 32, 16, 16, 8, 8]
    assert all(lay.preds == (i - 1,) for i, lay in enumerate(workload.layers) if i)


def test_squeezenet_branches_and_concat():
    workload = trace_workload(torchvision.models.squeezenet1_1(num_classes=10), "3x64x64")
    assert workload.total_weights == 724_672
    by_name = {lay.name: i for i, lay in enumerate(workload.layers)}
    squeeze = by_name["features.3.squeeze"]
    # expand1x1 and expand3x3 are parallel branches of the squeeze, concatenated into the next squeeze
    assert workload.layers[by_name["features.3.expand1x1"]].preds == (squeeze,)
    assert workload.layers[by_name["features.3.expand3x3"]].preds == (squeeze,)
    assert workload.layers[by_name["features.4.squeeze"]].preds == (
        by_name["features.3.expand1x1"],
        by_name["features.3.expand3x3"],
    )


def test_resnet18_residuals_and_mobilenet_depthwise():
    resnet = trace_workload(torchvision.models.resnet18(num_classes=10), (3, 64, 64))
    names = [lay.name for lay in resnet.layers]
    ds = names.index("layer2.0.downsample.0")
    assert resnet.layers[ds].stride_h == 2 and resnet.layers[ds].kernel_h == 1
    assert len(resnet.layers[names.index("layer1.1.conv1")].preds) == 2  # residual add joins two layers
    mbv3 = trace_workload(torchvision.models.mobilenet_v3_small(num_classes=10), (3, 64, 64))
    depthwise = [lay for lay in mbv3.layers if lay.is_depthwise]
    assert len(depthwise) == 11
    assert all(lay.rows == lay.kernel_h * lay.kernel_w for lay in depthwise)
    assert mbv3.layers[-1].kind == "linear" and mbv3.layers[-1].out_channels == 10


def test_dilated_and_grouped_conv():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=4), nn.ReLU(), nn.Conv2d(16, 4, 1))
    workload = trace_workload(model, (8, 10, 10))
    first = workload.layers[0]
    assert (first.dilation_h, first.groups, first.rows, first.out_h) == (2, 4, 18, 10)


def test_unsupported_layer_names_the_module():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LSTM(4, 4))
    with pytest.raises(WorkloadError, match=r"'2' \(LSTM\)"):
        trace_workload(model, (3, 8, 8))


def test_input_shape_errors():
    assert parse_input_shape("3x64x64") == (3, 64, 64)
    assert parse_input_shape("5x16") == (5, 16)  # a token sequence or a Conv1d signal: the model decides
    with pytest.raises(WorkloadError, match="joined by 'x'"):
        parse_input_shape("3 by 64")
    with pytest.raises(WorkloadError, match="at most 4"):
        parse_input_shape("1x1x3x64x64")
    with pytest.raises(WorkloadError, match="positive"):
        parse_input_shape("3x0x64")

"""Elastic layers: once-for-all kernel transform, channel slicing, export, batch-norm sharing, channel sorting."""

from __future__ import annotations

import torch
from torch import nn

from rnc.search.supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticDepthwiseConv2d,
    ElasticLinear,
    l1_importance,
    make_divisible,
    sort_channels,
)


def test_identity_transform_gives_centre_of_largest_kernel():
    torch.manual_seed(0)
    conv = ElasticConv2d(4, 6, (3, 5, 7))
    assert set(dict(conv.named_parameters())) == {"weight", "kernel_transforms.7to5", "kernel_transforms.5to3"}
    torch.testing.assert_close(conv.kernel_weight(6, 4, 3), conv.weight[:, :, 2:5, 2:5])
    torch.testing.assert_close(conv.kernel_weight(6, 4, 5), conv.weight[:, :, 1:6, 1:6])


def test_kernel_transform_is_learned_and_chained():
    torch.manual_seed(0)
    conv = ElasticConv2d(4, 6, (3, 5, 7))
    with torch.no_grad():
        conv.kernel_transforms["7to5"].mul_(2.0)
    # 5x5 = centre transformed once; 3x3 = centre of the transformed 5x5, transformed again (identity here).
    torch.testing.assert_close(conv.kernel_weight(6, 4, 5), 2 * conv.weight[:, :, 1:6, 1:6])
    torch.testing.assert_close(conv.kernel_weight(6, 4, 3), 2 * conv.weight[:, :, 2:5, 2:5])
    conv.active_kernel = 3
    conv(torch.randn(1, 4, 5, 5)).sum().backward()
    assert conv.kernel_transforms["5to3"].grad is not None and conv.kernel_transforms["7to5"].grad is not None


def test_export_matches_forward_for_every_configuration():
    torch.manual_seed(0)
    conv = ElasticConv2d(8, 16, (3, 5, 7), stride=2, bias=True)
    dw = ElasticDepthwiseConv2d(16, (3, 5, 7))
    linear = ElasticLinear(16, 10)
    x = torch.randn(2, 6, 9, 9)
    for kernel in (3, 5, 7):
        conv.active_kernel, conv.active_in, conv.active_out = kernel, 6, 12
        dw.active_kernel, dw.active_in, dw.active_out = kernel, 12, 12
        y = dw(conv(x))
        exported = nn.Sequential(conv.export(), dw.export())
        assert isinstance(exported[0], nn.Conv2d) and exported[1].groups == 12
        torch.testing.assert_close(exported(x), y)
    linear.active_in, linear.active_out = 12, 7
    feats = torch.randn(3, 12)
    torch.testing.assert_close(linear.export()(feats), linear(feats))
    assert set(linear.export().state_dict()) == {"weight", "bias"}


def test_batchnorm_updates_only_the_active_features():
    bn = ElasticBatchNorm2d(8)
    bn.train()
    bn(torch.randn(16, 5, 3, 3) + 3.0)
    assert torch.all(bn.running_mean[:5] > 0.1) and torch.all(bn.running_mean[5:] == 0)
    bn.eval()
    exported = bn.export(5)
    x = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(exported.eval()(x), bn(x))


def test_sort_channels_preserves_function_and_moves_optimizer_state():
    torch.manual_seed(0)
    expand, bn = ElasticConv2d(4, 12), ElasticBatchNorm2d(12)
    dw, project = ElasticDepthwiseConv2d(12), ElasticConv2d(12, 5)
    net = nn.Sequential(expand, bn, nn.ReLU(), dw, project)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(4, 4, 5, 5)).sum().backward()
    optimizer.step()
    net.eval()
    x = torch.randn(2, 4, 5, 5)
    before = net(x)
    momentum_before = optimizer.state[project.weight]["momentum_buffer"].clone()
    order = sort_channels(project, [expand, bn, dw], optimizer=optimizer)
    torch.testing.assert_close(net(x), before)
    importance = l1_importance(project.weight, 1)
    assert torch.all(importance[:-1] >= importance[1:])
    torch.testing.assert_close(optimizer.state[project.weight]["momentum_buffer"], momentum_before[:, order])


def test_make_divisible():
    assert make_divisible(16 * 6) == 96 and make_divisible(24 * 4) == 96 and make_divisible(3) == 8
    assert make_divisible(100) == 104

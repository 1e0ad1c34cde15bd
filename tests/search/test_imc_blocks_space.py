"""The ``imc-blocks`` space: gene layout, exact network count (brute force), fast workload, supernet."""

import itertools

import numpy as np
import pytest
import torch

from rnc.search.spaces import get_space
from rnc.search.spaces.base import GenomeError
from rnc.search.spaces.imc_blocks import DEFAULT_CARDINALITY, ImcBlocksSpace, ImcNet
from rnc.simulator import HardwareConfig, trace_workload


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and fair to the other tests on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gene_layout_and_default_cardinality():
    space = get_space("imc-blocks")
    assert isinstance(space, ImcBlocksSpace) and space.input_shape == (3, 32, 32)
    names = [g.name for g in space.genes]
    assert names[:4] == ["num_stages", "s1_block", "s1_depth", "s1_width"] and len(names) == 16
    assert space.genes[0].choices == (1, 2, 3, 4, 5)
    assert space.genes[1].choices == ("vgg", "mvgg", "res")
    assert space.cardinality == DEFAULT_CARDINALITY == 1_962_169_992 > 640_000_000
    assert space.cardinality == sum(72**n for n in range(1, 6))
    assert space.genome_count == 5 * 72**5


def _network_signature(space, genome):
    """What makes two networks the same: the layer table and every parameter/buffer shape of the module."""
    module = space.build_module(genome)
    return space.workload(genome).layers, tuple((k, tuple(v.shape)) for k, v in module.state_dict().items())


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (dict(max_stages=2, depths=(1, 2), widths=(4, 8)), 12 + 12**2),
        (dict(max_stages=3, depths=(1, 3), widths=(4,), block_types=("vgg", "res")), 4 + 4**2 + 4**3),
    ],
)
def test_cardinality_equals_brute_force_count(options, expected):
    space = ImcBlocksSpace(input_shape=(1, 8, 8), num_classes=3, **options)
    genomes = [np.array(g) for g in itertools.product(*(range(n) for n in space.n_choices))]
    assert len(genomes) == space.genome_count > expected  # inactive genes make duplicates
    signatures = {_network_signature(space, g) for g in genomes}
    keys = {space.key(g) for g in genomes}
    assert len(signatures) == len(keys) == space.cardinality == expected


def test_inactive_stage_genes_do_not_change_network_or_key():
    space = ImcBlocksSpace()
    values = space.decode(space.sample(np.random.default_rng(4)))
    values["num_stages"] = 2
    a = space.encode({**values, "s4_block": "res", "s5_width": 16})
    b = space.encode({**values, "s4_block": "vgg", "s5_width": 128})
    assert space.key(a) == space.key(b) and not np.array_equal(a, b)
    assert space.workload(a) == space.workload(b)
    assert np.array_equal(space.canonical(a)[7:], np.zeros(9, dtype=np.int64))


def test_block_types_build_what_they_say():
    space = ImcBlocksSpace()
    base = {g.name: g.choices[0] for g in space.genes}
    for block, depth, expected_convs, strides in [
        ("vgg", 2, 2, [1, 1]), ("mvgg", 3, 3, [2, 1, 1]), ("res", 2, 5, [2, 1, 2, 1, 1]),
    ]:
        genome = space.encode({**base, "num_stages": 1, "s1_block": block, "s1_depth": depth, "s1_width": 24})
        convs = [lay for lay in space.workload(genome).layers if lay.kind == "conv"]
        assert len(convs) == expected_convs and [c.stride_h for c in convs] == strides
        assert space.workload(genome).layers[-1].in_channels == 24
        out = space.build_module(genome)(torch.zeros(2, 3, 32, 32))
        assert out.shape == (2, 10)
    res = space.encode({**base, "num_stages": 1, "s1_block": "res", "s1_depth": 2})
    layers = space.workload(res).layers
    assert layers[2].name == "stages.0.units.0.shortcut.conv" and layers[2].kernel_h == 1
    assert layers[-1].preds == (1, 2, 4)  # conv2 + projection of unit 0, conv2 of unit 1 (identity shortcut)


def _assert_same_workload(space, genome):
    fast = space.workload(genome)
    traced = trace_workload(space.build_module(genome), space.input_shape)
    assert fast.layers == traced.layers, space.decode(genome)
    assert (fast.name, fast.input_shape, fast.outputs) == (traced.name, traced.input_shape, traced.outputs)


def test_fast_workload_equals_trace_on_random_genomes():
    rng = np.random.default_rng(0)
    for options in [dict(), dict(input_shape=(1, 8, 8), max_stages=3), dict(input_shape=(3, 29, 35), max_stages=4)]:
        space = ImcBlocksSpace(**options)
        for _ in range(6):
            _assert_same_workload(space, space.sample(rng))


@pytest.mark.slow
def test_fast_workload_equals_trace_on_200_random_genomes():
    rng = np.random.default_rng(2026)
    spaces = [
        ImcBlocksSpace(input_shape=(3, 32, 32), widths=(4, 8, 12)),
        ImcBlocksSpace(input_shape=(1, 13, 11), max_stages=3, num_classes=100),
    ]
    for i in range(200):
        _assert_same_workload(spaces[i % 2], spaces[i % 2].sample(rng))


def test_errors_name_the_problem():
    with pytest.raises(GenomeError, match="max_stages=3"):
        ImcBlocksSpace(input_shape=(1, 8, 8))
    with pytest.raises(GenomeError, match="block_types"):
        ImcBlocksSpace(block_types=("vgg", "inception"))
    with pytest.raises(GenomeError, match="widths"):
        ImcBlocksSpace(widths=())
    with pytest.raises(GenomeError, match="num_stages"):
        ImcBlocksSpace().decode([5] + [0] * 15)
    hw = HardwareConfig()
    space = ImcBlocksSpace()
    assert space.hardware_for(space.largest(), hw) is hw  # no hardware genes: identity


def _randomize_batchnorm(module):
    gen = torch.Generator().manual_seed(0)
    for child in module.modules():
        if isinstance(child, torch.nn.BatchNorm2d):
            child.running_mean.copy_(torch.randn(child.num_features, generator=gen) * 0.1)
            child.running_var.copy_(torch.rand(child.num_features, generator=gen) + 0.5)
            child.weight.data.copy_(torch.rand(child.num_features, generator=gen) + 0.5)


@pytest.mark.parametrize("training", [False, True])
def test_supernet_forward_matches_extracted_subnet(training):
    torch.manual_seed(0)
    space = ImcBlocksSpace(input_shape=(2, 8, 8), max_stages=3, widths=(4, 8, 16), num_classes=5)
    supernet = space.build_supernet()
    _randomize_batchnorm(supernet)
    supernet.train(training)
    x = torch.randn(4, 2, 8, 8)
    rng = np.random.default_rng(1)
    genomes = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(10)]
    for genome in genomes:
        extracted = supernet.extract(genome)
        reference = space.build_module(genome)
        assert isinstance(extracted, ImcNet) and extracted.training == training
        assert str(extracted) == str(reference)
        assert {k: v.shape for k, v in extracted.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()
        }
        supernet.set_active(genome)
        with torch.no_grad():
            assert torch.allclose(supernet(x), extracted(x), atol=1e-5), space.decode(genome)


def test_supernet_shares_weights_between_depths_and_widths():
    torch.manual_seed(0)
    space = ImcBlocksSpace(input_shape=(1, 8, 8), max_stages=2, widths=(4, 8))
    supernet = space.build_supernet()
    base = {g.name: g.choices[0] for g in space.genes}
    small = space.encode({**base, "s1_block": "res", "s1_depth": 1, "s1_width": 4})
    big = space.encode({**base, "s1_block": "res", "s1_depth": 3, "s1_width": 8})
    a, b = supernet.extract(small), supernet.extract(big)
    assert torch.equal(a.stages[0].units[0].conv1.weight, b.stages[0].units[0].conv1.weight[:4])
    # extract leaves the active subnet alone
    supernet.set_active(small)
    supernet.extract(big)
    assert supernet.active_stages == 1 and supernet.stages[0].candidates["res"].depth == 1


def _assert_same_as_strided_pointwise_conv(conv: torch.nn.Module, weight: torch.Tensor) -> None:
    """``conv`` (3 -> 16 channels) gives a plain ``nn.Conv2d(3, 16, 1, 2)``'s output and weight gradients on a
    channels-last input, ``weight`` being its (3 -> 16) weight."""
    reference = torch.nn.Conv2d(3, 16, 1, 2, 0, bias=False)
    reference.weight.data.copy_(weight.detach())
    x = torch.randn(8, 3, 16, 16)
    grad_out = torch.randn(8, 16, 8, 8)
    out = conv(x.contiguous(memory_format=torch.channels_last))
    out.backward(grad_out)
    expected = reference(x)
    expected.backward(grad_out)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(conv.weight.grad[:16, :3], reference.weight.grad, rtol=1e-4, atol=1e-4)


def test_strided_shortcut_gradients_on_channels_last_match_a_plain_conv():
    """The first stage's ``res`` projection (1x1, stride 2, 3 input channels) on channels-last tensors: oneDNN's
    strided 1x1 backward-weights kernel corrupts the heap or returns wrong gradients there (oneDNN #6035); the
    supernet's elastic 1x1 conv (subsampling first, ``rnc.search.layers.pointwise_conv2d``) must give a plain
    ``nn.Conv2d``'s output and gradients."""
    from rnc.search.supernet.elastic import ElasticConv2d

    torch.manual_seed(0)
    space = ImcBlocksSpace(input_shape=(3, 16, 16), max_stages=3, widths=(8, 16))
    supernet = space.build_supernet().to(memory_format=torch.channels_last)
    shortcut = supernet.stages[0].candidates["res"].units[0].shortcut.conv
    assert isinstance(shortcut, ElasticConv2d) and shortcut.kernel_sizes == (1,) and shortcut.stride == 2
    shortcut.active_out = 16
    _assert_same_as_strided_pointwise_conv(shortcut, shortcut.weight[:16, :3])
    exported = shortcut.export()
    assert (exported.kernel_size, exported.stride, exported.padding) == ((1, 1), (2, 2), (0, 0))


def test_standalone_strided_shortcut_avoids_the_strided_pointwise_kernel_and_maps_as_that_conv():
    """A stand-alone network's ``res`` projection shortcut is a :class:`PointwiseConv2d`: the same output,
    gradients and state-dict keys as ``nn.Conv2d(3, w, 1, 2)`` on channels-last input, and the simulator maps it
    as that conv (the traced workload and the fast workload agree on its stride and shapes)."""
    from rnc.search.layers import PointwiseConv2d

    torch.manual_seed(0)
    space = ImcBlocksSpace(input_shape=(3, 16, 16), max_stages=1, widths=(8, 16))
    genome = space.encode({"num_stages": 1, "s1_block": "res", "s1_depth": 1, "s1_width": 16})
    net = space.build_module(genome)
    shortcut = net.stages[0].units[0].shortcut.conv
    assert isinstance(shortcut, PointwiseConv2d)
    assert set(shortcut.state_dict()) == set(torch.nn.Conv2d(3, 16, 1, 2, bias=False).state_dict())
    _assert_same_as_strided_pointwise_conv(shortcut, shortcut.weight)
    traced = trace_workload(net, (3, 16, 16))
    layer = next(item for item in traced.layers if item.name == "stages.0.units.0.shortcut.conv")
    assert (layer.kernel_h, layer.stride_h, layer.in_channels, layer.out_channels) == (1, 2, 3, 16)
    assert traced == space.workload(genome)


@pytest.mark.slow
def test_a_subnet_trained_inside_the_supernet_learns_and_keeps_its_accuracy_when_extracted():
    """Plumbing of the active path: gradients reach the selected candidates and head, and extract + batch-norm
    recalibration give the accuracy the supernet's own forward has (digits 8x8, 2 epochs, one subnet)."""
    from torch.utils.data import DataLoader

    from rnc.search.datasets import load_dataset
    from rnc.search.supernet.evaluate import _materialize, recalibrate_batchnorm, top1_accuracy

    torch.manual_seed(0)
    splits = load_dataset("digits", image_size=8)
    space = ImcBlocksSpace(input_shape=(3, 8, 8), max_stages=2, widths=(8, 16), depths=(1, 2))
    base = {g.name: g.choices[0] for g in space.genes}
    choice = {"num_stages": 2, "s1_block": "res", "s1_width": 16, "s2_block": "vgg", "s2_depth": 2}
    genome = space.encode({**base, **choice})
    supernet = space.build_supernet().to(memory_format=torch.channels_last)
    supernet.set_active(genome)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(splits.train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        for images, labels in loader:
            optimizer.zero_grad()
            logits = supernet(images.contiguous(memory_format=torch.channels_last))
            torch.nn.functional.cross_entropy(logits, labels).backward()
            optimizer.step()
    test = _materialize(splits.test, 512)
    subnet = recalibrate_batchnorm(supernet.extract(genome), [x for x, _ in _materialize(splits.calib, 256)])
    accuracy = top1_accuracy(subnet, test)
    assert accuracy > 0.4  # chance is 0.1; measured 0.56 (2026-11-23)
    supernet.train()
    with torch.no_grad():
        batch_stats_accuracy = sum(int((supernet(x).argmax(1) == y).sum()) for x, y in test) / len(splits.test)
    assert abs(accuracy - batch_stats_accuracy) < 0.1

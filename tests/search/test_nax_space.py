"""The ``nax`` space: genes, cardinality, fast workload vs tracing, crossbar genes, weight-sharing supernet."""

import numpy as np
import pytest
import torch

from rnc.search.spaces import get_space
from rnc.search.spaces.base import GenomeError
from rnc.search.spaces.nax import NaxResNet, NaxSpace
from rnc.simulator import HardwareConfig, trace_workload


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and fair to the other tests on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resnet20_layout_and_cardinality():
    space = NaxSpace()
    assert isinstance(get_space("nax"), NaxSpace)
    assert space.input_shape == (3, 32, 32) and space.num_classes == 10
    assert len(space.slots) == 19 and len(space.genes) == 38
    assert space.genes[0].name == "conv1.kernel" and space.genes[1].name == "conv1.crossbar"
    assert space.genes[1].hardware and not space.genes[0].hardware
    assert space.genes[-1].name == "layer3.2.conv2.crossbar"
    assert space.cardinality == 9**19 == 1_350_851_717_672_992_089
    workload = space.workload(space.smallest())
    # ResNet-20 (option A shortcuts, He et al. 2016: 0.27M parameters): 267,696 conv weights at 3x3 + 640 in fc
    assert len(workload) == 20
    assert workload.total_weights == 267_696 + 640
    assert [lay.out_h for lay in workload.layers if lay.name.endswith("0.conv1")] == [32, 16, 8]


def test_encode_decode_round_trip_and_errors():
    space = NaxSpace()
    rng = np.random.default_rng(1)
    genome = space.sample(rng)
    values = space.decode(genome)
    assert values["conv1.kernel"] in (3, 5, 7) and values["layer2.0.conv1.crossbar"] in (64, 128, 256)
    assert np.array_equal(space.encode(values), genome)
    with pytest.raises(GenomeError, match=r"conv1\.kernel"):
        space.encode({**values, "conv1.kernel": 4})
    with pytest.raises(GenomeError, match="38"):
        space.decode(genome[:-1])
    with pytest.raises(GenomeError, match="odd"):
        NaxSpace(kernel_sizes=(3, 4))


def _assert_same_workload(space, genome):
    fast = space.workload(genome)
    traced = trace_workload(space.build_module(genome), space.input_shape)
    assert fast.layers == traced.layers, space.decode(genome)
    assert (fast.name, fast.input_shape, fast.outputs) == (traced.name, traced.input_shape, traced.outputs)


def test_fast_workload_equals_trace_on_random_genomes():
    rng = np.random.default_rng(0)
    for shape in [(3, 32, 32), (1, 8, 8), (3, 7, 9)]:
        space = NaxSpace(input_shape=shape, num_classes=7)
        for _ in range(6):
            _assert_same_workload(space, space.sample(rng))


@pytest.mark.slow
def test_fast_workload_equals_trace_on_200_random_genomes():
    rng = np.random.default_rng(2026)
    spaces = [NaxSpace(input_shape=(1, 8, 8)), NaxSpace(input_shape=(3, 11, 13), num_classes=100)]
    for i in range(200):
        _assert_same_workload(spaces[i % 2], spaces[i % 2].sample(rng))


def test_fast_workload_residual_preds():
    space = NaxSpace()
    workload = space.workload(space.largest())
    index = {lay.name: i for i, lay in enumerate(workload.layers)}
    # identity shortcuts carry every earlier block output into the next block's first conv
    assert workload.layers[index["layer1.0.conv1"]].preds == (index["conv1"],)
    assert workload.layers[index["layer1.1.conv1"]].preds == (index["conv1"], index["layer1.0.conv2"])
    assert workload.layers[index["layer1.0.conv2"]].preds == (index["layer1.0.conv1"],)
    assert len(workload.layers[index["fc"]].preds) == 10
    assert workload.layers[index["layer3.0.conv1"]].kernel_h == 7


def test_hardware_for_sets_each_conv_crossbar_under_its_traced_name():
    space = NaxSpace()
    values = space.decode(space.sample(np.random.default_rng(3)))
    values["layer2.1.conv2.crossbar"] = 64
    values["conv1.crossbar"] = 256
    genome = space.encode(values)
    base = HardwareConfig(crossbar_rows=128, crossbar_cols=128, layer_crossbar_sizes={"fc": (32, 32)})
    hw = space.hardware_for(genome, base)
    traced_convs = [lay.name for lay in trace_workload(space.build_module(genome), space.input_shape).layers][:-1]
    assert set(hw.layer_crossbar_sizes) == {*traced_convs, "fc"}
    assert hw.crossbar_size_for("layer2.1.conv2") == (64, 64)
    assert hw.crossbar_size_for("conv1") == (256, 256)
    assert hw.crossbar_size_for("fc") == (32, 32)  # the base hardware's own entries are kept
    assert base.layer_crossbar_sizes == {"fc": (32, 32)}  # the base config is not modified


@pytest.mark.slow  # the first compile pays the simulator's Numba JIT
def test_crossbar_genes_reach_the_compiler():
    from rnc.simulator.compiler import compile_workload

    space = NaxSpace()
    small = space.encode({**space.decode(space.smallest()), **{f"{s.name}.crossbar": 64 for s in space.slots}})
    large = space.encode({**space.decode(space.smallest()), **{f"{s.name}.crossbar": 256 for s in space.slots}})
    base = HardwareConfig.preset("isaac")
    workload = space.workload(small)
    assert workload == space.workload(large)  # crossbar genes do not change the network
    used_small = compile_workload(workload, space.hardware_for(small, base), "isaac").crossbars_used
    used_large = compile_workload(workload, space.hardware_for(large, base), "isaac").crossbars_used
    assert used_small > used_large


def _randomize_batchnorm(module):
    gen = torch.Generator().manual_seed(0)
    for child in module.modules():
        if isinstance(child, torch.nn.BatchNorm2d):
            child.running_mean.copy_(torch.randn(child.num_features, generator=gen) * 0.1)
            child.running_var.copy_(torch.rand(child.num_features, generator=gen) + 0.5)
            child.weight.data.copy_(torch.rand(child.num_features, generator=gen) + 0.5)


def test_supernet_forward_matches_extracted_subnet():
    torch.manual_seed(0)
    space = NaxSpace(input_shape=(1, 8, 8), num_classes=10)
    supernet = space.build_supernet()
    _randomize_batchnorm(supernet)
    with torch.no_grad():  # move the kernel transforms off the identity so that they are exercised
        for name, param in supernet.named_parameters():
            if "kernel_transforms" in name:
                param.add_(0.05 * torch.randn_like(param))
    x = torch.randn(3, 1, 8, 8)
    rng = np.random.default_rng(0)
    genomes = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(4)]
    supernet.eval()
    outputs = set()
    for genome in genomes:
        subnet = space.build_module(genome)
        extracted = supernet.extract(genome)
        assert isinstance(extracted, NaxResNet) and not extracted.training
        assert list(extracted.state_dict()) == list(subnet.state_dict())
        assert all(extracted.state_dict()[k].shape == v.shape for k, v in subnet.state_dict().items())
        assert str(extracted) == str(subnet)
        supernet.set_active(genome)
        with torch.no_grad():
            expected = extracted(x)
            assert torch.allclose(supernet(x), expected, atol=1e-5)
        outputs.add(round(float(expected.sum()), 4))
    assert len(outputs) == len(genomes)  # different kernels give different functions


def test_supernet_smaller_kernel_is_transformed_centre():
    torch.manual_seed(0)
    space = NaxSpace(input_shape=(1, 8, 8))
    supernet = space.build_supernet()
    extracted = supernet.extract(space.smallest())
    weight7 = supernet.conv1.weight.detach()
    # with identity transforms, the 3x3 kernel is the centre of the 7x7 one
    assert torch.equal(extracted.conv1.weight, weight7[:, :, 2:5, 2:5])

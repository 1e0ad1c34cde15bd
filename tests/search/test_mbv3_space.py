"""The ``mbv3`` space: genes, exact cardinality, builders, fast workload == traced workload, supernet."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rnc.search.spaces import SPACES, GenomeError, Mbv3Space, UnknownSpaceError, get_space
from rnc.simulator import trace_workload


@pytest.fixture(scope="module")
def space() -> Mbv3Space:
    return get_space("mbv3", resolution=32)


def test_registry_and_errors():
    assert SPACES["mbv3"] is Mbv3Space
    with pytest.raises(UnknownSpaceError, match=r"valid names: .*mbv3"):
        get_space("mobilenet")
    with pytest.raises(ValueError, match="unknown option 'kernel'"):
        get_space("mbv3", kernel=3)
    with pytest.raises(ValueError, match="too small"):
        get_space("mbv3", resolution=4)
    with pytest.raises(ValueError, match="disagrees"):
        get_space("mbv3", input_shape=(3, 32, 32), resolution=64)
    assert get_space("mbv3").input_shape == (3, 64, 64)  # RNC's resolution by default


def test_genes_and_cardinality(space):
    assert len(space.genes) == 36
    assert space.n_choices == [3] * 36
    assert space.cardinality == (9**2 + 9**3 + 9**4) ** 4 == 7371**4
    assert space.genome_count == 3**36
    info = space.describe()
    assert info["cardinality"] == 7371**4 and info["genomes"] == 3**36
    assert info["options"]["input_shape"] == [3, 32, 32]


def test_cardinality_counts_distinct_networks_of_one_stage(space):
    """Enumerate every value of stage 1's genes: distinct canonical genomes == 9**2 + 9**3 + 9**4."""
    base = space.smallest()
    seen = set()
    for combo in itertools.product(range(3), repeat=9):
        genome = base.copy()
        genome[:9] = combo
        seen.add(tuple(space.canonical(genome)[:9]))
    assert len(seen) == 9**2 + 9**3 + 9**4


def test_canonical_genomes_build_identical_networks(space):
    rng = np.random.default_rng(3)
    for _ in range(5):
        genome = space.sample(rng)
        assert space.workload(genome) == space.workload(space.canonical(genome))


def test_encode_decode_roundtrip(space):
    rng = np.random.default_rng(0)
    genome = space.sample(rng)
    values = space.decode(genome)
    assert values["s1_depth"] in (2, 3, 4) and values["s2_b3_kernel"] in (3, 5, 7)
    np.testing.assert_array_equal(space.encode(values), genome)
    with pytest.raises(GenomeError, match="s1_b1_kernel"):
        space.encode({**values, "s1_b1_kernel": 9})


def test_fast_workload_matches_trace_small_sample(space):
    rng = np.random.default_rng(0)
    for genome in [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(3))]:
        assert space.workload(genome) == trace_workload(space.build_module(genome), space.input_shape)


@pytest.mark.slow
def test_fast_workload_matches_trace_200_random_genomes():
    space = get_space("mbv3", resolution=16, width_mult=0.5)  # small modules: tracing dominates, not init
    rng = np.random.default_rng(2026)
    for _ in range(200):
        genome = space.sample(rng)
        fast = space.workload(genome)
        traced = trace_workload(space.build_module(genome), space.input_shape)
        assert fast == traced, space.key(genome)


def test_workload_shapes_at_rnc_resolution():
    space = get_space("mbv3")
    w = space.workload(space.largest())
    names = [layer.name for layer in w.layers]
    assert names[0] == "stem.conv" and names[-1] == "classifier"
    assert w.layers[0].out_h == 32 and w.layers[names.index("head.conv")].in_h == 4
    assert w.layers[-1].out_channels == 10
    dw = w.layers[names.index("stages.0.0.dw")]
    assert dw.is_depthwise and dw.kernel_h == 7 and dw.stride_h == 2


def test_supernet_extract_matches_active_forward(space):
    torch.manual_seed(0)
    supernet = space.build_supernet().eval()
    x = torch.randn(2, *space.input_shape)
    rng = np.random.default_rng(1)
    for genome in [space.largest(), space.smallest(), space.sample(rng)]:
        supernet.set_active(genome)
        expected = supernet(x)
        subnet = supernet.extract(genome).eval()
        assert set(subnet.state_dict()) == set(space.build_module(genome).state_dict())
        torch.testing.assert_close(subnet(x), expected, rtol=1e-5, atol=1e-5)


def test_supernet_inference_with_folded_batchnorm_matches_the_extracted_subnet():
    """In inference mode the supernet folds every block's batch-norm into its conv (``fold_batchnorm``) and runs
    1x1 convs on 1x1 maps as matrix products; with non-trivial batch-norm statistics and affine parameters the
    outputs must still equal the extracted plain network's, at 16x16 (1x1 maps in the last stage and the head),
    and training-mode forwards (batch statistics) must be unaffected."""
    torch.manual_seed(0)
    space = get_space("mbv3", resolution=16)
    supernet = space.build_supernet()
    with torch.no_grad():
        for module in supernet.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    x = torch.randn(4, *space.input_shape).contiguous(memory_format=torch.channels_last)
    rng = np.random.default_rng(3)
    for genome in [space.largest(), space.smallest(), space.sample(rng), space.sample(rng)]:
        supernet.set_active(genome)
        subnet = supernet.extract(genome)
        for training in (False, True):
            supernet.train(training)
            subnet.train(training)
            torch.manual_seed(1)
            expected = subnet(x)
            torch.manual_seed(1)
            torch.testing.assert_close(supernet(x), expected, rtol=1e-4, atol=1e-5)


def test_supernet_channel_sorting_keeps_largest_function(space):
    torch.manual_seed(0)
    supernet = space.build_supernet().eval()
    for module in supernet.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
    x = torch.randn(2, *space.input_shape)
    supernet.set_active(space.largest())
    before = supernet(x)
    supernet.sort_channels()
    torch.testing.assert_close(supernet(x), before, rtol=1e-4, atol=1e-5)
    block = supernet.stages[1][0]
    importance = block.project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_smaller_subnets_are_smaller(space):
    big, small = space.workload(space.largest()), space.workload(space.smallest())
    assert small.total_macs < big.total_macs and small.total_weights < big.total_weights
    assert len(small.layers) < len(big.layers)

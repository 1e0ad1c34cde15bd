"""Optional global hardware genes (``hw.*``) on every space, applied by ``SearchSpace.hardware_for``."""

import math

import numpy as np
import pytest

from rnc.search.spaces import SPACES, get_space
from rnc.search.spaces.base import Gene, GenomeError, SearchSpace
from rnc.search.spaces.hardware_genes import DEFAULT_HARDWARE_CHOICES, parse_hardware_genes
from rnc.simulator import HardwareConfig
from rnc.simulator.hardware import HardwareConfigError

SPEC = {"crossbar_size": [64, 128], "adc_bits": [4, 6, 8], "cell_bits": [1, 2]}


@pytest.mark.parametrize("name", ["mbv3", "nax", "imc-blocks"])
def test_every_registered_space_takes_hardware_genes(name):
    plain = get_space(name)
    space = get_space(name, hardware_genes=SPEC)
    assert type(space) is SPACES[name]
    assert space.network_genes == plain.genes
    assert [g.name for g in space.hardware_genes] == ["hw.crossbar_size", "hw.adc_bits", "hw.cell_bits"]
    assert all(g.hardware for g in space.hardware_genes)
    assert space.genes == plain.genes + space.hardware_genes
    assert space.n_choices == [*plain.n_choices, 2, 3, 2]
    assert space.cardinality == plain.cardinality * 12
    genome = space.sample(np.random.default_rng(0))
    values = space.decode(genome)
    values.update({"hw.crossbar_size": 64, "hw.adc_bits": 6, "hw.cell_bits": 1})
    genome = space.encode(values)
    # the network is that of the genome without its hardware genes
    assert space.workload(genome) == plain.workload(space.network_genome(genome))
    hw = space.hardware_for(genome, HardwareConfig.preset("isaac"))
    assert (hw.adc_bits, hw.cell_bits) == (6, 1)
    assert (hw.crossbar_rows, hw.crossbar_cols) == (64, 64)
    assert space.describe()["genes"][-1] == {"name": "hw.cell_bits", "choices": [1, 2], "hardware": True}


@pytest.mark.parametrize("name", ["mbv3", "nax", "imc-blocks"])
def test_supernets_accept_genomes_with_hardware_genes(name):
    options = {"input_shape": (1, 8, 8), "max_stages": 3} if name == "imc-blocks" else {"input_shape": (1, 8, 8)}
    space = get_space(name, hardware_genes=["adc_bits"], **options)
    supernet = space.build_supernet()
    genome = space.sample(np.random.default_rng(1))
    supernet.set_active(genome)
    extracted = supernet.extract(genome)
    assert list(extracted.state_dict()) == list(space.build_module(genome).state_dict())


def test_with_hardware_genes_copies_and_names_default_choices():
    space = get_space("nax")
    co_design = space.with_hardware_genes(["adc_bits", "hw.cell_bits"])
    assert space.hardware_genes == () and len(space.genes) == 38
    assert [g.choices for g in co_design.hardware_genes] == [
        DEFAULT_HARDWARE_CHOICES["adc_bits"], DEFAULT_HARDWARE_CHOICES["cell_bits"],
    ]
    assert co_design.cardinality == space.cardinality * 5 * 3


def test_per_layer_crossbar_gene_wins_over_global_size():
    space = get_space("nax", hardware_genes={"crossbar_size": [32]})
    values = {**space.decode(space.smallest()), "layer1.0.conv1.crossbar": 256}
    hw = space.hardware_for(space.encode(values), HardwareConfig())
    assert hw.crossbar_size_for("layer1.0.conv1") == (256, 256)
    assert hw.crossbar_size_for("fc") == (32, 32)  # the classifier has no gene of its own


def test_bad_specs_say_what_is_wrong():
    with pytest.raises(HardwareConfigError, match=r"adc_bitz.*adc_bits"):
        parse_hardware_genes({"adc_bitz": [4]})
    with pytest.raises(HardwareConfigError, match=r"adc_bits.*17"):
        parse_hardware_genes({"adc_bits": [8, 17]})
    with pytest.raises(HardwareConfigError, match="no default choices"):
        parse_hardware_genes(["read_ns"])
    with pytest.raises(HardwareConfigError, match="repeat"):
        parse_hardware_genes({"cell_bits": [2, 2]})
    with pytest.raises(HardwareConfigError, match="layer_crossbar_sizes"):
        parse_hardware_genes({"layer_crossbar_sizes": [{}]})
    assert parse_hardware_genes("adc_bits, cell_bits") == {
        "adc_bits": DEFAULT_HARDWARE_CHOICES["adc_bits"], "cell_bits": DEFAULT_HARDWARE_CHOICES["cell_bits"],
    }
    # a gene value that conflicts with the base hardware fails when applied, naming the genes
    space = get_space("imc-blocks", hardware_genes={"cell_bits": [8]})
    with pytest.raises(HardwareConfigError, match=r"hw\.cell_bits=8"):
        space.hardware_for(space.smallest(), HardwareConfig(weight_bits=4))


class _ToySpace(SearchSpace):
    """A subclass written without knowing about hardware genes: class-level genes, own cardinality and
    hardware_for that calls super()."""

    name = "toy"
    genes = (Gene("depth", (1, 2, 3)), Gene("unused", (0, 1)))

    def __init__(self, *, scale: int = 1) -> None:
        super().__init__(input_shape=(1, 4, 4))
        self.scale = scale

    @property
    def cardinality(self) -> int:
        return 3  # "unused" does not change the network

    def build_module(self, genome):
        raise GenomeError("not needed")

    def workload(self, genome):
        raise GenomeError("not needed")

    def build_supernet(self):
        raise GenomeError("not needed")

    def hardware_for(self, genome, hw):
        hw = super().hardware_for(genome, hw)
        return hw.with_updates(read_ns=hw.read_ns * self.scale)


def test_subclasses_unaware_of_hardware_genes_get_them():
    space = _ToySpace(scale=2, hardware_genes={"dac_bits": [1, 2]})
    assert [g.name for g in space.genes] == ["depth", "unused", "hw.dac_bits"]
    assert space.network_cardinality == 3 and space.cardinality == 6
    assert _ToySpace().cardinality == 3 and len(_ToySpace().genes) == 2
    hw = space.hardware_for([2, 1, 1], HardwareConfig(read_ns=10.0))
    assert hw.dac_bits == 2 and math.isclose(hw.read_ns, 20.0)  # global gene and the subclass's own rule
    assert _ToySpace().hardware_for([0, 0], HardwareConfig(read_ns=10.0)).read_ns == 10.0
    with pytest.raises(GenomeError, match="expected 3"):
        space.hardware_for([0, 0], HardwareConfig())


@pytest.mark.parametrize("name", ["mbv3", "nax", "imc-blocks"])
def test_options_rebuild_the_space_with_its_hardware_genes(name: str) -> None:
    space = get_space(name, hardware_genes={"adc_bits": [4, 8]})
    assert space.options["hardware_genes"] == {"adc_bits": [4, 8]}
    rebuilt = get_space(name, **space.options)
    assert rebuilt.options == space.options and [g.name for g in rebuilt.genes] == [g.name for g in space.genes]
    assert space.describe()["options"] == space.options

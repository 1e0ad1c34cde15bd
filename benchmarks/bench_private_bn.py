"""Experiment, not a product option: the ``imc-blocks`` supernet with private batch-norm affine parameters per
number of stages (the switchable batch norm of slimmable networks, Yu et al., ICLR 2019, applied to depth instead
of width), measured with ``bench_supernet.py``.

Every batch-norm layer of every stage keeps one ``(gamma, beta)`` pair per stage count; ``set_active`` points the
layer's ``weight``/``bias`` attributes at the pair of the active subnet's stage count (plain attributes: only the
pairs are parameters, so each takes one optimizer step), so training and extraction read the usual names and
checkpoints hold the pairs. Batch-norm statistics are recalibrated per
subnet as before. The arguments are ``bench_supernet.py``'s (``--space imc-blocks`` required):

    python benchmarks/bench_private_bn.py --space imc-blocks --option max_stages=4 ... --epochs 60 \
        --standalone-json sa500.json --out pbn.json

Results: benchmarks/RESULTS.md, "Issue 10, fourth session (coordinator)", subsection "Private batch norm".
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from torch import nn

from rnc.search.spaces.imc_blocks import ImcBlocksSpace
from rnc.search.supernet.elastic import ElasticBatchNorm2d
from rnc.search.supernet.imc_supernet import ImcSpaceView, ImcSupernet


class PrivateBnImcSupernet(ImcSupernet):
    """:class:`ImcSupernet` whose batch-norm layers hold one affine pair per number of stages."""

    def __init__(self, space: ImcSpaceView) -> None:
        super().__init__(space)
        self._bns = [m for stage in self.stages for m in stage.modules() if isinstance(m, ElasticBatchNorm2d)]
        for bn in self._bns:
            bn.variant_weight = nn.ParameterList(
                nn.Parameter(bn.weight.detach().clone()) for _ in range(space.max_stages)
            )
            bn.variant_bias = nn.ParameterList(nn.Parameter(bn.bias.detach().clone()) for _ in range(space.max_stages))
        self._use_variant(self.active_stages)

    def _use_variant(self, stages: int) -> None:
        # plain attributes, not registered parameters: registered, the active pair would appear twice in
        # ``parameters()`` (under its own name and the variant's) and take two optimizer steps per step
        for bn in self._bns:
            bn._parameters.pop("weight", None)
            bn._parameters.pop("bias", None)
            object.__setattr__(bn, "weight", bn.variant_weight[stages - 1])
            object.__setattr__(bn, "bias", bn.variant_bias[stages - 1])

    def set_active(self, genome) -> None:
        super().set_active(genome)
        if hasattr(self, "_bns"):  # the parent's __init__ calls set_active before the pairs exist
            self._use_variant(self.active_stages)


if __name__ == "__main__":
    ImcBlocksSpace.build_supernet = lambda self: PrivateBnImcSupernet(self)
    sys.argv = ["bench_supernet.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("bench_supernet.py")), run_name="__main__")

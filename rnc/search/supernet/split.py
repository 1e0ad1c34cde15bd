"""A supernet split by number of stages: one weight-sharing part per stage count (``recipe split=stages``).

Few-shot NAS (Zhao et al., ICML 2021) splits a one-shot supernet into sub-supernets, each covering the part of
the space that takes one choice of an operation, and trains them on from the one-shot weights: subnets in
different parts stop sharing weights, so they stop pulling those weights in different directions. Here the
split is on the ``num_stages`` gene (``imc-blocks``): a subnet that ends after stage ``n`` and one that goes on
to stage ``n + 1`` want different things from the shared first stages, and the shared supernet under-rates the
subnets with fewer stages (``benchmarks/RESULTS.md``, "Issue 10, fourth session": Kendall tau 0.77 between a
subnet's stage count and its inherited accuracy, 0.25 for the stand-alone accuracy).

:class:`StageSplitSupernet` holds one full supernet per stage count (``parts[n - 1]`` serves the subnets with
``n`` stages). Until :meth:`StageSplitSupernet.split` every subnet runs on the last part, which is then the
one-shot supernet; :meth:`~StageSplitSupernet.split` copies the last part's weights into every other part, and
from then on each subnet runs on the part of its stage count. Whether the split happened is a buffer, so a
checkpoint restores it. The parts' unused deeper stages cost memory, not compute: the supernet holds ``S``
times the one-shot supernet's parameters for ``S`` stage counts (``imc-blocks`` with ``max_stages=4`` and widths
up to 64: 4 x 1.7 M).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from rnc.search.supernet.recipe import SupernetRecipe, stage_gene_index


class StageSplitSupernet(nn.Module):
    """``S`` supernets built by ``build_part``, one per choice of ``space``'s ``num_stages`` gene.

    Same interface as the supernet it splits: :meth:`set_active`, ``forward`` (images (N, C, H, W) -> logits
    (N, classes)), :meth:`extract`. Raises :class:`~rnc.search.supernet.recipe.RecipeError` when ``space`` has
    no ``num_stages`` gene. ``is_split`` (a bool buffer) records whether :meth:`split` has run.
    """

    def __init__(self, space, build_part: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.space = space
        self._gene = stage_gene_index(space, "split")
        self.parts = nn.ModuleList(build_part() for _ in space.genes[self._gene].choices)
        self.register_buffer("is_split", torch.tensor(False))  # what checkpoints hold
        # the buffer's value as a Python bool, so that choosing a part (every subnet of every step) never reads
        # a tensor, which on a GPU would wait for the device; refreshed after every state-dict load
        self._split = False
        self.register_load_state_dict_post_hook(StageSplitSupernet._read_split_flag)
        self._active_part = len(self.parts) - 1

    @staticmethod
    def _read_split_flag(module: StageSplitSupernet, _incompatible_keys) -> None:
        module._split = bool(module.is_split)

    def part_of(self, genome: Sequence[int] | np.ndarray) -> int:
        """Index of the part that runs ``genome``: its stage count minus one after the split, else the last."""
        return int(genome[self._gene]) if self._split else len(self.parts) - 1

    @torch.no_grad()
    def split(self) -> None:
        """Copy the last part (the one-shot supernet so far) into every other part; later calls do nothing.

        The copy is in place, so an optimizer built over :meth:`parameters` keeps working; the other parts'
        optimizer state (momentum) starts empty, as they have had no gradient yet."""
        if self._split:
            return
        state = self.parts[-1].state_dict()
        for part in self.parts[:-1]:
            part.load_state_dict(state)
        self.is_split.fill_(True)
        self._split = True

    def set_active(self, genome: Sequence[int] | np.ndarray) -> None:
        """Select the subnet of ``genome`` in the part of its stage count for the following forward passes."""
        self._active_part = self.part_of(genome)
        self.parts[self._active_part].set_active(genome)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts[self._active_part](x)

    @torch.no_grad()
    def extract(self, genome: Sequence[int] | np.ndarray) -> nn.Module:
        """``space.build_module(genome)`` with the weights of the part of ``genome``'s stage count."""
        return self.parts[self.part_of(genome)].extract(genome)


def build_supernet_for(space, recipe: SupernetRecipe) -> nn.Module:
    """``space.build_supernet()``, or with ``recipe.split == "stages"`` a :class:`StageSplitSupernet` of it (one
    part per stage count, not split yet): the module that training builds and a checkpoint's weights fit."""
    if recipe.split == "stages":
        return StageSplitSupernet(space, space.build_supernet)
    return space.build_supernet()

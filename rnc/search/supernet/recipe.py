"""Supernet training recipe: which subnets a step trains, against which targets, on what schedule.

:class:`SupernetRecipe` holds the options of :func:`rnc.search.supernet.training.train_supernet` that change
*how* the supernet is trained (not the data or the optimizer): the length of the largest-only warm start, the
number of random subnets per sandwich step, the distillation of the students and progressive shrinking.

:class:`ShrinkSchedule` is progressive shrinking (once-for-all, Cai et al., ICLR 2020, Sec. 3.2 and Fig. 3):
the largest network is trained first; then the elastic dimensions are opened one after the other, in the order
kernel size (``kernel``; ``imc-blocks``' block type, ``block``, is the same kind of per-layer operator choice)
-> depth -> width, each over an equal share of the remaining epochs. As in once-for-all, a dimension opens in
two steps: during the first half of its share only the larger half of its choices are sampled (depth {4, 3}
before {4, 3, 2}; expand ratio {6, 4} before {6, 4, 3}), then all of them. Dimensions not opened yet stay at
their largest choice; dimensions opened earlier keep all their choices. A gene's dimension comes from its name
(:func:`gene_dimension`); genes of no known dimension (hardware genes, which do not change the supernet) are
sampled freely from the start.

Without progressive shrinking (``shrink="none"``, the default) every gene is sampled freely from the first
sandwich epoch on (BigNAS-style, Yu et al. ECCV 2020).

:class:`StageSandwich` is the sandwich rule applied per number of stages (``balance="stages"``, spaces with a
``num_stages`` gene: ``imc-blocks``): every step trains, for every stage count ``n``, the largest and the
smallest subnet with ``n`` stages, and draws the random subnets' stage counts in equal shares. With
``teacher="per-stage"`` the largest subnet of each stage count learns the labels and is the distillation
teacher of the students with that many stages. Both address a bias measured on CIFAR-10 (``benchmarks/
RESULTS.md``, "Issue 10 (d10)"): with one global teacher (the largest subnet, all stages) the supernet
over-rates subnets with many stages, which share the most with the teacher and its head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

#: Order in which progressive shrinking opens the elastic dimensions (once-for-all: kernel, depth, width).
SHRINK_ORDER: tuple[str, ...] = ("kernel", "block", "depth", "width")

DISTILL_MODES: tuple[str, ...] = ("inplace", "none")
SHRINK_MODES: tuple[str, ...] = ("none", "progressive")
BALANCE_MODES: tuple[str, ...] = ("none", "stages")
TEACHER_MODES: tuple[str, ...] = ("largest", "per-stage")
SPLIT_MODES: tuple[str, ...] = ("none", "stages")
#: The gene whose value is a subnet's number of stages (``imc-blocks``); ``balance="stages"`` and
#: ``split="stages"`` need it.
STAGE_GENE = "num_stages"


class RecipeError(ValueError):
    """A recipe option out of range; the message names the option."""


@dataclass(frozen=True)
class SupernetRecipe:
    """How the supernet is trained (defaults: the recipe before these options existed).

    - ``full_epochs``: epochs that train the largest subnet alone first (``None``: a quarter of the epochs);
    - ``random_subnets``: random subnets per sandwich step besides the largest and the smallest (``None``: the
      space's ``supernet_random_subnets``);
    - ``distill``: ``"inplace"`` -- the smaller subnets learn the largest subnet's detached soft predictions
      (in-place distillation, BigNAS / Yu and Huang, ICCV 2019); ``"none"`` -- every subnet learns the labels
      (cross-entropy, label smoothing 0.1, as the largest);
    - ``kd_temperature``: temperature ``T`` of the distillation targets: the students match
      ``softmax(teacher / T)`` with ``log_softmax(student / T)``, the loss scaled by ``T ** 2`` (Hinton et al.
      2015); 1 is plain in-place distillation;
    - ``shrink``: ``"none"`` or ``"progressive"`` (:class:`ShrinkSchedule`);
    - ``balance``: ``"none"`` or ``"stages"`` -- every step also trains the largest and the smallest subnet of
      every stage count, and the random subnets' stage counts come in equal shares (:class:`StageSandwich`;
      needs a ``num_stages`` gene, not with ``shrink="progressive"``);
    - ``teacher``: ``"largest"`` (the largest subnet teaches every student) or ``"per-stage"`` (the largest
      subnet with ``n`` stages learns the labels and teaches the students with ``n`` stages; needs
      ``balance="stages"`` and ``distill="inplace"``);
    - ``split``: ``"none"`` or ``"stages"`` -- few-shot NAS (Zhao et al., ICML 2021) on the number of stages:
      the supernet is trained one-shot until ``split_epoch``, then copied into one part per stage count, and
      every subnet trains and is measured on the part of its stage count from then on
      (:class:`~rnc.search.supernet.split.StageSplitSupernet`; needs a ``num_stages`` gene);
    - ``split_epoch``: the epoch (0-based) at whose start the split happens, with ``split="stages"``
      (``None``: at the first sandwich epoch, i.e. after the largest-only warm start; an earlier epoch is
      moved there, since only the largest subnet trains before it).
    """

    full_epochs: int | None = None
    random_subnets: int | None = None
    distill: Literal["inplace", "none"] = "inplace"
    kd_temperature: float = 1.0
    shrink: Literal["none", "progressive"] = "none"
    balance: Literal["none", "stages"] = "none"
    teacher: Literal["largest", "per-stage"] = "largest"
    split: Literal["none", "stages"] = "none"
    split_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.full_epochs is not None and self.full_epochs < 0:
            raise RecipeError(f"recipe full_epochs must be >= 0, got {self.full_epochs}")
        if self.random_subnets is not None and self.random_subnets < 0:
            raise RecipeError(f"recipe random_subnets must be >= 0, got {self.random_subnets}")
        if self.distill not in DISTILL_MODES:
            raise RecipeError(f"recipe distill must be one of {list(DISTILL_MODES)}, got {self.distill!r}")
        if not self.kd_temperature > 0:
            raise RecipeError(f"recipe kd_temperature must be > 0, got {self.kd_temperature}")
        if self.shrink not in SHRINK_MODES:
            raise RecipeError(f"recipe shrink must be one of {list(SHRINK_MODES)}, got {self.shrink!r}")
        if self.balance not in BALANCE_MODES:
            raise RecipeError(f"recipe balance must be one of {list(BALANCE_MODES)}, got {self.balance!r}")
        if self.teacher not in TEACHER_MODES:
            raise RecipeError(f"recipe teacher must be one of {list(TEACHER_MODES)}, got {self.teacher!r}")
        if self.balance == "stages" and self.shrink == "progressive":
            raise RecipeError("recipe balance=stages does not combine with shrink=progressive; choose one")
        if self.teacher == "per-stage" and (self.balance != "stages" or self.distill != "inplace"):
            raise RecipeError("recipe teacher=per-stage needs balance=stages and distill=inplace")
        if self.split not in SPLIT_MODES:
            raise RecipeError(f"recipe split must be one of {list(SPLIT_MODES)}, got {self.split!r}")
        if self.split_epoch is not None and (self.split != "stages" or self.split_epoch < 0):
            raise RecipeError(f"recipe split_epoch needs split=stages and must be >= 0, got {self.split_epoch}")

    def check_epochs(self, epochs: int) -> None:
        """Raise :class:`RecipeError` when ``split_epoch`` falls at or after the last of ``epochs`` (with the
        largest-only warm start that training resolves: :func:`warm_start_epochs`)."""
        self.split_start(epochs, warm_start_epochs(self.full_epochs, epochs))

    def split_start(self, epochs: int, full_epochs: int) -> int | None:
        """The epoch (0-based) at whose start the supernet splits (``None`` without ``split="stages"``); raises
        :class:`RecipeError` when it is not before ``epochs``."""
        if self.split != "stages":
            return None
        start = max(full_epochs, self.split_epoch or 0)
        if start >= epochs:
            raise RecipeError(
                f"recipe split_epoch {start} is not before the last epoch ({epochs} epochs, {full_epochs} of "
                f"them largest-only); lower split_epoch or train longer"
            )
        return start

    def check_space(self, space) -> None:
        """Raise :class:`RecipeError` when the recipe needs a gene ``space`` lacks (``balance="stages"``,
        ``split="stages"``: a ``num_stages`` gene)."""
        for option in ("balance", "split"):
            if getattr(self, option) == "stages":
                stage_gene_index(space, option)

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> SupernetRecipe:
        """A recipe from ``{option: value}`` (CLI ``--recipe KEY=VALUE``, a config's ``recipe:``); unknown
        options raise :class:`RecipeError` naming them and the known ones."""
        options = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise RecipeError(f"unknown recipe option(s) {unknown}; known: {sorted(known)}")
        if "kd_temperature" in options:
            options["kd_temperature"] = float(options["kd_temperature"])
        for name in ("full_epochs", "random_subnets", "split_epoch"):
            if options.get(name) is not None:
                options[name] = int(options[name])
        return cls(**options)

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults (what a checkpoint's cache key must include)."""
        default = SupernetRecipe()
        return {k: v for k, v in asdict(self).items() if getattr(default, k) != v}


def warm_start_epochs(full_epochs: int | None, epochs: int) -> int:
    """Epochs that train the largest subnet alone: ``full_epochs`` clipped to ``0..epochs``, or a quarter of
    ``epochs`` when it is ``None`` (the recipe's default)."""
    return epochs // 4 if full_epochs is None else max(0, min(int(full_epochs), epochs))


def stage_gene_index(space, option: str) -> int:
    """Index of ``space``'s ``num_stages`` gene; :class:`RecipeError` naming ``option`` (``"balance"``,
    ``"split"``) when the space has none."""
    names = [g.name for g in space.genes]
    if STAGE_GENE not in names:
        raise RecipeError(
            f"recipe {option}=stages needs a {STAGE_GENE!r} gene; space {space.name!r} has none "
            f"(use it with imc-blocks, or drop {option})"
        )
    return names.index(STAGE_GENE)


def gene_dimension(name: str) -> str | None:
    """The elastic dimension a gene belongs to, from its name: ``kernel`` (``s1_b1_kernel``, ``conv1.kernel``),
    ``block`` (``s1_block``), ``depth`` (``s1_depth``, ``num_stages``), ``width`` (``s1_width``,
    ``s1_b1_expand``); ``None`` for any other gene (hardware genes such as ``hw.adc_bits`` or NAX's
    ``conv1.crossbar``)."""
    last = name.replace(".", "_").rsplit("_", 1)[-1]
    if name == "num_stages" or last == "depth":
        return "depth"
    if last == "kernel":
        return "kernel"
    if last == "block":
        return "block"
    if last in ("width", "expand"):
        return "width"
    return None


@dataclass(frozen=True)
class ShrinkPhase:
    """One dimension's share of the epochs: ``[start, stop)``; from ``full_from`` on all its choices."""

    dimension: str
    start: int
    full_from: int
    stop: int


class ShrinkSchedule:
    """Which choices of every gene a sandwich step may sample at a given epoch.

    ``lows(epoch)`` is, per gene, the lowest choice index allowed (choices are ordered smallest to largest, so
    ``n - 1`` means "the largest only"); a sampled genome takes every gene uniformly from ``lows .. n - 1``.
    With ``progressive=False`` every gene is free (low 0) at every epoch.
    """

    def __init__(self, space, *, epochs: int, full_epochs: int, progressive: bool) -> None:
        genes = space.genes
        self.space = space
        self.n_choices = np.array([len(g.choices) for g in genes], dtype=np.int64)
        self.dimensions = [gene_dimension(g.name) if not g.hardware else None for g in genes]
        self.full_epochs = full_epochs
        self.epochs = epochs
        present = [d for d in SHRINK_ORDER if d in self.dimensions] if progressive else []
        bounds = np.linspace(full_epochs, epochs, len(present) + 1).round().astype(int)
        self.phases = [
            ShrinkPhase(d, int(a), int(a + (b - a) // 2), int(b))
            for d, a, b in zip(present, bounds[:-1], bounds[1:], strict=True)
        ]

    @property
    def progressive(self) -> bool:
        return bool(self.phases)

    def lows(self, epoch: int) -> np.ndarray:
        """Lowest allowed choice index of every gene at ``epoch`` (0-based)."""
        if not self.phases:
            return np.zeros_like(self.n_choices)
        lows = self.n_choices - 1  # a dimension not opened yet: its largest choice only
        for gene, dimension in enumerate(self.dimensions):
            if dimension is None:
                lows[gene] = 0
                continue
            phase = next(p for p in self.phases if p.dimension == dimension)
            if epoch >= phase.full_from:
                lows[gene] = 0
            elif epoch >= phase.start:
                lows[gene] = self.n_choices[gene] // 2  # the larger half first: depths {3, 4} of {2, 3, 4}
        return lows

    def phase_name(self, epoch: int) -> str:
        """``full`` before the sandwich epochs, then the dimension being opened (``sandwich`` when none)."""
        if epoch < self.full_epochs:
            return "full"
        current = [p.dimension for p in self.phases if p.start <= epoch < p.stop]
        return f"shrink-{current[0]}" if current else "sandwich"

    def smallest(self, epoch: int) -> np.ndarray:
        """The smallest genome allowed at ``epoch`` (the sandwich's lower slice)."""
        return self.lows(epoch) if self.phases else self.space.smallest()

    def sample(self, rng: np.random.Generator, epoch: int) -> np.ndarray:
        """A random genome allowed at ``epoch``; without progressive shrinking the space's own ``sample``."""
        if not self.phases:
            return self.space.sample(rng)
        lows = self.lows(epoch)
        return np.array([rng.integers(lo, n) for lo, n in zip(lows, self.n_choices, strict=True)], dtype=np.int64)


class StageSandwich:
    """The subnets of one sandwich step, balanced over the number of stages (``balance="stages"``).

    For a space whose gene ``num_stages`` has ``S`` choices: :attr:`largest` and :attr:`smallest` hold, per
    stage count ``n = 1..S`` (index ``n - 1``), the space's largest (smallest) genome with ``num_stages`` set
    to ``n``; :meth:`sample` draws random genomes whose stage counts cycle through ``1..S`` from a random start,
    so ``k`` random subnets hold ``k // S`` or ``k // S + 1`` of every stage count (in expectation the same as
    the space's uniform sampler, without its spread). :meth:`stage_index` is a genome's stage count minus one.
    """

    def __init__(self, space) -> None:
        self.space = space
        self.gene = stage_gene_index(space, "balance")
        self.n_stage_counts = len(space.genes[self.gene].choices)
        self.largest = [self._with_stages(space.largest(), n) for n in range(self.n_stage_counts)]
        self.smallest = [self._with_stages(space.smallest(), n) for n in range(self.n_stage_counts)]

    def _with_stages(self, genome: np.ndarray, index: int) -> np.ndarray:
        genome = np.array(genome, dtype=np.int64)
        genome[self.gene] = index
        return genome

    def stage_index(self, genome: np.ndarray) -> int:
        return int(genome[self.gene])

    def sample(self, rng: np.random.Generator, count: int) -> list[np.ndarray]:
        start = int(rng.integers(self.n_stage_counts))
        return [
            self._with_stages(self.space.sample(rng), (start + k) % self.n_stage_counts) for k in range(count)
        ]

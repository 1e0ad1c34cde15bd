"""Supernet training recipe: distillation loss, sandwich step, progressive shrinking schedule (tiny settings)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

import rnc
from rnc.search.datasets import load_dataset
from rnc.search.spaces import get_space
from rnc.search.supernet import load_manifest, train_supernet
from rnc.search.supernet.checkpoint import SupernetSpec
from rnc.search.supernet.recipe import (
    RecipeError,
    ShrinkSchedule,
    StageSandwich,
    SupernetRecipe,
    gene_dimension,
)
from rnc.search.supernet.training import StepPlan, plan_step, student_loss, train_step

IMC = {"max_stages": 4, "widths": [16, 24, 32, 48, 64]}  # the CIFAR-10 CPU protocol's imc-blocks space


def _imc_space(**kw):
    return get_space("imc-blocks", input_shape=(3, 16, 16), num_classes=10, **{**IMC, **kw})


def _genes(space, prefix_or_name):
    return [i for i, g in enumerate(space.genes) if g.name.endswith(prefix_or_name)]


# -- distillation loss ------------------------------------------------------------------------------------


def test_inplace_distillation_matches_the_teachers_soft_targets_by_hand():
    # teacher logits [0, ln 3] -> soft targets [1/4, 3/4]; student logits [0, 0] -> log-probabilities ln(1/2):
    # soft cross-entropy = -(1/4 + 3/4) ln(1/2) = ln 2, whatever the label
    teacher = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    student = torch.tensor([[0.0, 0.0]])
    for label in (0, 1):
        loss = student_loss(student, torch.tensor([label]), teacher, SupernetRecipe())
        assert float(loss) == pytest.approx(math.log(2.0))
    # a student that copies the teacher reaches the teacher's entropy: -(1/4 ln 1/4 + 3/4 ln 3/4)
    copy = student_loss(teacher.detach().clone(), torch.tensor([0]), teacher, SupernetRecipe())
    assert float(copy) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    # temperature 2: a uniform student still costs ln 2 per sample, times T^2 = 4
    hot = student_loss(student, torch.tensor([0]), teacher, SupernetRecipe(kd_temperature=2.0))
    assert float(hot) == pytest.approx(4 * math.log(2.0))
    # the teacher's targets are detached: no gradient flows back into the teacher
    student_param = student.clone().requires_grad_(True)
    student_loss(student_param, torch.tensor([0]), teacher, SupernetRecipe()).backward()
    assert teacher.grad is None and student_param.grad is not None
    # d/dz soft-CE = softmax(z) - target = [1/2 - 1/4, 1/2 - 3/4]
    torch.testing.assert_close(student_param.grad, torch.tensor([[0.25, -0.25]]))


def test_no_distillation_uses_the_labels_with_label_smoothing():
    # logits [0, 0, ln 2] -> p = [1/4, 1/4, 1/2]; label 2, smoothing 0.1 over 3 classes: target
    # [1/30, 1/30, 0.9 + 1/30]; loss = (2/30) ln 4 + (28/30) ln 2 = (32/30) ln 2; the teacher plays no part
    logits = torch.tensor([[0.0, 0.0, math.log(2.0)]])
    for teacher in (torch.zeros(1, 3), torch.tensor([[5.0, 0.0, 0.0]])):
        loss = student_loss(logits, torch.tensor([2]), teacher, SupernetRecipe(distill="none"))
        assert float(loss) == pytest.approx(32 / 30 * math.log(2.0))


# -- sandwich step --------------------------------------------------------------------------------------------


def test_train_step_of_the_sandwich_trains_the_largest_and_the_smallest_subnet():
    space = _imc_space()
    torch.manual_seed(0)
    supernet = space.build_supernet()
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    largest, smallest = space.largest(), space.smallest()
    # the largest runs 4 stages of 'res' blocks and the 4-stage head; the smallest one 'vgg' stage of depth 1,
    # width 16, and the 1-stage head: parameters only the smallest uses get a gradient only from a student
    small_head, big_head = supernet.classifiers[0].weight, supernet.classifiers[3].weight
    small_conv = supernet.stages[0].candidates["vgg"].layers[0].conv.weight
    train_step(supernet, supernet, images, labels, StepPlan([largest]), SupernetRecipe())
    assert big_head.grad is not None and float(big_head.grad.abs().sum()) > 0
    assert small_head.grad is None and small_conv.grad is None
    supernet.zero_grad(set_to_none=True)
    train_step(supernet, supernet, images, labels, StepPlan([largest], [smallest], [0]), SupernetRecipe())
    assert float(big_head.grad.abs().sum()) > 0 and float(small_head.grad.abs().sum()) > 0
    # the smallest subnet trains only its first 16 channels of the first vgg conv
    assert float(small_conv.grad[:16].abs().sum()) > 0 and float(small_conv.grad[16:].abs().sum()) == 0


def test_train_step_accumulates_the_student_gradient_of_the_teachers_soft_targets():
    space = _imc_space()
    torch.manual_seed(1)
    supernet = space.build_supernet()
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    largest, smallest = space.largest(), space.smallest()
    train_step(supernet, supernet, images, labels, StepPlan([largest], [smallest], [0]), SupernetRecipe())
    both = supernet.classifiers[0].weight.grad.clone()
    # the same gradient by hand: the smallest subnet's soft cross-entropy to the largest's softmax
    supernet.zero_grad(set_to_none=True)
    supernet.set_active(largest)
    with torch.no_grad():
        target = torch.softmax(supernet(images), dim=1)
    supernet.set_active(smallest)
    (-(target * torch.log_softmax(supernet(images), dim=1)).sum(1).mean()).backward()
    torch.testing.assert_close(both, supernet.classifiers[0].weight.grad)


# -- progressive shrinking ---------------------------------------------------------------------------------


def test_gene_dimensions_from_names():
    assert [gene_dimension(n) for n in ("s1_b2_kernel", "conv1.kernel", "s2_block", "s3_depth", "num_stages")] == [
        "kernel", "kernel", "block", "depth", "depth"]
    assert [gene_dimension(n) for n in ("s1_width", "s4_b4_expand", "conv1.crossbar", "hw.adc_bits")] == [
        "width", "width", None, None]


def test_progressive_schedule_active_choices_per_epoch():
    space = _imc_space()  # genes: num_stages (4 choices); per stage block (3), depth (3), width (5)
    schedule = ShrinkSchedule(space, epochs=10, full_epochs=2, progressive=True)
    # remaining 8 epochs split in three: round(linspace(2, 10, 4)) = 2, 5, 7, 10
    assert [(p.dimension, p.start, p.full_from, p.stop) for p in schedule.phases] == [
        ("block", 2, 3, 5), ("depth", 5, 6, 7), ("width", 7, 8, 10)]
    blocks, depths, widths = _genes(space, "_block"), _genes(space, "_depth"), _genes(space, "_width")
    stages = [0]

    def lows(epoch):
        low = schedule.lows(epoch)
        return {int(low[blocks].max()), int(low[blocks].min())}, int(low[stages][0]), \
            {int(v) for v in low[depths]}, {int(v) for v in low[widths]}

    # (block lows, num_stages low, depth lows, width lows); not opened: largest index (2, 3, 2, 4)
    assert lows(2) == ({1}, 3, {2}, {4})  # blocks: mvgg/res first (3 // 2 = 1)
    assert lows(3) == lows(4) == ({0}, 3, {2}, {4})
    assert lows(5) == ({0}, 2, {1}, {4})  # stages 3-4, depths 2-3 first
    assert lows(6) == ({0}, 0, {0}, {4})
    assert lows(7) == ({0}, 0, {0}, {2})  # widths 32/48/64 first
    assert lows(8) == lows(9) == ({0}, 0, {0}, {0})
    assert [schedule.phase_name(e) for e in range(10)] == [
        "full", "full", "shrink-block", "shrink-block", "shrink-block", "shrink-depth", "shrink-depth",
        "shrink-width", "shrink-width", "shrink-width"]
    rng = np.random.default_rng(0)
    drawn = np.stack([schedule.sample(rng, 2) for _ in range(300)])
    assert set(drawn[:, blocks].ravel()) == {1, 2} and set(drawn[:, widths].ravel()) == {4}
    assert set(drawn[:, depths].ravel()) == {2} and set(drawn[:, 0]) == {3}
    np.testing.assert_array_equal(schedule.smallest(5), schedule.lows(5))


def test_mbv3_schedule_opens_kernel_then_depth_then_expand():
    space = get_space("mbv3", resolution=16)
    schedule = ShrinkSchedule(space, epochs=8, full_epochs=2, progressive=True)
    assert [p.dimension for p in schedule.phases] == ["kernel", "depth", "width"]
    low = schedule.lows(2)  # kernel phase [2, 4), first half: kernels {5, 7}; depth {4}; expand {6}
    names = [g.name for g in space.genes]
    assert {int(low[i]) for i, n in enumerate(names) if n.endswith("kernel")} == {1}
    assert {int(low[i]) for i, n in enumerate(names) if n.endswith("depth") or n.endswith("expand")} == {2}


def test_without_shrinking_the_schedule_is_the_spaces_own_sampler():
    space = _imc_space()
    schedule = ShrinkSchedule(space, epochs=10, full_epochs=2, progressive=False)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for epoch in (2, 9):
        np.testing.assert_array_equal(schedule.sample(a, epoch), space.sample(b))
        np.testing.assert_array_equal(schedule.smallest(epoch), space.smallest())
    assert schedule.phase_name(1) == "full" and schedule.phase_name(2) == "sandwich"


def test_progressive_training_samples_only_opened_choices(monkeypatch):
    splits = load_dataset("digits", image_size=8)
    splits = dataclasses.replace(splits, train=Subset(splits.train, range(128)), test=Subset(splits.test, range(64)))
    space = get_space("imc-blocks", input_shape=(3, 8, 8), max_stages=2, widths=[8, 16])
    calls: list[np.ndarray] = []
    build = space.build_supernet

    def spying_build():
        supernet = build()
        original = supernet.set_active

        def set_active(genome):
            calls.append(np.array(genome))
            original(genome)

        supernet.set_active = set_active
        return supernet

    monkeypatch.setattr(space, "build_supernet", spying_build)
    marks: list[int] = []
    recipe = SupernetRecipe(shrink="progressive", full_epochs=1)
    result = train_supernet(space, splits, epochs=7, seed=0, batch_size=64, progress=False, recipe=recipe,
                            report=lambda _m: marks.append(len(calls)))
    # round(linspace(1, 7, 4)) = 1, 3, 5, 7: block [1, 3), depth [3, 5), width [5, 7), each half "larger half"
    assert [h["phase"] for h in result.history] == ["full"] + ["shrink-block"] * 2 + ["shrink-depth"] * 2 + [
        "shrink-width"] * 2
    per_epoch = [np.stack(calls[a:b]) for a, b in zip([0, *marks[:-1]], marks, strict=True)]
    blocks, depths, widths = _genes(space, "_block"), _genes(space, "_depth"), _genes(space, "_width")
    top = space.largest()
    assert (per_epoch[0] == top).all()  # the largest subnet alone
    fixed = [0, *depths, *widths]  # num_stages, depths and widths stay at their largest during the block phase
    assert (per_epoch[1][:, blocks] >= 1).all() and (per_epoch[1][:, fixed] == top[fixed]).all()
    assert (per_epoch[2][:, blocks] == 0).any() and (per_epoch[2][:, widths] == 1).all()
    assert (per_epoch[3][:, depths] >= 1).all() and (per_epoch[4][:, depths] == 0).any()
    assert (per_epoch[4][:, widths] == 1).all() and (per_epoch[6][:, widths] == 0).any()


# -- stage-balanced sandwich (balance=stages, teacher=per-stage) ---------------------------------------------


def test_stage_sandwich_holds_the_largest_and_smallest_subnet_of_every_stage_count():
    space = _imc_space()  # 4 stages; per stage: block (3 choices), depth (3), width (5)
    stages = StageSandwich(space)
    assert stages.gene == 0 and stages.n_stage_counts == 4
    for n in range(4):  # written out: num_stages index n, every other gene at its last (first) choice
        np.testing.assert_array_equal(stages.largest[n], [n] + [2, 2, 4] * 4)
        np.testing.assert_array_equal(stages.smallest[n], [n] + [0, 0, 0] * 4)
        assert len(space.stages_of(stages.largest[n])) == n + 1
    with pytest.raises(RecipeError, match="num_stages"):
        StageSandwich(get_space("mbv3"))


def test_stage_balanced_random_subnets_hold_every_stage_count_equally():
    stages = StageSandwich(_imc_space())
    rng = np.random.default_rng(0)
    for count in (4, 8, 6, 3):
        drawn = stages.sample(rng, count)
        counts = np.bincount([stages.stage_index(g) for g in drawn], minlength=4)
        assert counts.sum() == count and counts.max() - counts.min() <= 1
    # the other genes still vary: 8 draws are not all alike beyond the stage gene
    drawn = np.stack(stages.sample(rng, 8))
    assert len({tuple(g[1:]) for g in drawn}) > 1


def test_default_plan_draws_the_same_subnets_as_before_the_options():
    space = _imc_space()
    schedule = ShrinkSchedule(space, epochs=10, full_epochs=2, progressive=False)
    plan = plan_step(schedule, None, SupernetRecipe(), np.random.default_rng(5), 3, 4)
    by_hand = np.random.default_rng(5)
    np.testing.assert_array_equal(plan.teachers[0], space.largest())
    expected = [space.smallest()] + [space.sample(by_hand) for _ in range(4)]
    np.testing.assert_array_equal(np.stack(plan.students), np.stack(expected))
    assert plan.teacher_of == [0] * 5


def test_balanced_plans_pair_every_student_with_its_teacher():
    space = _imc_space()
    schedule = ShrinkSchedule(space, epochs=10, full_epochs=2, progressive=False)
    stages = StageSandwich(space)
    balanced = plan_step(schedule, stages, SupernetRecipe(balance="stages"), np.random.default_rng(0), 3, 4)
    # one teacher (the largest); students: the largest of 1..3 stages, the smallest of 1..4 stages, 4 random
    assert len(balanced.teachers) == 1 and len(balanced.students) == 3 + 4 + 4
    assert set(balanced.teacher_of) == {0}
    assert [int(g[0]) for g in balanced.students[:7]] == [0, 1, 2, 0, 1, 2, 3]
    recipe = SupernetRecipe(balance="stages", teacher="per-stage")
    per_stage = plan_step(schedule, stages, recipe, np.random.default_rng(0), 3, 4)
    # four teachers (the largest of 4, 1, 2, 3 stages); every student learns from the teacher with its stage count
    assert [int(t[0]) for t in per_stage.teachers] == [3, 0, 1, 2]
    np.testing.assert_array_equal(per_stage.teachers[0], space.largest())
    assert len(per_stage.students) == 4 + 4
    for genome, teacher in zip(per_stage.students, per_stage.teacher_of, strict=True):
        assert int(per_stage.teachers[teacher][0]) == int(genome[0])
        assert (per_stage.teachers[teacher][1:] >= genome[1:]).all()  # the largest of that stage count


def test_per_stage_teacher_step_accumulates_each_students_own_teacher_gradient():
    space = _imc_space()
    torch.manual_seed(2)
    supernet = space.build_supernet()
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    stages = StageSandwich(space)
    plan = StepPlan([space.largest(), stages.largest[0]], [stages.smallest[0]], [1])
    train_step(supernet, supernet, images, labels, plan, SupernetRecipe(balance="stages", teacher="per-stage"))
    head = supernet.classifiers[0].weight.grad.clone()  # only the 1-stage subnets reach the 1-stage head
    # by hand: the 1-stage largest on the labels plus the 1-stage smallest against the 1-stage largest's softmax
    supernet.zero_grad(set_to_none=True)
    supernet.set_active(stages.largest[0])
    teacher_logits = supernet(images)
    torch.nn.functional.cross_entropy(teacher_logits, labels, label_smoothing=0.1).backward()
    target = torch.softmax(teacher_logits.detach(), dim=1)
    supernet.set_active(stages.smallest[0])
    (-(target * torch.log_softmax(supernet(images), dim=1)).sum(1).mean()).backward()
    torch.testing.assert_close(head, supernet.classifiers[0].weight.grad)
    # the global largest's soft targets would give another gradient: the teacher really is the 1-stage one
    supernet.zero_grad(set_to_none=True)
    train_step(supernet, supernet, images, labels, StepPlan([space.largest(), stages.largest[0]],
                                                            [stages.smallest[0]], [0]), SupernetRecipe())
    assert not torch.allclose(head, supernet.classifiers[0].weight.grad)


def test_balanced_training_records_the_step_and_trains_every_stage_count(tmp_path):
    splits = load_dataset("digits", image_size=8)
    splits = dataclasses.replace(splits, train=Subset(splits.train, range(64)), test=Subset(splits.test, range(32)))
    space = get_space("imc-blocks", input_shape=(3, 8, 8), max_stages=2, widths=[8, 16])
    recipe = SupernetRecipe(balance="stages", teacher="per-stage", random_subnets=2)
    train_supernet(space, splits, epochs=2, seed=0, batch_size=32, out_dir=tmp_path, progress=False, recipe=recipe)
    training = load_manifest(tmp_path)["training"]
    # 2 teachers (largest of 2 and of 1 stage) + 2 smallest (1 and 2 stages) + 2 random
    assert training["subnets_per_step"] == 6
    assert training["recipe"]["balance"] == "stages" and training["recipe"]["teacher"] == "per-stage"
    with pytest.raises(RecipeError, match="num_stages"):
        train_supernet(get_space("mbv3"), splits, epochs=1, progress=False, recipe=SupernetRecipe(balance="stages"))


# -- options, spec and cache key --------------------------------------------------------------------------


def test_recipe_options_are_checked():
    assert SupernetRecipe.from_options({"shrink": "progressive", "kd_temperature": "2"}).kd_temperature == 2.0
    for bad, word in (({"shrink": "ofa"}, "shrink"), ({"distill": "teacher"}, "distill"),
                      ({"kd_temperature": 0}, "kd_temperature"), ({"epochs": 3}, "unknown"),
                      ({"balance": "blocks"}, "balance"), ({"teacher": "all"}, "teacher"),
                      ({"teacher": "per-stage"}, "balance=stages"),
                      ({"teacher": "per-stage", "balance": "stages", "distill": "none"}, "distill=inplace"),
                      ({"balance": "stages", "shrink": "progressive"}, "shrink=progressive")):
        with pytest.raises(RecipeError, match=word):
            SupernetRecipe.from_options(bad)
    SupernetRecipe(balance="stages").check_space(_imc_space())
    with pytest.raises(RecipeError, match="'mbv3' has none"):
        SupernetRecipe(balance="stages").check_space(get_space("mbv3"))


def test_default_recipe_keeps_the_cache_key_and_a_change_moves_it():
    spec = SupernetSpec(space="mbv3", epochs=3)
    # the key as it was before recipes existed: sha256 of the spec's fields without recipe, data_root, download
    data = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("recipe", "data_format", "per_class",
                                                                             "test_per_class")}
    data.update(data_root=None, download=None, package_version=rnc.__version__)
    before = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    assert spec.key() == before
    assert dataclasses.replace(spec, recipe={"distill": "inplace"}).key() == before
    assert dataclasses.replace(spec, recipe={"shrink": "progressive"}).key() != before


def test_recipe_recorded_in_the_manifest(tmp_path):
    splits = load_dataset("digits", image_size=8)
    splits = dataclasses.replace(splits, train=Subset(splits.train, range(64)), test=Subset(splits.test, range(32)))
    space = get_space("imc-blocks", input_shape=(3, 8, 8), max_stages=2, widths=[8, 16])
    train_supernet(space, splits, epochs=2, seed=0, batch_size=32, out_dir=tmp_path, progress=False,
                   recipe=SupernetRecipe(distill="none", random_subnets=1))
    training = load_manifest(tmp_path)["training"]
    assert training["rule"] == "sandwich" and training["random_subnets"] == 1
    assert training["recipe"]["distill"] == "none" and training["recipe"]["full_epochs"] == 0


# -- few-shot split by number of stages (split=stages) ------------------------------------------------------


def _tiny_split(space):
    from rnc.search.supernet.split import StageSplitSupernet

    torch.manual_seed(0)
    return StageSplitSupernet(space, space.build_supernet)


def test_split_supernet_shares_one_part_until_the_split_then_one_part_per_stage_count():
    space = get_space("imc-blocks", input_shape=(3, 8, 8), max_stages=2, widths=[8, 16])
    supernet = _tiny_split(space)
    one_stage = StageSandwich(space).largest[0]
    images = torch.randn(4, 3, 8, 8)
    assert len(supernet.parts) == 2 and not bool(supernet.is_split)
    assert supernet.part_of(one_stage) == 1  # before the split every subnet runs on the last part
    supernet.set_active(one_stage)
    supernet(images).sum().backward()
    assert all(p.grad is None for p in supernet.parts[0].parameters())
    supernet.zero_grad(set_to_none=True)
    supernet.split()
    for a, b in zip(supernet.parts[0].state_dict().values(), supernet.parts[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # after the split a one-stage subnet trains its own part only, and the same subnet of both parts agrees
    supernet.set_active(one_stage)
    assert supernet.part_of(one_stage) == 0
    supernet.eval()
    split_logits = supernet(images)
    supernet.parts[1].set_active(one_stage)
    assert torch.allclose(split_logits, supernet.parts[1].eval()(images))
    supernet.train()
    supernet(images).sum().backward()
    assert any(p.grad is not None for p in supernet.parts[0].parameters())
    assert all(p.grad is None for p in supernet.parts[1].parameters())
    assert supernet.extract(one_stage).eval()(images).shape == (4, space.num_classes)


def test_split_training_splits_at_its_epoch_and_the_checkpoint_restores_the_parts(tmp_path):
    from rnc.search.supernet import load_supernet
    from rnc.search.supernet.split import StageSplitSupernet

    splits = load_dataset("digits", image_size=8)
    splits = dataclasses.replace(splits, train=Subset(splits.train, range(64)), test=Subset(splits.test, range(32)))
    space = get_space("imc-blocks", input_shape=(3, 8, 8), max_stages=2, widths=[8, 16])
    recipe = SupernetRecipe(split="stages", split_epoch=2, full_epochs=1, random_subnets=1)
    result = train_supernet(space, splits, epochs=3, seed=0, batch_size=32, out_dir=tmp_path, progress=False,
                            recipe=recipe)
    trained = result.supernet
    assert isinstance(trained, StageSplitSupernet) and bool(trained.is_split)
    # one epoch after the split the parts have moved apart
    assert not torch.equal(trained.parts[0].classifiers[0].weight, trained.parts[1].classifiers[0].weight)
    assert load_manifest(tmp_path)["training"]["recipe"]["split"] == "stages"
    _, loaded, _ = load_supernet(tmp_path)
    assert isinstance(loaded, StageSplitSupernet) and bool(loaded.is_split)
    one_stage = StageSandwich(space).smallest[0]
    images = torch.randn(4, 3, 8, 8)
    a, b = trained.extract(one_stage).eval(), loaded.extract(one_stage).eval()
    assert torch.allclose(a(images), b(images))


def test_split_options_are_checked():
    assert SupernetRecipe.from_options({"split": "stages", "split_epoch": "5"}).split_epoch == 5
    for bad, word in (({"split": "blocks"}, "split must be"), ({"split_epoch": 3}, "needs split=stages"),
                      ({"split": "stages", "split_epoch": -1}, ">= 0")):
        with pytest.raises(RecipeError, match=word):
            SupernetRecipe.from_options(bad)
    with pytest.raises(RecipeError, match="split=stages needs a 'num_stages' gene"):
        SupernetRecipe(split="stages").check_space(get_space("mbv3"))
    recipe = SupernetRecipe(split="stages", split_epoch=10)
    recipe.check_epochs(11)
    with pytest.raises(RecipeError, match="not before the last epoch"):
        recipe.check_epochs(10)
    # without split_epoch the split comes with the first sandwich epoch: a quarter of the epochs
    assert SupernetRecipe(split="stages").split_start(40, 10) == 10
    assert SupernetRecipe(split="stages", split_epoch=3).split_start(40, 10) == 10
    assert SupernetRecipe().split_start(40, 10) is None

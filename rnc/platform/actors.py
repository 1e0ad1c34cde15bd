"""Shared Ray actors: the ``SimulatorService`` pool (compile + PPA) and the ``SupernetEvaluator`` pool (accuracy).

Both pools are started once per launch by the driver, under names derived from the launch id
(:func:`simulator_names`, :func:`evaluator_names`), and shared by every Tune trial, which looks them up by name
(:class:`ActorPools`). A batch is split into contiguous chunks, one per actor, and results are concatenated in
the order of the batch, so a trial always sees its results in ask order whatever the completion order.

- ``SimulatorService`` warms the Numba JIT at start (one compilation of the space's smallest genome) and caches
  compiled summaries keyed by (genome key, hardware fingerprint) -- the same genome asked twice, by one trial
  or by two, is compiled once.
- ``SupernetEvaluator`` loads the supernet checkpoint once and evaluates batches of genomes; it takes a GPU
  when the cluster has one (``num_gpus`` set by :func:`default_pool_sizes`), and caches accuracies keyed by
  (genome key, hardware fingerprint or ``None``, seed).

Energy is reported as ``energy_uj`` (the compiler's ``energy_pj`` / 1e6) alongside the compiler's own keys.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from rnc.platform.records import SubnetAccuracy
from rnc.simulator.hardware import HardwareConfig

#: Restarts of a dead pool actor (and retries of the batch it was computing) before the trial fails.
ACTOR_RESTARTS = 3


def _say_if_restarted(kind: str) -> bool:
    """In a pool actor's ``__init__``: when Ray is restarting the actor after its worker died, say so on stderr
    (Ray shows it on the driver's console, prefixed with the actor) and return ``True``."""
    import sys

    context = ray.get_runtime_context() if ray.is_initialized() else None
    if context is None or not context.was_current_actor_reconstructed:
        return False
    print(
        f"{kind} {context.get_actor_name()} restarted after its worker died (pid {os.getpid()} now); the batch it "
        f"was computing is retried (up to {ACTOR_RESTARTS} restarts)",
        file=sys.stderr,
        flush=True,
    )
    return True


def simulator_names(launch_id: str, n: int) -> list[str]:
    return [f"rnc-sim-{launch_id}-{i}" for i in range(n)]


def evaluator_names(launch_id: str, n: int) -> list[str]:
    return [f"rnc-eval-{launch_id}-{i}" for i in range(n)]


@dataclass(frozen=True)
class PoolSizes:
    """How many actors of each kind, and what each one reserves."""

    simulators: int
    evaluators: int
    simulator_cpus: float
    evaluator_cpus: float
    evaluator_gpus: float


def default_pool_sizes(
    resources: dict[str, float],
    *,
    needs_accuracy: bool,
    simulators: int | None = None,
    evaluators: int | None = None,
    simulator_cpus: float = 1.0,
    evaluator_cpus: float = 1.0,
) -> PoolSizes:
    """Pool sizes from the config, or from the cluster's resources where the config leaves them out.

    Defaults: with GPUs, one evaluator per GPU (each takes a whole GPU); without GPUs, a quarter of the CPUs (at
    least one) to evaluators. Simulators get the CPUs left after the evaluators' own (``evaluator_cpus`` each, which
    Ray reserves whether or not the evaluator has a GPU) and one for the trials (at least one simulator). No
    evaluators when no objective or constraint needs accuracy.
    """
    cpus = int(resources.get("CPU", 1))
    gpus = int(resources.get("GPU", 0))
    if not needs_accuracy:
        n_eval = 0
    elif evaluators is not None:
        n_eval = max(1, evaluators)
    else:
        n_eval = gpus if gpus > 0 else max(1, cpus // 4)
    gpu_share = 0.0
    if n_eval and gpus > 0:
        gpu_share = 1.0 if n_eval <= gpus else math.floor(gpus / n_eval * 100) / 100
    if simulators is None:
        eval_cpu_total = n_eval * evaluator_cpus  # a GPU evaluator still reserves its CPUs: never oversubscribe
        simulators = max(1, int((cpus - eval_cpu_total - 1) // simulator_cpus))
    return PoolSizes(simulators, n_eval, simulator_cpus, evaluator_cpus, gpu_share)


def default_concurrent_trials(resources: dict[str, float], sizes: PoolSizes, n_trials: int) -> int:
    """Trials run at once when the config leaves ``pools.max_concurrent_trials`` out: the CPUs the pools leave
    free, at least two, at most ``n_trials``.

    A trial mostly waits on the pools and splits each batch across all pool actors, so two trials keep the pools
    busy (one asks, tells and checkpoints while the other's batch is evaluated); every further trial running at
    once costs a worker process (start-up and imports, seconds of CPU) and its share of the free CPUs. Trials
    that start later reuse a finished trial's worker (:func:`rnc.platform.tuning.build_tuner`)."""
    cpus = float(resources.get("CPU", 1))
    pool_cpus = sizes.simulators * sizes.simulator_cpus + sizes.evaluators * sizes.evaluator_cpus
    return max(1, min(n_trials, max(2, int(cpus - pool_cpus))))


class SimulatorService:
    """Compiles (genome, hardware) pairs of one search space and returns PPA summaries, with a result cache.

    Args:
        space_name / space_options: the search space (``rnc.search.get_space``).
        strategy: ``rnc`` or ``isaac`` (``rnc.simulator.compile_many``).
        warm_hardware: the hardware the JIT warm-up compiles against.
    """

    def __init__(
        self,
        space_name: str,
        space_options: dict[str, Any],
        strategy: str = "rnc",
        *,
        warm_hardware: HardwareConfig | None = None,
        seed: int = 0,
    ) -> None:
        from rnc.search.spaces import get_space

        self.restarted = _say_if_restarted("SimulatorService")
        self.space = get_space(space_name, **space_options)
        self.strategy = strategy
        self.seed = int(seed)
        self.cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.hits = 0
        self.misses = 0
        self.compile_s = 0.0
        t0 = time.perf_counter()
        hw = warm_hardware or HardwareConfig.preset("rnc")
        genome = self.space.smallest()
        self._compile([(self.space.workload(genome), self.space.hardware_for(genome, hw))])
        self.warmup_s = time.perf_counter() - t0

    def _compile(self, pairs: list[tuple[Any, HardwareConfig]]) -> list[dict[str, Any]]:
        from rnc.simulator.batch import compile_many

        return list(compile_many(pairs, strategy=self.strategy, seed=self.seed))

    def simulate(
        self, genomes: Sequence[Sequence[int]], hw: HardwareConfig, hw_fingerprint: str | None = None
    ) -> list[dict[str, Any]]:
        """PPA summaries of ``genomes`` on ``hw`` (hardware genes applied per genome), in input order.

        ``hw_fingerprint``: ``hw.fingerprint()``, computed once by the caller (a trial's :class:`TrialPlan`);
        computed here when left out. Genomes of one network (one ``SearchSpace.key``) are compiled once."""
        hw_key = hw_fingerprint or hw.fingerprint()
        keys = [self.space.key(g) for g in genomes]
        todo: dict[str, np.ndarray] = {}
        for key, genome in zip(keys, genomes, strict=True):
            if (key, hw_key) in self.cache:
                self.hits += 1
            elif key not in todo:
                todo[key] = np.asarray(genome, dtype=np.int64)
        if todo:
            t0 = time.perf_counter()
            pairs = [(self.space.workload(g), self.space.hardware_for(g, hw)) for g in todo.values()]
            for key, summary in zip(todo, self._compile(pairs), strict=True):
                self.cache[(key, hw_key)] = _with_energy_uj(summary)
            self.misses += len(todo)
            self.compile_s += time.perf_counter() - t0
        return [dict(self.cache[(key, hw_key)]) for key in keys]

    def describe(self, genomes: Sequence[Sequence[int]]) -> list[tuple[str, str, dict[str, Any]]]:
        """``(network key, label, active genes)`` of every genome (``SearchSpace.key``/``label``/``active_genes``),
        so that search trials need not import the space (and torch)."""
        out = []
        for genome in genomes:
            g = np.asarray(genome, dtype=np.int64)
            out.append((self.space.key(g), self.space.label(g), self.space.active_genes(g)))
        return out

    def plan(self, genome: Sequence[int], hw: HardwareConfig) -> dict[str, Any]:
        """The full compiled mapping plan of one genome (``CompileResult.to_dict()``)."""
        from rnc.simulator.compiler import compile_workload

        g = np.asarray(genome, dtype=np.int64)
        result = compile_workload(
            self.space.workload(g), self.space.hardware_for(g, hw), self.strategy, seed=self.seed,
            check_layer_names=False,  # subnets drop layers; names were checked against the space in preflight
        )
        return result.to_dict()

    def stats(self) -> dict[str, float]:
        return {"hits": self.hits, "misses": self.misses, "compile_s": self.compile_s, "warmup_s": self.warmup_s,
                "restarted": self.restarted}


def _with_energy_uj(summary: dict[str, Any]) -> dict[str, Any]:
    out = dict(summary)
    energy_pj = out.get("energy_pj")
    if energy_pj is not None and "energy_uj" not in out:
        out["energy_uj"] = float(energy_pj) / 1e6
    return out


class SupernetEvaluator:
    """Accuracy of sub-networks of one trained supernet; loads the checkpoint once.

    Args:
        checkpoint_dir: the supernet checkpoint (``rnc.search.supernet.ensure_supernet``).
        threads: torch CPU threads for this actor.
    """

    def __init__(self, checkpoint_dir: str, *, threads: int = 1) -> None:
        import torch

        from rnc.search.supernet import SubnetEvaluator

        self.restarted = _say_if_restarted("SupernetEvaluator")
        torch.set_num_threads(max(1, int(threads)))
        gpu_ids = ray.get_gpu_ids() if ray.is_initialized() else []
        self.device = "cuda" if gpu_ids and torch.cuda.is_available() else "cpu"
        t0 = time.perf_counter()
        self.evaluator = SubnetEvaluator(checkpoint_dir, device=self.device)
        self.load_s = time.perf_counter() - t0
        self.cache: dict[tuple[str, str | None, int], SubnetAccuracy] = {}
        self.evaluate_s = 0.0
        self.evaluated = 0

    def evaluate(
        self, genomes: Sequence[Sequence[int]], hws: Sequence[HardwareConfig | None], seed: int = 0
    ) -> list[SubnetAccuracy]:
        """One :class:`SubnetAccuracy` per genome; ``hws[i]`` given means hardware accuracy is wanted too, on
        ``hws[i]`` with the genome's hardware genes applied (``SearchSpace.hardware_for``)."""
        out = []
        for genome, base_hw in zip(genomes, hws, strict=True):
            g = np.asarray(genome, dtype=np.int64)
            hw = None if base_hw is None else self.evaluator.space.hardware_for(g, base_hw)
            key = (self.evaluator.space.key(g), None if hw is None else hw.fingerprint(), int(seed))
            if key not in self.cache:
                t0 = time.perf_counter()
                measured = self.evaluator.evaluate(g, hw=hw, seed=int(seed))
                self.cache[key] = SubnetAccuracy(measured["accuracy"], measured["hw_accuracy"])
                self.evaluate_s += time.perf_counter() - t0
                self.evaluated += 1
            out.append(self.cache[key])
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "evaluated": self.evaluated,
            "evaluate_s": self.evaluate_s,
            "load_s": self.load_s,
            "restarted": self.restarted,
        }


def start_pools(
    launch_id: str,
    sizes: PoolSizes,
    *,
    space_name: str,
    space_options: dict[str, Any],
    strategy: str,
    warm_hardware: HardwareConfig,
    checkpoint_dir: str | None,
    seed: int,
) -> tuple[list[Any], list[Any]]:
    """Start the named simulator and evaluator actors and wait until every one is ready (JIT warm, weights loaded).

    An actor whose worker dies (killed, out of memory) is restarted by Ray up to :data:`ACTOR_RESTARTS` times and
    the batch it was computing is retried on the restarted actor (``max_restarts`` / ``max_task_retries``: every
    method is a pure function of its arguments, so a retry gives the same answer); a restarted actor says so on
    stderr, which Ray shows on the driver's console, and its ``stats()`` report ``restarted``."""
    sim_cls = ray.remote(max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)(SimulatorService)
    eval_cls = ray.remote(max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)(SupernetEvaluator)
    simulators = [
        sim_cls.options(name=name, num_cpus=sizes.simulator_cpus, lifetime=None).remote(
            space_name, space_options, strategy, warm_hardware=warm_hardware, seed=seed
        )
        for name in simulator_names(launch_id, sizes.simulators)
    ]
    evaluators = []
    if sizes.evaluators:
        if checkpoint_dir is None:
            raise ValueError("evaluators requested but no supernet checkpoint was given")
        threads = max(1, int(sizes.evaluator_cpus))
        evaluators = [
            eval_cls.options(name=name, num_cpus=sizes.evaluator_cpus, num_gpus=sizes.evaluator_gpus).remote(
                checkpoint_dir, threads=threads
            )
            for name in evaluator_names(launch_id, sizes.evaluators)
        ]
    ray.get([a.stats.remote() for a in simulators + evaluators])
    return simulators, evaluators


class ActorPools:
    """A trial's view of the shared pools, found by name; splits batches across actors, keeps input order."""

    def __init__(self, simulator_names: Sequence[str], evaluator_names: Sequence[str], *, offset: int = 0) -> None:
        self.simulators = _rotate([ray.get_actor(n) for n in simulator_names], offset)
        self.evaluators = _rotate([ray.get_actor(n) for n in evaluator_names], offset)

    def simulate(
        self, genomes: Sequence[Sequence[int]], hw: HardwareConfig, hw_fingerprint: str | None = None
    ) -> list[dict[str, Any]]:
        chunks = _split(list(genomes), len(self.simulators))
        fingerprint = hw_fingerprint or hw.fingerprint()
        refs = [
            actor.simulate.remote(chunk, hw, fingerprint)
            for actor, chunk in zip(self.simulators, chunks, strict=False)
            if chunk
        ]
        return [row for part in ray.get(refs) for row in part]

    def describe(self, genomes: Sequence[Sequence[int]]) -> list[tuple[str, str, dict[str, Any]]]:
        """``SimulatorService.describe`` on one simulator actor (cheap, no compiling)."""
        if not genomes:
            return []
        return ray.get(self.simulators[0].describe.remote(list(genomes)))

    def evaluate(
        self, genomes: Sequence[Sequence[int]], hws: Sequence[HardwareConfig | None], seed: int
    ) -> list[SubnetAccuracy]:
        if not genomes:
            return []
        if not self.evaluators:
            raise RuntimeError("accuracy requested but the launch started no SupernetEvaluator actors")
        g_chunks = _split(list(genomes), len(self.evaluators))
        h_chunks = _split(list(hws), len(self.evaluators))
        refs = [
            actor.evaluate.remote(g, h, seed)
            for actor, g, h in zip(self.evaluators, g_chunks, h_chunks, strict=False)
            if g
        ]
        return [row for part in ray.get(refs) for row in part]


def _rotate(items: list[Any], offset: int) -> list[Any]:
    if not items:
        return items
    k = offset % len(items)
    return items[k:] + items[:k]


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    """Contiguous, nearly equal chunks (order preserved)."""
    parts = max(1, min(parts, len(items))) if items else 1
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def local_cpu_count() -> int:
    """CPUs this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

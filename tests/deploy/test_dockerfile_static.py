"""Static checks of deploy/Dockerfile and .dockerignore (no Docker engine needed).

Parses the Dockerfile into stages and instructions (line continuations joined, comments dropped) and checks
what the image promises: a CPU/CUDA build argument, dependencies installed from the lock before any source is
copied, a non-root user and `rnc-platform` as entrypoint of the default (last) stage.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[list[Instruction], list[Stage]]:
    """Global instructions (before the first FROM) and the stages, in order."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a line continuation"
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, args))
        else:
            preamble.append(Instruction(keyword, args))
    return preamble, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[list[Instruction], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def stage_chain(stages: list[Stage], name: str) -> list[Stage]:
    """The stage called ``name`` and the stages it is built FROM, base first."""
    by_name = {s.name: s for s in stages}
    chain = [by_name[name]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


def copy_sources(instruction: Instruction) -> tuple[list[str], str | None]:
    """Sources of a COPY (without the destination) and its --from stage, if any."""
    words = shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
    return paths[:-1], from_stage


def test_variant_build_argument_selects_cpu_or_cuda(dockerfile) -> None:
    preamble, stages = dockerfile
    assert any(i.keyword == "ARG" and i.args == "VARIANT=cpu" for i in preamble), "global ARG VARIANT=cpu"
    deps = {s.name: s for s in stages}["deps"]
    assert any(i.keyword == "ARG" and i.args == "VARIANT" for i in deps.instructions), "deps re-declares ARG VARIANT"
    install = next(i.args for i in deps.instructions if i.keyword == "RUN" and "requirements.lock" in i.args)
    assert re.search(r"\bcpu\)", install) and re.search(r"\bcuda\)", install), "both variants handled"
    assert "exit" in install.split("*)")[1], "an unknown VARIANT fails the build"


def test_default_stage_runs_rnc_platform_as_non_root(dockerfile) -> None:
    _, stages = dockerfile
    runtime = stages[-1]
    assert runtime.name == "runtime", "the last stage is what `docker build` produces without --target"
    users = [i.args for s in stage_chain(stages, "runtime") for i in s.instructions if i.keyword == "USER"]
    assert users, "a USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}
    user = users[-1].split(":")[0]
    creates = [i.args for s in stage_chain(stages, "runtime") for i in s.instructions if i.keyword == "RUN"]
    assert any(re.search(rf"useradd\b.*\b{re.escape(user)}\b", c) for c in creates), f"user {user} is created"
    entrypoints = [i.args for i in runtime.instructions if i.keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["rnc-platform"], "exec-form ENTRYPOINT"
    last = runtime.instructions[-1]
    assert last.keyword in {"CMD", "ENTRYPOINT"}


def test_dependencies_are_installed_before_any_source_is_copied(dockerfile) -> None:
    _, stages = dockerfile
    chain = stage_chain(stages, "runtime")
    assert [s.name for s in chain] == ["base", "deps", "runtime"]
    steps = [i for s in chain for i in s.instructions]
    install_at = next(
        n for n, i in enumerate(steps) if i.keyword == "RUN" and "pip install" in i.args and "requirements" in i.args
    )
    for instruction in steps[:install_at]:
        if instruction.keyword in {"COPY", "ADD"}:
            sources, _ = copy_sources(instruction)
            assert set(sources) <= {"pyproject.toml", "requirements.lock"}, (
                f"only dependency files: {sources}"
            )
    source_copies = [n for n, i in enumerate(steps) if i.keyword in {"COPY", "ADD"} and n > install_at]
    assert source_copies, "the project is copied into the runtime stage after its dependencies"
    sources, from_stage = copy_sources(steps[source_copies[0]])
    assert from_stage == "wheel", "the runtime stage takes the built wheel, not the source tree"
    wheel = {s.name: s for s in stages}["wheel"]
    copied = {src for i in wheel.instructions if i.keyword == "COPY" for src in copy_sources(i)[0]}
    assert {"rnc", "pyproject.toml"} <= copied


def test_every_copied_path_exists_and_is_not_ignored(dockerfile) -> None:
    _, stages = dockerfile
    patterns = read_dockerignore()
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword != "COPY":
                continue
            sources, from_stage = copy_sources(instruction)
            if from_stage:
                continue
            for source in sources:
                assert (ROOT / source).exists(), f"{stage.name}: COPY {source} names a missing path"
                assert not docker_ignored(source, patterns), f"{stage.name}: COPY {source} is in .dockerignore"


def test_cpu_variant_filter_keeps_the_lock_but_cuda_wheels(dockerfile, tmp_path) -> None:
    """Runs the Dockerfile's own grep/sed pipeline on requirements.lock."""
    _, stages = dockerfile
    deps = {s.name: s for s in stages}["deps"]
    install = next(i.args for i in deps.instructions if i.keyword == "RUN" and "requirements.lock" in i.args)
    pipeline = re.search(r"cpu\)\s*(grep .*?> requirements\.image\.txt)", install)
    assert pipeline, "the cpu branch writes requirements.image.txt with grep/sed"
    (tmp_path / "requirements.lock").write_text((ROOT / "requirements.lock").read_text())
    subprocess.run(["bash", "-c", pipeline.group(1)], cwd=tmp_path, check=True)
    lock = (ROOT / "requirements.lock").read_text().split()
    image = (tmp_path / "requirements.image.txt").read_text().split()
    assert not [r for r in image if r.startswith(("nvidia-", "cuda-", "triton=="))]
    torch_pin = next(r for r in lock if r.startswith("torch=="))
    vision_pin = next(r for r in lock if r.startswith("torchvision=="))
    assert f"{torch_pin}+cpu" in image and f"{vision_pin}+cpu" in image
    kept = {r for r in lock if not r.startswith(("nvidia-", "cuda-", "triton==", "torch==", "torchvision=="))}
    assert kept == set(image) - {f"{torch_pin}+cpu", f"{vision_pin}+cpu"}


def test_lock_pins_ray_cluster_extras() -> None:
    """Ray's cluster extras (dashboard for KubeRay, client for ray://) are in the lock the image installs."""
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().split()
        if "==" in line
    }
    assert {"grpcio", "aiohttp-cors", "prometheus-client", "opencensus"} <= locked


def read_dockerignore() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_matches(pattern: str, path: str) -> bool:
    """Docker's rule: a pattern matches a path or any of its parent folders; ``**`` spans folders."""
    pattern = pattern.strip("/")
    parts = path.split("/")
    candidates = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    regex = regex.replace(r"\?", "[^/]")
    return any(re.fullmatch(regex, c) for c in candidates)


def docker_ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], path):
                ignored = False
        elif _pattern_matches(pattern, path):
            ignored = True
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "rnc-runs/mlflow.db",
        "rnc/platform/__pycache__/cli.cpython-311.pyc",
        "tests/deploy/test_dockerfile_static.py",
        "k8s/base/secrets/mlflow-db.env",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert docker_ignored(path, read_dockerignore()), path


@pytest.mark.parametrize(
    "path",
    ["pyproject.toml", "requirements.lock", "README.md", "rnc/platform/cluster.py"],
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not docker_ignored(path, read_dockerignore()), path

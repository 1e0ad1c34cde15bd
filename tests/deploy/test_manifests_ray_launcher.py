"""deploy/ray-cluster.yaml against Ray's own cluster launcher schema and preparation (no SSH, no machines)."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from rnc.platform.cluster import SHARED_STORAGE_ENV

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "ray-cluster.yaml"


@pytest.fixture(scope="module")
def launcher_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_ray_prepares_and_validates_the_config(launcher_config) -> None:
    prepared = prepare_config(copy.deepcopy(launcher_config))
    validate_config(prepared)
    workers = prepared["available_node_types"]["local.cluster.node"]
    assert workers["min_workers"] == workers["max_workers"] == len(launcher_config["provider"]["worker_ips"])


def test_ray_schema_rejects_a_misspelt_field(launcher_config) -> None:
    broken = copy.deepcopy(launcher_config)
    broken["head_start_ray_command"] = broken.pop("head_start_ray_commands")
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_containers_run_the_project_image_with_shared_storage(launcher_config) -> None:
    docker = launcher_config["docker"]
    assert "rnc-platform" in docker["image"] and docker["image"].endswith("-cpu")
    assert docker["worker_image"].endswith("-cuda")
    options = " ".join(docker["run_options"])
    # The launcher runs `docker run ... IMAGE bash`: the image's rnc-platform entrypoint must be replaced.
    assert "--entrypoint=/usr/bin/env" in options
    assert "--volume /mnt/rnc-shared:/mnt/rnc-shared" in options
    assert f"--env {SHARED_STORAGE_ENV}=/mnt/rnc-shared" in options


def test_head_serves_ray_client_and_dashboard(launcher_config) -> None:
    start = " ".join(launcher_config["head_start_ray_commands"])
    assert "--head" in start and "--port=6379" in start
    assert "--ray-client-server-port=10001" in start, "docs use ray://<head>:10001"
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in start
    workers = " ".join(launcher_config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in workers

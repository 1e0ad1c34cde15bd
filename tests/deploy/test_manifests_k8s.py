"""Every manifest of the k8s/ overlays, rendered kustomize-style, against the Kubernetes and KubeRay schemas.

- Built-in kinds: ``kubernetes-validate`` in strict mode (unknown fields are errors) for two Kubernetes versions.
- ``ray.io/v1`` RayJob/RayCluster: the ``openAPIV3Schema`` of the KubeRay CRDs in ``../shared/schemas/kuberay``
  with ``jsonschema``, made strict like the API server's field validation (objects with ``properties`` and no
  ``x-kubernetes-preserve-unknown-fields`` refuse unknown fields); their pod templates also as strict ``v1/Pod``.
- What the deployment promises: resources everywhere, no plain-text secrets, launch labels on every object and
  pod, references that resolve, the RayJob's lifecycle settings, the experiment it launches.
"""

from __future__ import annotations

import base64
import copy
import functools
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from rnc.platform.cluster import SHARED_STORAGE_ENV, is_declared_shared
from rnc.platform.config import ExperimentConfig
from rnc.platform.launch_record import launch_record_path

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERAY_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas" / "kuberay"
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
K8S_VERSIONS = ("1.30.0", "1.37.0")
OVERLAYS = ("cpu", "gpu")
LAUNCH_LABEL = "rnc-platform.io/launch"
PART_OF = ("app.kubernetes.io/part-of", "rnc-platform")


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def rendered(overlay, k8s_tree, kustomize_build) -> list[dict]:
    return kustomize_build(k8s_tree / "overlays" / overlay)


def by_kind(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["kind"] == kind]


def one(resources: list[dict], kind: str, name: str) -> dict:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"exactly one {kind}/{name}"
    return found[0]


def pod_templates(res: dict) -> Iterator[tuple[str, dict]]:
    """(where, pod template) of every pod a resource creates."""
    spec = res.get("spec", {})
    if res["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield "spec.template", spec["template"]
    cluster = spec.get("rayClusterSpec", spec) if res["kind"] in {"RayJob", "RayCluster"} else None
    if cluster is not None:
        yield "headGroupSpec", cluster["headGroupSpec"]["template"]
        for group in cluster.get("workerGroupSpecs", []):
            yield f"workerGroupSpecs[{group['groupName']}]", group["template"]
    if res["kind"] == "RayJob" and "submitterPodTemplate" in spec:
        yield "submitterPodTemplate", spec["submitterPodTemplate"]


# ---------------------------------------------------------------------------------------------- schemas


def strict_schema(schema: Any) -> Any:
    """Copy of a CRD schema where every object with ``properties`` refuses unknown fields."""
    if isinstance(schema, dict):
        out = {k: strict_schema(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    return schema


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    if not KUBERAY_SCHEMAS.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {KUBERAY_SCHEMAS} (the shared/ folder beside the repository)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 20x faster on these 1-MB files
    crd = yaml.load((KUBERAY_SCHEMAS / CRD_FILES[kind]).read_text(), Loader=loader)
    assert crd["spec"]["names"]["kind"] == kind
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    assert version["served"], "ray.io/v1 is served"
    schema = strict_schema(version["schema"]["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def test_kuberay_crds_are_present() -> None:
    if not KUBERAY_SCHEMAS.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {KUBERAY_SCHEMAS} (the shared/ folder beside the repository)")
    assert sorted(p.name for p in KUBERAY_SCHEMAS.glob("*.yaml")) >= sorted(CRD_FILES.values())


def test_every_core_resource_validates(rendered) -> None:
    """Kubernetes' own schemas (no CRD needed): every built-in resource, strictly, for every supported version."""
    for res in rendered:
        if res["apiVersion"] == "ray.io/v1":
            continue
        where = f"{res['kind']}/{res['metadata']['name']}"
        assert "." not in res["apiVersion"].split("/")[0], f"{where}: no schema for {res['apiVersion']}"
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(res, version, strict=True)


def test_ray_pod_templates_validate(rendered) -> None:
    """The pod templates inside the KubeRay resources, against Kubernetes' Pod schema (no CRD needed)."""
    ray_resources = [res for res in rendered if res["apiVersion"] == "ray.io/v1"]
    assert ray_resources
    for res in ray_resources:
        for _where, template in pod_templates(res):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata", {"name": "x"})}
            pod["metadata"] = {**pod["metadata"], "name": "template"}
            pod["spec"] = template["spec"]
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(pod, version, strict=True)


def test_ray_resources_validate_against_the_crds(rendered) -> None:
    """The KubeRay resources against the CRD schemas (skipped only when the CRDs are absent)."""
    for res in rendered:
        if res["apiVersion"] != "ray.io/v1":
            continue
        where = f"{res['kind']}/{res['metadata']['name']}"
        errors = sorted(crd_validator(res["kind"]).iter_errors(res), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )


def test_strict_crd_validation_rejects_unknown_fields(rendered) -> None:
    job = copy.deepcopy(by_kind(rendered, "RayJob")[0])
    job["spec"]["shutdownAfterJobFinish"] = True  # misspelt
    assert list(crd_validator("RayJob").iter_errors(job))
    bad_group = copy.deepcopy(job)
    del bad_group["spec"]["shutdownAfterJobFinish"]
    del bad_group["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"]
    assert list(crd_validator("RayJob").iter_errors(bad_group))


def test_strict_kubernetes_validation_rejects_unknown_fields(rendered) -> None:
    deployment = copy.deepcopy(one(rendered, "Deployment", "mlflow"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


# ------------------------------------------------------------------------------------------- promises


def test_same_resources_in_both_overlays(k8s_tree, kustomize_build) -> None:
    kinds = {
        ov: sorted((r["kind"], r["metadata"]["name"]) for r in kustomize_build(k8s_tree / "overlays" / ov))
        for ov in OVERLAYS
    }
    assert kinds["cpu"] == kinds["gpu"]
    assert {k for k, _ in kinds["cpu"]} >= {
        "Namespace",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Service",
        "Deployment",
        "StatefulSet",
        "RayJob",
        "RayCluster",
    }


def test_requests_and_limits_on_every_container(rendered) -> None:
    for res in rendered:
        for where, template in pod_templates(res):
            for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
                resources = container.get("resources", {})
                for part in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                        f"{res['kind']}/{res['metadata']['name']} {where} {container['name']}: {part}"
                    )
                gpus = {p: resources[p].get("nvidia.com/gpu") for p in ("requests", "limits")}
                assert gpus["requests"] == gpus["limits"], "GPU requests equal limits"
        if res["kind"] in {"RayJob", "RayCluster"}:
            cluster = res["spec"].get("rayClusterSpec", res["spec"])
            autoscaler = cluster["autoscalerOptions"]["resources"]
            assert {"cpu", "memory"} <= set(autoscaler["requests"]) and {"cpu", "memory"} <= set(autoscaler["limits"])


def test_pods_run_as_non_root(rendered) -> None:
    for res in rendered:
        for where, template in pod_templates(res):
            assert template["spec"]["securityContext"]["runAsNonRoot"] is True, f"{res['metadata']['name']} {where}"


SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")


def test_no_secret_in_plain_text(rendered, k8s_tree) -> None:
    for res in rendered:
        for where, template in pod_templates(res):
            for container in template["spec"]["containers"]:
                for env in container.get("env", []):
                    if any(word in env["name"].upper() for word in SECRET_WORDS):
                        assert "secretKeyRef" in env.get("valueFrom", {}), f"{where} {env['name']} from a Secret"
                    assert "@" not in env.get("value", "").replace("$(POSTGRES_PASSWORD)@", ""), (
                        f"{where} {env['name']}: credentials inside a URI must come from a Secret"
                    )
    committed = [p for p in (REPO_ROOT / "k8s").rglob("*") if p.is_file()]
    for path in committed:
        if path.suffix in {".yaml", ".yml"}:
            for doc in yaml.safe_load_all(path.read_text()):
                assert not (isinstance(doc, dict) and doc.get("kind") == "Secret"), f"{path} commits a Secret"
    secret = one(rendered, "Secret", "mlflow-db")
    example = (k8s_tree / "base" / "secrets" / "mlflow-db.env.example").read_text()
    keys = {line.split("=")[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert set(secret["data"]) == keys
    assert base64.b64decode(secret["data"]["POSTGRES_PASSWORD"]).decode().isalnum()


def test_secret_env_file_is_git_ignored() -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    path = "k8s/base/secrets/mlflow-db.env"
    done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT)
    assert done.returncode == 0, f"{path} must be git-ignored"
    tracked = subprocess.run(["git", "ls-files", "k8s"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert not [f for f in tracked.split() if f.endswith(".env")]


def test_every_object_and_pod_carries_the_launch_labels(rendered, overlay) -> None:
    expected = {PART_OF[0]: PART_OF[1], LAUNCH_LABEL: f"rnc-{overlay}"}
    for res in rendered:
        labels = res["metadata"].get("labels", {})
        assert expected.items() <= labels.items(), f"{res['kind']}/{res['metadata']['name']}: {labels}"
        for where, template in pod_templates(res):
            pod_labels = template.get("metadata", {}).get("labels", {})
            assert expected.items() <= pod_labels.items(), f"{res['metadata']['name']} {where}: {pod_labels}"


def test_references_resolve(rendered) -> None:
    names = {(r["kind"], r["metadata"]["name"]) for r in rendered}
    namespaces = {r["metadata"].get("namespace") for r in rendered if r["kind"] != "Namespace"}
    assert namespaces == {"rnc"} and ("Namespace", "rnc") in names
    secrets = {r["metadata"]["name"]: r for r in by_kind(rendered, "Secret")}
    for res in rendered:
        for where, template in pod_templates(res):
            spec = template["spec"]
            claims = set()
            for volume in spec.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    claims.add(volume["persistentVolumeClaim"]["claimName"])
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in names, where
            assert {("PersistentVolumeClaim", c) for c in claims} <= names, where
            volume_names = {v["name"] for v in spec.get("volumes", [])}
            volume_names |= {c["metadata"]["name"] for c in res["spec"].get("volumeClaimTemplates", [])}
            for container in spec["containers"]:
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volume_names, f"{where} mounts {mount['name']}"
                for source in container.get("envFrom", []):
                    assert source["secretRef"]["name"] in secrets, where
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in secrets[ref["name"]]["data"], f"{where} {env['name']}"
    for service in by_kind(rendered, "Service"):
        selector = service["spec"]["selector"]
        backends = [
            r
            for r in rendered
            if r["kind"] in {"Deployment", "StatefulSet"}
            and selector.items() <= r["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(backends) == 1, f"Service {service['metadata']['name']} selects one workload"
        ports = {p["name"] for c in backends[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_rayjob_lifecycle(rendered) -> None:
    job = one(rendered, "RayJob", "rnc-launch")["spec"]
    config = ExperimentConfig.model_validate(
        yaml.safe_load(one(rendered, "ConfigMap", "rnc-experiment")["data"]["experiment.yaml"])
    )
    record = launch_record_path(Path(config.storage_path), config.name)
    entrypoint = job["entrypoint"]
    # KubeRay runs `... ray job submit --address URL -- ENTRYPOINT ; fi` in the submitter's shell.
    words = shlex.split(f"ray job submit --address http://head:8265 -- {entrypoint} ; fi")
    after = words[words.index("--") + 1 :]
    assert after[:2] == ["bash", "-c"] and after[3:] == [";", "fi"], f"one quoted script: {after}"
    script = after[2]
    assert f"if [ -f {record} ]; then RESUME=--resume; else RESUME=; fi;" in script, (
        "a resubmitted or retried job resumes when the launch record exists, starts anew otherwise"
    )
    assert script.endswith("exec rnc-platform launch /etc/rnc/experiment.yaml --address auto $RESUME")
    done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, f"the entrypoint script parses: {done.stderr}"
    assert job["shutdownAfterJobFinishes"] is True
    assert 0 < job["ttlSecondsAfterFinished"] <= 86400
    assert job["activeDeadlineSeconds"] > 0
    assert job["backoffLimit"] >= 1
    head = job["rayClusterSpec"]["headGroupSpec"]
    mounts = {m["mountPath"]: m["name"] for m in head["template"]["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    assert volumes[mounts["/etc/rnc"]]["configMap"]["name"] == "rnc-experiment"


def test_launched_experiment_is_valid_and_cluster_ready(rendered) -> None:
    config_map = one(rendered, "ConfigMap", "rnc-experiment")
    config = ExperimentConfig.model_validate(yaml.safe_load(config_map["data"]["experiment.yaml"]))
    service = one(rendered, "Service", "mlflow")
    assert config.tracking_uri == f"http://mlflow:{service['spec']['ports'][0]['port']}"
    job = one(rendered, "RayJob", "rnc-launch")["spec"]["rayClusterSpec"]
    for where, template in pod_templates({"kind": "RayJob", "spec": {"rayClusterSpec": job}}):
        container = template["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        shared = env[SHARED_STORAGE_ENV]
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == shared)
        assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "rnc-shared", where
        assert is_declared_shared(config.storage_path, [shared]), where
        assert is_declared_shared(config.supernet.cache_dir, [shared]), where
    pvc = one(rendered, "PersistentVolumeClaim", "rnc-shared")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every node mounts it"


def test_worker_groups_and_images(rendered, overlay) -> None:
    cluster = one(rendered, "RayCluster", "rnc-interactive")["spec"]
    job = one(rendered, "RayJob", "rnc-launch")["spec"]["rayClusterSpec"]
    expected_groups = {"cpu": ["cpu"], "gpu": ["cpu", "gpu"]}[overlay]
    assert [g["groupName"] for g in cluster["workerGroupSpecs"]] == expected_groups
    assert [g["groupName"] for g in job["workerGroupSpecs"]] == expected_groups
    for spec in (cluster, job):
        assert spec["enableInTreeAutoscaling"] is True
        assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
        for group in spec["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
            container = group["template"]["spec"]["containers"][0]
            gpus = container["resources"]["limits"].get("nvidia.com/gpu")
            assert (gpus is not None) == (group["groupName"] == "gpu")
            if gpus is not None:
                assert container["image"].endswith(":0.1.0-cuda")
    ray_images = {
        c["image"]
        for r in rendered
        if r["apiVersion"] == "ray.io/v1"
        for _, t in pod_templates(r)
        for c in t["spec"]["containers"]
    }
    expected = {
        "cpu": {"registry.example.org/rnc/rnc-platform:0.1.0-cpu"},
        "gpu": {"registry.example.org/rnc/rnc-platform:0.1.0-cuda"},
    }[overlay]
    assert ray_images == expected
    mlflow = one(rendered, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert mlflow["image"] == "registry.example.org/rnc/rnc-platform:0.1.0-mlflow"
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in mlflow["args"]
    assert "--artifacts-destination=/mlflow/artifacts" in mlflow["args"]


# ------------------------------------------------------------------------------- the renderer itself


def test_python_rendering_equals_kubectl_kustomize(overlay, rendered, k8s_tree) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Python rendering is checked against the schemas only")
    done = subprocess.run(
        [kubectl, "kustomize", str(k8s_tree / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    theirs = {_rid(r): r for r in yaml.safe_load_all(done.stdout) if r}
    mine = {_rid(r): r for r in rendered}
    assert mine.keys() == theirs.keys()
    for key, res in mine.items():
        assert res == theirs[key], f"{key} differs from kubectl kustomize"


def _rid(res: dict) -> tuple[str, str, str]:
    return (res["kind"], res["metadata"].get("namespace", ""), res["metadata"]["name"])


def test_renderer_refuses_what_it_does_not_implement(tmp_path, kustomize_build) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(ValueError, match="namePrefix"):
        kustomize_build(tmp_path)


def test_renderer_json_patch_test_op_guards_the_cpu_overlay(tmp_path, k8s_tree, kustomize_build) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(k8s_tree, tree)
    raycluster = tree / "base" / "raycluster.yaml"
    raycluster.write_text(raycluster.read_text().replace("groupName: gpu", "groupName: accelerators"))
    with pytest.raises(ValueError, match="test failed"):
        kustomize_build(tree / "overlays" / "cpu")


def test_renderer_strategic_merge_on_builtin_lists(tmp_path, kustomize_build) -> None:
    (tmp_path / "deploy.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {
                    "replicas": 1,
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                {"name": "b", "image": "b:1"},
                            ]
                        }
                    },
                },
            }
        )
    )
    (tmp_path / "patch.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {
                    "replicas": None,
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "c", "image": "c:1"},
                                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                            ]
                        }
                    },
                },
            }
        )
    )
    (tmp_path / "kustomization.yaml").write_text("resources: [deploy.yaml]\npatches:\n  - path: patch.yaml\n")
    (res,) = kustomize_build(tmp_path)
    assert "replicas" not in res["spec"]
    containers = res["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["c", "a", "b"], "new items first, as kustomize merges"
    assert containers[1]["env"] == [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]
    assert containers[1]["image"] == "a:1"
    if shutil.which("kubectl"):
        done = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
        assert yaml.safe_load(done.stdout) == res

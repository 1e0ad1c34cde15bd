"""A kustomize renderer in Python for the subset of kustomize that k8s/ uses, as fixtures.

Supported kustomization fields: ``resources`` (files and kustomization folders), ``namespace``, ``labels``
(``pairs``, ``includeTemplates``, ``fields`` with ``kind``/``group``/``version``/``path``/``create``; not
``includeSelectors``), ``configMapGenerator`` / ``secretGenerator`` (``files``, ``envs``, ``literals``) with
``generatorOptions.disableNameSuffixHash: true``, ``patches`` (strategic merge of maps, lists replaced as for
custom resources, ``null`` deleting a key; JSON 6902 ``add``/``remove``/``replace``/``test``) and ``images``.
Anything else raises ``UnsupportedKustomizationError`` so that the renderer never silently differs from kustomize.

Transformers run in kustomize's order: resources and generators, patches, namespace, labels, images.
tests/deploy/test_manifests_k8s.py checks the output equals ``kubectl kustomize`` where kubectl is installed.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "CustomResourceDefinition",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)
SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "namespace",
        "resources",
        "labels",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "patches",
        "images",
    }
)
#: Strategic-merge list fields of built-in kinds merged by ``name`` (custom resources replace lists).
NAME_MERGED_LISTS = frozenset({"containers", "initContainers", "volumes", "volumeMounts", "env"})

Resource = dict[str, Any]


class UnsupportedKustomizationError(ValueError):
    """The kustomization uses a feature this renderer does not implement."""


def resource_id(res: Resource) -> tuple[str, str, str, str]:
    meta = res.get("metadata", {})
    return (res.get("apiVersion", ""), res.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def build(folder: Path) -> list[Resource]:
    """Render the kustomization in ``folder`` like ``kubectl kustomize folder``."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text()) or {}
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomizationError(f"{folder}: unsupported kustomization fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = folder / entry
        if path.is_dir():
            resources.extend(build(path))
        else:
            resources.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    resources.extend(_generate(folder, kustomization))
    ids = [resource_id(r) for r in resources]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"{folder}: resources defined twice: {sorted(duplicates)}")
    for patch in kustomization.get("patches", []):
        _apply_patch(folder, patch, resources)
    if "namespace" in kustomization:
        for res in resources:
            if res["kind"] not in CLUSTER_SCOPED_KINDS:
                res.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for group in kustomization.get("labels", []):
        _apply_labels(group, resources)
    for image in kustomization.get("images", []):
        _apply_image(image, resources)
    return resources


# ------------------------------------------------------------------------------------------- generators


def _read_env_file(path: Path) -> dict[str, str]:
    data = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: line {line!r} is not KEY=VALUE")
        data[key.strip()] = value
    return data


def _generate(folder: Path, kustomization: dict) -> list[Resource]:
    options = kustomization.get("generatorOptions", {})
    out = []
    for kind, field in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for spec in kustomization.get(field, []):
            spec_options = {**options, **spec.get("options", {})}
            if not spec_options.get("disableNameSuffixHash"):
                raise UnsupportedKustomizationError(
                    f"{folder}: {field} {spec['name']} needs disableNameSuffixHash: true"
                )
            unknown = set(spec) - {"name", "files", "envs", "literals", "options"}
            if unknown:
                raise UnsupportedKustomizationError(f"{folder}: {field} fields {sorted(unknown)}")
            data: dict[str, str] = {}
            for entry in spec.get("files", []):
                key, _, rel = entry.rpartition("=") if "=" in entry else ("", "", entry)
                data[key or Path(rel).name] = (folder / rel).read_text()
            for rel in spec.get("envs", []):
                data.update(_read_env_file(folder / rel))
            for literal in spec.get("literals", []):
                key, _, value = literal.partition("=")
                data[key] = value
            res: Resource = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
            for meta_key in ("labels", "annotations"):
                if spec_options.get(meta_key):
                    res["metadata"][meta_key] = dict(spec_options[meta_key])
            if kind == "Secret":
                res["type"] = "Opaque"
                res["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
            else:
                res["data"] = data
            out.append(res)
    return out


# ---------------------------------------------------------------------------------------------- patches


def _matches(target: dict, res: Resource) -> bool:
    group, _, version = res["apiVersion"].rpartition("/")
    checks = {
        "group": group,
        "version": version,
        "kind": res["kind"],
        "name": res["metadata"].get("name"),
        "namespace": res["metadata"].get("namespace"),
    }
    unknown = set(target) - set(checks)
    if unknown:
        raise UnsupportedKustomizationError(f"patch target fields {sorted(unknown)}")
    return all(checks[k] == v for k, v in target.items())


def _apply_patch(folder: Path, patch: dict, resources: list[Resource]) -> None:
    if set(patch) - {"path", "patch", "target"}:
        raise UnsupportedKustomizationError(f"patch fields {sorted(set(patch) - {'path', 'patch', 'target'})}")
    text = (folder / patch["path"]).read_text() if "path" in patch else patch["patch"]
    body = yaml.safe_load(text)
    if isinstance(body, list):
        if "target" not in patch:
            raise ValueError(f"{folder}: a JSON 6902 patch needs a target")
        targets = [r for r in resources if _matches(patch["target"], r)]
        apply: Callable[[Resource], Resource] = lambda r: _json6902(r, body)  # noqa: E731
    else:
        target = patch.get("target") or {
            "kind": body["kind"],
            "name": body["metadata"]["name"],
        }
        targets = [r for r in resources if _matches(target, r)]
        apply = lambda r: _strategic_merge(r, body, builtin="." not in r["apiVersion"].split("/")[0])  # noqa: E731
    if not targets:
        raise ValueError(f"{folder}: patch {patch.get('path', '<inline>')} matches no resource")
    for res in targets:
        patched = apply(res)
        res.clear()
        res.update(patched)


def _strategic_merge(original: Any, patch: Any, *, builtin: bool, key: str = "") -> Any:
    if isinstance(patch, dict):
        if any(k.startswith("$") for k in patch):
            raise UnsupportedKustomizationError(f"strategic merge directives {[k for k in patch if k.startswith('$')]}")
        merged = copy.deepcopy(original) if isinstance(original, dict) else {}
        for k, v in patch.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = _strategic_merge(merged.get(k), v, builtin=builtin, key=k)
        return merged
    if isinstance(patch, list) and builtin and key in NAME_MERGED_LISTS and isinstance(original, list):
        # kustomize (kyaml) puts patch items missing from the original first, in patch order.
        merged_list = copy.deepcopy(original)
        added = []
        for item in patch:
            index = next((n for n, o in enumerate(merged_list) if o.get("name") == item.get("name")), None)
            if index is None:
                added.append(copy.deepcopy(item))
            else:
                merged_list[index] = _strategic_merge(merged_list[index], item, builtin=builtin)
        return added + merged_list
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json6902(res: Resource, ops: list[dict]) -> Resource:
    doc = copy.deepcopy(res)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if kind == "test":
            current = node[int(last)] if isinstance(node, list) else node[last]
            if current != op["value"]:
                raise ValueError(f"JSON patch test failed at {op['path']}: {current!r} != {op['value']!r}")
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif kind in {"add", "replace"}:
            value = copy.deepcopy(op["value"])
            if isinstance(node, list):
                if last == "-":
                    node.append(value)
                elif kind == "add":
                    node.insert(int(last), value)
                else:
                    node[int(last)] = value
            else:
                if kind == "replace" and last not in node:
                    raise ValueError(f"JSON patch replace of missing {op['path']}")
                node[last] = value
        else:
            raise UnsupportedKustomizationError(f"JSON patch op {kind!r}")
    return doc


# ----------------------------------------------------------------------------------------------- labels


#: kustomize's ``metadataLabels`` field specs (api/konfig/builtinpluginconsts/metadatalabels.go): where ``labels``
#: go without ``includeSelectors``.
METADATA_LABEL_FIELDS = (
    {"path": "metadata/labels", "create": True},
    {"path": "spec/template/metadata/labels", "create": True, "version": "v1", "kind": "ReplicationController"},
    {"path": "spec/template/metadata/labels", "create": True, "kind": "Deployment"},
    {"path": "spec/template/metadata/labels", "create": True, "kind": "ReplicaSet"},
    {"path": "spec/template/metadata/labels", "create": True, "kind": "DaemonSet"},
    {"path": "spec/template/metadata/labels", "create": True, "group": "apps", "kind": "StatefulSet"},
    {"path": "spec/volumeClaimTemplates[]/metadata/labels", "create": True, "group": "apps", "kind": "StatefulSet"},
    {"path": "spec/template/metadata/labels", "create": True, "group": "batch", "kind": "Job"},
    {"path": "spec/jobTemplate/metadata/labels", "create": True, "group": "batch", "kind": "CronJob"},
    {"path": "spec/jobTemplate/spec/template/metadata/labels", "create": True, "group": "batch", "kind": "CronJob"},
)


def _set_at(node: Any, parts: list[str], labels: dict[str, str], create: bool) -> None:
    if not parts:
        if isinstance(node, dict):
            node.update(labels)
        return
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = node.get(head[:-2]) if isinstance(node, dict) else None
        for item in items or []:
            _set_at(item, rest, labels, create)
        return
    if not isinstance(node, dict):
        return
    if head not in node or node[head] is None:
        if not create:
            return
        node[head] = {}
    _set_at(node[head], rest, labels, create)


def _apply_labels(group: dict, resources: list[Resource]) -> None:
    unknown = set(group) - {"pairs", "includeTemplates", "includeSelectors", "fields"}
    if unknown or group.get("includeSelectors"):
        raise UnsupportedKustomizationError(f"labels options {sorted(unknown) or ['includeSelectors']}")
    pairs = {str(k): str(v) for k, v in group["pairs"].items()}
    specs = list(METADATA_LABEL_FIELDS)
    if group.get("includeTemplates"):
        specs.append({"path": "spec/template/metadata/labels", "create": False})
    specs.extend(group.get("fields", []))
    for res in resources:
        api_group, _, version = res["apiVersion"].rpartition("/")
        for spec in specs:
            if spec.get("kind", res["kind"]) != res["kind"] or spec.get("group", api_group) != api_group:
                continue
            if spec.get("version", version) != version:
                continue
            _set_at(res, spec["path"].split("/"), pairs, bool(spec.get("create", False)))


# ----------------------------------------------------------------------------------------------- images

_IMAGE = re.compile(r"^(?P<name>[^:@]+(?::\d+/[^:@]+)?)(?::(?P<tag>[^@]+))?(?:@(?P<digest>.+))?$")


def _apply_image(spec: dict, resources: list[Resource]) -> None:
    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"containers", "initContainers"} and isinstance(value, list):
                    for container in value:
                        if isinstance(container, dict) and isinstance(container.get("image"), str):
                            container["image"] = _retag(container["image"], spec)
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for res in resources:
        visit(res)


def _retag(image: str, spec: dict) -> str:
    match = _IMAGE.match(image)
    if not match or match["name"] != spec["name"]:
        return image
    name = spec.get("newName", match["name"])
    if "digest" in spec:
        return f"{name}@{spec['digest']}"
    tag = spec.get("newTag", match["tag"])
    digest = match["digest"]
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest and "newTag" not in spec else "")


# ---------------------------------------------------------------------------------------------- fixtures

TEST_DB_ENV = "POSTGRES_USER=mlflow\nPOSTGRES_DB=mlflow\nPOSTGRES_PASSWORD=0123456789abcdef0123456789abcdef\n"


@pytest.fixture(scope="session")
def k8s_tree(tmp_path_factory) -> Path:
    """A copy of k8s/ with the git-ignored secret env file filled in, as a user does before building."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S_DIR, tree, ignore=shutil.ignore_patterns("*.env"))
    (tree / "base" / "secrets" / "mlflow-db.env").write_text(TEST_DB_ENV)
    return tree


@pytest.fixture(scope="session")
def kustomize_build() -> Callable[[Path], list[Resource]]:
    return build

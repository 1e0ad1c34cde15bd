"""Settings checks for launches on a multi-node Ray cluster, and where shared state lives.

On one machine every Ray worker sees the driver's disk and ``sqlite:///rnc-runs/mlflow.db``. On a cluster it
does not: Ray Tune state, searcher checkpoints and supernet checkpoints written by a trial on one node must be
found by the trial restored on another, and every node's tracking writes must reach one MLflow store. The
rules below decide, before any work starts, whether the launch's storage and tracking settings can work.

Storage rule (``storage_path``; the experiment's ``storage_path``, CLI ``--storage-path``):

1. An object-store or distributed-filesystem URI is shared: ``s3://``, ``gs://``, ``gcs://``, ``abfs://``,
   ``abfss://``, ``az://``, ``hdfs://``, ``viewfs://`` (the schemes Ray Tune's ``RunConfig(storage_path=...)``
   reaches through pyarrow/fsspec).
2. A local path (plain, or ``file://``) is shared when it is *declared* shared -- it lies under one of the
   prefixes in the ``RNC_SHARED_STORAGE`` environment variable of the launching process (``os.pathsep``
   separated, like ``PATH``) -- or when, on every alive node, it lies on a network filesystem (NFS, CIFS/SMB,
   CephFS, GlusterFS, Lustre, GPFS, BeeGFS, JuiceFS, s3fs/gcsfuse; read from ``/proc/self/mounts``).
3. A local path that passes rule 2 is then *verified*: a marker file written from one node must be read back,
   with the same content, from every other alive node. A declaration that is wrong fails here, naming the node.

Anything else (a path on ext4/xfs/overlay/tmpfs that is not declared) is node-local and refused.

Tracking rule (``tracking_uri``; the experiment's ``tracking_uri``, CLI ``--tracking-uri``):

- ``sqlite:``, ``file:`` and scheme-less paths (MLflow's file store) are node-local and refused; use an MLflow
  tracking server (``http://mlflow:5000``) or a database every node reaches (``postgresql://...``).
- A server or database URI whose host is a loopback name (``localhost``, ``127.0.0.1``, ``::1``) is refused
  unless every alive node runs on the launching machine (each node's address is loopback or this machine's
  node IP), as in a test cluster on one host.

When is a cluster multi-node: when more than one node is alive, or when the connected cluster's head node
offers no CPUs (``num-cpus: 0``, as in the KubeRay manifests), so that all work runs on worker nodes -- an
autoscaling cluster that starts with only its head must pass the same checks before its workers join.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from rnc.errors import UserError

SHARED_STORAGE_ENV = "RNC_SHARED_STORAGE"
"""Environment variable: ``os.pathsep``-separated path prefixes declared visible from every node."""

OBJECT_STORE_SCHEMES = frozenset({"s3", "gs", "gcs", "abfs", "abfss", "az", "hdfs", "viewfs"})
"""URI schemes that name storage every node reaches over the network."""

NETWORK_FILESYSTEM_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "fuse.ceph-fuse",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "fuse.juicefs",
        "juicefs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.goofys",
        "fuse.sshfs",
        "wekafs",
        "panfs",
    }
)
"""Filesystem types (as in ``/proc/self/mounts``) whose content every node mounting them sees."""

NODE_LOCAL_TRACKING_SCHEMES = frozenset({"", "file", "sqlite"})
"""MLflow tracking URI schemes that live on one node's disk."""

LOOPBACK_HOSTS = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})

TUNE_SUBDIR = "tune"
SUPERNET_SUBDIR = "supernets"


class MultiNodeSettingsError(UserError, ValueError):
    """A launch setting that cannot work on a multi-node Ray cluster.

    ``setting`` names the offending setting (``storage_path`` or ``tracking_uri``) so that callers can point
    at the config field or CLI option.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mounts``: where a filesystem is mounted and its type."""

    mount_point: str
    fs_type: str
    source: str = ""


@dataclass(frozen=True)
class StorageLayout:
    """Where one launch keeps the state that every node must find.

    ``root`` is an absolute path or an object-store URI; ``tune_storage_path`` is what goes to Ray Tune's
    ``RunConfig(storage_path=...)``; ``supernet_checkpoints`` holds the trained supernets (one sub-folder per
    checkpoint hash, as written by the supernet trainer).
    """

    root: str
    tune_storage_path: str
    supernet_checkpoints: str
    is_uri: bool

    def supernet_checkpoint(self, key: str) -> str:
        """Location of the supernet checkpoint called ``key`` (a hash) under this storage."""
        if not key or "/" in key or key in {".", ".."}:
            raise ValueError(f"supernet checkpoint key must be a plain name, got {key!r}")
        return _join(self.supernet_checkpoints, key)


# ----------------------------------------------------------------------------------------------- storage


def uri_scheme(location: str) -> str:
    """Lower-case URI scheme of ``location``; ``""`` for plain paths (Windows drive letters count as paths)."""
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    return "" if len(scheme) == 1 else scheme


def is_object_store_uri(location: str) -> bool:
    """True for URIs in :data:`OBJECT_STORE_SCHEMES` (``s3://bucket/prefix`` and the like)."""
    return uri_scheme(location) in OBJECT_STORE_SCHEMES


def local_path_of(location: str) -> str | None:
    """Absolute local path of a plain path or ``file://`` URI (``~`` expanded); None for other URIs."""
    scheme = uri_scheme(location)
    if scheme == "file":
        path = urlparse(location).path
    elif scheme == "":
        path = location
    else:
        return None
    return os.path.abspath(os.path.expanduser(path))


def resolve_storage(storage_path: str) -> StorageLayout:
    """The :class:`StorageLayout` under ``storage_path`` (a local path or an object-store URI).

    Local paths become absolute (a relative path would mean a different folder in each node's working
    directory); URIs keep their scheme and lose trailing slashes. Unknown URI schemes are refused with the
    list of supported ones.
    """
    if not storage_path or not storage_path.strip():
        raise ValueError("storage_path is empty: give a local folder or an object-store URI such as s3://bucket/rnc")
    location = storage_path.strip()
    local = local_path_of(location)
    if local is not None:
        root, is_uri = local, False
    elif is_object_store_uri(location):
        root, is_uri = location.rstrip("/"), True
    else:
        raise ValueError(
            f"storage_path {storage_path!r} has the unsupported scheme {uri_scheme(location)!r}: use a local path "
            f"or one of {', '.join(f'{s}://' for s in sorted(OBJECT_STORE_SCHEMES))}"
        )
    return StorageLayout(
        root=root,
        tune_storage_path=_join(root, TUNE_SUBDIR),
        supernet_checkpoints=_join(root, SUPERNET_SUBDIR),
        is_uri=is_uri,
    )


def _join(root: str, name: str) -> str:
    if uri_scheme(root) in OBJECT_STORE_SCHEMES:
        return f"{root.rstrip('/')}/{name}"
    return os.path.join(root, name)


def read_mounts(mounts_file: str = "/proc/self/mounts") -> list[Mount]:
    """Mounted filesystems of this node (Linux ``/proc/self/mounts``; empty list where that file is absent).

    Octal escapes of the kernel's format (``\\040`` for a space) are decoded.
    """
    try:
        text = Path(mounts_file).read_text()
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append(Mount(mount_point=_unescape_mount(fields[1]), fs_type=fields[2], source=fields[0]))
    return mounts


def _unescape_mount(field: str) -> str:
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1 : i + 4]) == 3 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """The mount holding ``path``: the longest mount point that is a prefix of it (the last one mounted wins)."""
    target = PurePosixPath(path)
    best: Mount | None = None
    for mount in mounts:
        point = PurePosixPath(mount.mount_point)
        if (target == point or point in target.parents) and (
            best is None or len(point.parts) >= len(PurePosixPath(best.mount_point).parts)
        ):
            best = mount
    return best


def declared_shared_paths(environ: Mapping[str, str] | None = None) -> list[str]:
    """Absolute prefixes declared shared in ``RNC_SHARED_STORAGE`` (``os.pathsep`` separated)."""
    env = os.environ if environ is None else environ
    raw = env.get(SHARED_STORAGE_ENV, "")
    return [os.path.abspath(os.path.expanduser(p)) for p in raw.split(os.pathsep) if p.strip()]


def is_declared_shared(path: str, declared: Iterable[str]) -> bool:
    """True when ``path`` equals or lies under one of the ``declared`` prefixes."""
    target = PurePosixPath(path)
    return any(target == PurePosixPath(p) or PurePosixPath(p) in target.parents for p in declared)


def node_local_reason(path: str, mounts: Sequence[Mount]) -> str | None:
    """Why ``path`` is node-local on a node with these ``mounts``; None when it is on a network filesystem."""
    mount = mount_of(path, mounts)
    if mount is None:
        return f"no mount table entry holds {path} (cannot tell whether other nodes see it)"
    if mount.fs_type in NETWORK_FILESYSTEM_TYPES:
        return None
    return f"{path} is on a {mount.fs_type} filesystem mounted at {mount.mount_point}, not a network filesystem"


def storage_advice(storage_path: str, setting: str = "storage_path") -> str:
    """What to set ``setting`` to instead of the node-local ``storage_path``."""
    uri_hint = "an object-store URI (s3://bucket/rnc, gs://bucket/rnc) or " if setting == "storage_path" else ""
    return (
        f"Set {setting} (experiment YAML `{setting}`) to {uri_hint}"
        "a folder on a filesystem that every node mounts at the same "
        f"path (NFS, CephFS, a ReadWriteMany volume); if {storage_path!r} is such a folder but was not "
        f"recognised, declare it: {SHARED_STORAGE_ENV}={local_path_of(storage_path) or storage_path}"
    )


# ---------------------------------------------------------------------------------------------- tracking


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def tracking_uri_problem(
    tracking_uri: str, *, node_addresses: Sequence[str], local_addresses: Sequence[str] = ()
) -> str | None:
    """Why ``tracking_uri`` cannot serve a cluster whose nodes have ``node_addresses``; None when it can.

    A loopback host is accepted when every node runs on this machine: each node address is a loopback address
    or one of ``local_addresses`` (this machine's node IP as Ray reports it).
    """
    uri = (tracking_uri or "").strip()
    scheme = uri_scheme(uri)
    advice = (
        "Set tracking_uri (experiment YAML `tracking_uri`, CLI `--tracking-uri`) to an MLflow tracking server "
        "every node reaches, e.g. http://mlflow.rnc.svc:5000 (start one with `mlflow server --backend-store-uri "
        "postgresql://... --artifacts-destination s3://...`), or to a database URI such as postgresql://host/mlflow"
    )
    if uri in {"databricks", "databricks-uc"}:
        return None  # MLflow's names for the Databricks-hosted server
    if not uri:
        return f"tracking_uri is empty, so MLflow would write to a local store on one node. {advice}."
    if scheme in NODE_LOCAL_TRACKING_SCHEMES:
        kind = "a SQLite file" if scheme == "sqlite" else "a local file store"
        return f"tracking_uri {uri!r} is {kind} on one node's disk; other nodes cannot write to it. {advice}."
    host = urlparse(uri).hostname or ""
    local = set(local_addresses)
    if host and is_loopback_host(host) and not all(is_loopback_host(a) or a in local for a in node_addresses):
        return (
            f"tracking_uri {uri!r} names the loopback host {host!r}, which is a different machine on each node "
            f"of this cluster (node addresses: {', '.join(sorted(set(node_addresses)))}). {advice}."
        )
    return None


# ------------------------------------------------------------------------------------------ cluster side


def _alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def cluster_is_multinode(nodes: Sequence[Mapping]) -> bool:
    """More than one alive node, or a single head that offers no CPUs (work will run on joining workers)."""
    alive = [n for n in nodes if n.get("Alive", True)]
    if len(alive) > 1:
        return True
    return len(alive) == 1 and float(alive[0].get("Resources", {}).get("CPU", 0.0)) == 0.0


def _probe_node(path: str, marker_name: str, expected: str | None) -> dict:
    """Runs on one node: filesystem of ``path`` there; writes the marker (``expected`` None) or reads it back."""
    import ray

    mounts = read_mounts()
    result = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_local_reason": node_local_reason(path, mounts),
        "marker": None,
        "error": None,
    }
    marker = os.path.join(path, marker_name)
    try:
        if expected is None:
            os.makedirs(path, exist_ok=True)
            token = uuid.uuid4().hex
            Path(marker).write_text(token)
            result["marker"] = token
        else:
            result["marker"] = Path(marker).read_text() if os.path.exists(marker) else None
    except OSError as err:
        result["error"] = f"{type(err).__name__}: {err}"
    return result


def _remove_marker(path: str, marker_name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(path, marker_name))


def verify_shared_path(path: str, *, declared: bool, nodes: Sequence[Mapping], setting: str = "storage_path") -> None:
    """Check on every alive node that ``path`` is shared (rule 2 unless ``declared``) and visible (rule 3).

    Runs one zero-CPU task pinned to each node. Raises :class:`MultiNodeSettingsError` naming the node.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_probe_node)
    cleanup = ray.remote(num_cpus=0, max_retries=0)(_remove_marker)

    def on(node: Mapping, *args):
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        return probe.options(scheduling_strategy=strategy).remote(*args)

    marker_name = f".rnc-shared-probe-{uuid.uuid4().hex}"
    first, others = nodes[0], list(nodes[1:])
    written = ray.get(on(first, path, marker_name, None))
    try:
        if written["error"]:
            raise MultiNodeSettingsError(
                setting,
                f"{setting} {path!r} is not writable on node {written['node_id']} "
                f"({first.get('NodeManagerAddress')}): {written['error']}. {storage_advice(path, setting)}",
            )
        results = [written, *ray.get([on(node, path, marker_name, written["marker"]) for node in others])]
        for node, result in zip(nodes, results, strict=True):
            where = f"node {result['node_id']} ({node.get('NodeManagerAddress')})"
            if not declared and result["node_local_reason"]:
                raise MultiNodeSettingsError(
                    setting,
                    f"{setting} {path!r} is node-local on {where}: {result['node_local_reason']}; the cluster has "
                    f"{len(nodes)} nodes, and Tune state and supernet checkpoints written on one node would be "
                    f"missing on the others. {storage_advice(path, setting)}",
                )
            if result["marker"] != written["marker"]:
                raise MultiNodeSettingsError(
                    setting,
                    f"{setting} {path!r} is not shared: a file written there on node {written['node_id']} is "
                    f"{'missing' if result['marker'] is None else 'different'} on {where}"
                    f"{' (' + result['error'] + ')' if result['error'] else ''}. Mount the same shared filesystem "
                    f"at {path} on every node, or use an object-store URI (s3://bucket/rnc).",
                )
    finally:
        strategy = NodeAffinitySchedulingStrategy(node_id=first["NodeID"], soft=False)
        ray.get(cleanup.options(scheduling_strategy=strategy).remote(path, marker_name))


def check_multinode_settings(*, storage_path: str, tracking_uri: str, supernet_cache_dir: str | None = None) -> None:
    """Refuse storage and tracking settings that only one node of the connected Ray cluster can use.

    Call right after ``ray.init``. Does nothing when Ray is not initialized or the cluster is a single node
    that runs work itself. Otherwise applies the storage and tracking rules of this module's docstring to
    ``tracking_uri``, ``storage_path`` and, when given, ``supernet_cache_dir`` (the experiment's
    ``supernet.cache_dir``: loaded from a folder by every evaluator, so it must be a shared filesystem path, not
    an object-store URI) and raises :class:`MultiNodeSettingsError` (a ``ValueError``) naming the setting and
    what to use instead.
    """
    import ray

    if not ray.is_initialized():
        return
    nodes = _alive_nodes()
    if not cluster_is_multinode(nodes):
        return
    problem = tracking_uri_problem(
        tracking_uri,
        node_addresses=[str(n.get("NodeManagerAddress", "")) for n in nodes],
        local_addresses=[ray.util.get_node_ip_address()],
    )
    if problem:
        raise MultiNodeSettingsError("tracking_uri", problem)
    _check_shared_location("storage_path", storage_path, nodes, allow_object_store=True)
    if supernet_cache_dir is not None:
        _check_shared_location("supernet.cache_dir", supernet_cache_dir, nodes, allow_object_store=False)


def _check_shared_location(setting: str, location: str, nodes: Sequence[Mapping], *, allow_object_store: bool) -> None:
    if not location or not location.strip():
        raise MultiNodeSettingsError(setting, f"{setting} is empty. {storage_advice('', setting)}")
    location = location.strip()
    if is_object_store_uri(location):
        if allow_object_store:
            return
        raise MultiNodeSettingsError(
            setting,
            f"{setting} {location!r} is an object-store URI, but supernet checkpoints are loaded from a folder: set "
            f"{setting} to a folder on a filesystem that every node mounts at the same path (NFS, CephFS, a "
            f"ReadWriteMany volume) and declare it with {SHARED_STORAGE_ENV} if it is not detected",
        )
    path = local_path_of(location)
    if path is None:
        raise MultiNodeSettingsError(
            setting,
            f"{setting} {location!r} has the scheme {uri_scheme(location)!r}, which is neither a local path "
            f"nor a known object store. {storage_advice(location, setting)}",
        )
    verify_shared_path(path, declared=is_declared_shared(path, declared_shared_paths()), nodes=nodes, setting=setting)

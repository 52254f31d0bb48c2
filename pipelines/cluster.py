"""Where the heavy work runs: the local Ray or a cluster's, how workers are sized, and how they get their data.

Three rules a multi-node Ray cluster imposes (Ray 2.60, "persistent storage"; see the README's Scaling out):

- Connect on purpose. Without RAY_ADDRESS a stage starts its own Ray (`address="local"`); a bare `ray.init()`
  would join whatever cluster an earlier `ray start` recorded on the machine, dead or alive. With RAY_ADDRESS an
  unreachable address fails within seconds, naming it, instead of retrying its GCS for minutes.
- Size workers from the nodes that hold them. A worker's CPUs come from the nodes that can take a worker (the GPU
  nodes when `use_gpu`), never from the cluster's total: 40 CPUs spread over 8-CPU pods cannot place 10-CPU
  workers, and Ray Train would retry that placement forever.
- Assume no shared file system. On more than one node, checkpoints and the stages' inputs travel through
  `runtime.ray_storage` (s3://...): the driver uploads what a stage reads once per content hash (`stage_inputs`),
  each worker downloads it into a local cache (`StagedInputs.materialize`) and never opens a path under the
  driver's project. Outputs come back the same way (`upload_path` / `fetch_outputs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from pvdm.config import RuntimeConfig

log = logging.getLogger("pvdm.cluster")
CONNECT_TIMEOUT_S = 5.0
STAGING_PREFIX = "staged"
COMPLETE = "_COMPLETE.json"  # written last: a staged folder without it is an interrupted upload
# Shards of a clip store are named by their video's content hash and the cutting rules (pvdm.data.preprocess):
# a name and a size identify the content, so a large store is not re-read to hash it.
CONTENT_NAMED = ("shards/",)


class ClusterError(RuntimeError):
    """The cluster cannot run the stage as configured; the message says what was asked and what is there."""


# --- connecting ------------------------------------------------------------------------------------------------


def cluster_address() -> str | None:
    address = os.environ.get("RAY_ADDRESS", "").strip()
    return address or None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within `timeout` seconds when nothing listens at a host:port (or ray://host:port) address."""
    if address == "auto":
        return  # Ray resolves it from the machine's record; nothing to probe first
    parsed = urlparse(address if "://" in address else f"gcs://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise ClusterError(f"RAY_ADDRESS={address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ClusterError(
            f"RAY_ADDRESS={address}: no Ray cluster answers there ({err.strerror or err}); start it, fix the "
            "address, or unset RAY_ADDRESS to run on this machine"
        ) from None


def init_ray(temp_dir: str | None = None) -> None:
    """Join RAY_ADDRESS when it is set (after checking it answers), else start a Ray of this machine's own."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by local workers: no OpenMP busy-waiting
    address = cluster_address()
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=True)
        return
    # The dashboard serves Ray's state API, which Ray Train's placement-group cleaner polls (without it the log
    # fills with "Failed to query Ray Train Controller actor state"); it listens on loopback only.
    ray.init(
        address="local",
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        _temp_dir=temp_dir,
    )


def alive_nodes() -> list[dict[str, float]]:
    """The resources of every alive node of the connected cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


# --- sizing and placing workers --------------------------------------------------------------------------------


def worker_cpus(runtime: RuntimeConfig, nodes: list[dict[str, float]]) -> int:
    """CPUs per worker: `runtime.cpus_per_worker`, else from the nodes that can hold a worker. GPU workers get their
    GPU's share of its node's CPUs (the smallest share over the GPU nodes); CPU workers the most every worker can
    get when they are spread over the nodes. 1 when no node can hold a worker yet (an autoscaler adds them when
    asked): `placement_timeout_s` then bounds the wait."""
    if runtime.cpus_per_worker:
        return runtime.cpus_per_worker
    if runtime.use_gpu:
        shares = [int(n.get("CPU", 0) // n["GPU"]) for n in nodes if n.get("GPU", 0) >= 1]
        return max(min(shares, default=1), 1)
    fitting = [
        cpus
        for cpus in range(1, int(max((n.get("CPU", 0) for n in nodes), default=0)) + 1)
        if sum(int(n.get("CPU", 0)) // cpus for n in nodes) >= runtime.num_workers
    ]
    return max(fitting, default=1)


def worker_bundle(runtime: RuntimeConfig, cpus: int) -> dict[str, float]:
    return {"CPU": float(cpus), **({"GPU": 1.0} if runtime.use_gpu else {})}


def describe_nodes(nodes: list[dict[str, float]]) -> str:
    if not nodes:
        return "no alive nodes"
    shapes = [
        f"{int(n.get('CPU', 0))} CPU" + (f" {int(n['GPU'])} GPU" if n.get("GPU") else "") for n in nodes
    ]
    return f"{len(nodes)} node{'s' if len(nodes) > 1 else ''}: " + ", ".join(shapes)


def wait_for_placement(runtime: RuntimeConfig, bundle: dict[str, float], what: str) -> None:
    """Reserve `num_workers` bundles as Ray Train will (PACK), then release them: a placement the cluster cannot
    satisfy fails after `placement_timeout_s` with one line, instead of Ray Train retrying it forever."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    group = placement_group([bundle] * runtime.num_workers, strategy="PACK")
    try:
        ray.get(group.ready(), timeout=runtime.placement_timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise ClusterError(
            f"{what}: {runtime.num_workers} workers of {_format_bundle(bundle)} could not be placed within "
            f"{runtime.placement_timeout_s:g} s; the cluster has {describe_nodes(alive_nodes())}. Set "
            "runtime.cpus_per_worker or runtime.num_workers to what the nodes hold, or add nodes"
        ) from None
    finally:
        remove_placement_group(group)


def _format_bundle(bundle: dict[str, float]) -> str:
    return " + ".join(f"{v:g} {k}" for k, v in bundle.items())


# --- storage -----------------------------------------------------------------------------------------------------


def is_remote(storage: str) -> bool:
    return "://" in storage


def storage_location(runtime: RuntimeConfig, root: Path) -> str:
    """Ray Train's storage and the staging area: a URI as given, or a folder of the project made absolute."""
    return (
        runtime.ray_storage if is_remote(runtime.ray_storage) else str((root / runtime.ray_storage).resolve())
    )


def check_storage(runtime: RuntimeConfig, node_count: int) -> None:
    """Refuse, before any work, a local storage path on a cluster of several nodes: Ray would fail at the first
    checkpoint, and the workers on the other nodes could not read the stage's inputs."""
    if node_count > 1 and not is_remote(runtime.ray_storage):
        raise ClusterError(
            f"runtime.ray_storage is the local path {runtime.ray_storage!r} but the cluster has {node_count} nodes: "
            "no file system is shared between them. Set it to s3://bucket/prefix (AWS_ENDPOINT_URL for another "
            "S3 endpoint)"
        )


def _filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    if is_remote(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def upload_path(local: Path, location: str) -> None:
    """Copy a file or a folder to `location` (a URI or a local folder)."""
    fs, path = _filesystem(location)
    fs.create_dir(path if local.is_dir() else path.rsplit("/", 1)[0], recursive=True)
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_folder(location: str, local: Path) -> None:
    fs, path = _filesystem(location)
    local.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


def _exists(location: str) -> bool:
    fs, path = _filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _write_text(location: str, text: str) -> None:
    fs, path = _filesystem(location)
    with fs.open_output_stream(path) as out:
        out.write(text.encode())


# --- staging a stage's inputs ------------------------------------------------------------------------------------


def _files(root: Path, relpaths: list[str]) -> list[str]:
    out = []
    for rel in relpaths:
        path = root / rel
        if path.is_file():
            out.append(rel)
        elif path.is_dir():
            out += sorted(str(p.relative_to(root)) for p in path.rglob("*") if p.is_file())
        else:
            raise FileNotFoundError(f"{path}: a stage input is missing")
    return sorted(out)


def inputs_digest(root: Path, relpaths: list[str]) -> str:
    """SHA-256 over the inputs' relative paths and contents (content-named shards: name and size)."""
    h = hashlib.sha256()
    for rel in _files(root, relpaths):
        path = root / rel
        h.update(f"{rel}\0{path.stat().st_size}\0".encode())
        if not any(f"/{marker}" in f"/{rel}" for marker in CONTENT_NAMED):
            with path.open("rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class StagedInputs:
    """The part of the project a stage's workers read, at the same relative paths under `materialize()`.

    `location` None: the workers share the driver's file system (one machine), and `root` is the project."""

    relpaths: tuple[str, ...]
    digest: str
    location: str | None = None
    root: str | None = None

    def materialize(self, cache: Path | None = None) -> Path:
        """A local folder holding the inputs: the project itself, or a per-node cache filled once from storage."""
        if self.location is None:
            return Path(str(self.root))
        cache = cache or Path(
            os.environ.get("PVDM_WORKER_CACHE") or Path(tempfile.gettempdir()) / "pvdm-inputs"
        )
        target = cache / self.digest
        if not (target / COMPLETE).is_file():
            self._download_into(target)
        return target

    def _download_into(self, target: Path) -> None:
        """Download beside the target, then rename into place: workers sharing a node race safely."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.digest[:12]}.", dir=target.parent))
        try:
            download_folder(str(self.location), tmp)
            (tmp / COMPLETE).write_text(json.dumps({"digest": self.digest}))
            os.replace(tmp, target)
        except OSError:
            if not (target / COMPLETE).is_file():  # not another worker's copy landing first: a real failure
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def stage_inputs(root: Path, relpaths: list[str], runtime: RuntimeConfig) -> StagedInputs:
    """Make `relpaths` (files or folders of the project) readable by the stage's workers. With a remote storage
    they are uploaded to `<storage>/staged/<digest>/` unless that content is already there."""
    digest = inputs_digest(root, relpaths)
    if not is_remote(runtime.ray_storage):
        return StagedInputs(tuple(relpaths), digest, None, str(root))
    location = f"{runtime.ray_storage.rstrip('/')}/{STAGING_PREFIX}/{digest}"
    if _exists(f"{location}/{COMPLETE}"):
        log.info("inputs %s already staged at %s", ", ".join(relpaths), location)
        return StagedInputs(tuple(relpaths), digest, location)
    started = time.monotonic()
    for rel in relpaths:  # only the named inputs: never the rest of data/
        upload_path(root / rel, f"{location}/{rel}")
    _write_text(f"{location}/{COMPLETE}", json.dumps({"digest": digest, "paths": relpaths}))
    log.info("staged %s at %s in %.1f s", ", ".join(relpaths), location, time.monotonic() - started)
    return StagedInputs(tuple(relpaths), digest, location)


def result_location(runtime: RuntimeConfig, stage: str) -> str:
    """Where a remote task of `stage` leaves its outputs for the driver (one fresh prefix per task)."""
    return f"{runtime.ray_storage.rstrip('/')}/results/{stage}-{uuid.uuid4().hex[:12]}"


def fetch_outputs(location: str, root: Path, relpaths: list[str]) -> None:
    """Download a remote task's outputs and put each output path in place of the project's (rename)."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        download_folder(location, Path(tmp))
        for rel in relpaths:
            src, dest = Path(tmp) / rel, root / rel
            if not src.exists():
                raise ClusterError(f"the remote task left no {rel} at {location}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(src, dest)


# --- the heavy stages that are not training (cache_latents, sample, evaluate) ------------------------------------


def run_heavy(
    stage: str,
    fn: Callable[..., Any],
    *args: Any,
    runtime: RuntimeConfig,
    root: Path,
    inputs: list[str],
    outputs: list[str],
) -> Any:
    """`fn(inputs_root, outputs_root, *args)`, run where the heavy work belongs and returning fn's value.

    Without RAY_ADDRESS: here, both roots the project. With it: as a Ray task on a worker node (a GPU when
    `runtime.use_gpu`), reading its local copy of `inputs` and writing `outputs` (paths relative to the roots)
    into a scratch folder that comes back to the project through `runtime.ray_storage`."""
    (value,) = map_heavy(stage, fn, [args], runtime=runtime, root=root, inputs=inputs, outputs=outputs)
    return value


def map_heavy(
    stage: str,
    fn: Callable[..., Any],
    calls: list[tuple],
    *,
    runtime: RuntimeConfig,
    root: Path,
    inputs: list[str],
    outputs: list[str] | None = None,
) -> list[Any]:
    """`fn(inputs_root, outputs_root, *args)` for each args of `calls`, as parallel Ray tasks on a cluster (one
    worker's resources each, the inputs staged once) or one after another here; their values in order. Only a
    single call may write `outputs`."""
    outputs = outputs or []
    if outputs and len(calls) != 1:
        raise ValueError("several tasks cannot write the same outputs")
    if not cluster_address():
        return [fn(root, root, *args) for args in calls]
    import ray

    init_ray()
    nodes = alive_nodes()
    check_storage(runtime, len(nodes))
    one = runtime.model_copy(update={"num_workers": 1})
    bundle = worker_bundle(one, worker_cpus(one, nodes))
    wait_for_placement(one, bundle, stage)
    staged = stage_inputs(root, inputs, runtime)
    location = result_location(runtime, stage) if outputs and is_remote(runtime.ray_storage) else None
    task = ray.remote(_heavy_task).options(
        num_cpus=bundle["CPU"], num_gpus=bundle.get("GPU", 0), max_retries=max(runtime.max_failures, 0)
    )
    log.info("%s: %d task(s) on the cluster, %s each", stage, len(calls), _format_bundle(bundle))
    values = ray.get([task.remote(fn, staged, location, outputs, args) for args in calls])
    if location is not None:
        fetch_outputs(location, root, outputs)
    return values


def shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """[start, stop) ranges cutting n items into at most `shards` near-equal, non-empty, consecutive parts."""
    k = max(1, min(shards, n))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _heavy_task(
    fn: Callable[..., Any], staged: StagedInputs, location: str | None, outputs: list[str], args: tuple
) -> Any:
    """On the worker: the inputs' local copy in, outputs to a scratch folder, then up to `location`."""
    root = staged.materialize()
    if location is None:  # a one-node cluster with a local storage: the project is this machine's
        return fn(root, root, *args)
    with tempfile.TemporaryDirectory(prefix="pvdm-outputs-") as out:
        value = fn(root, Path(out), *args)
        for rel in outputs:
            upload_path(Path(out) / rel, f"{location}/{rel}")
    return value

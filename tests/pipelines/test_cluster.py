"""pipelines.cluster: connecting on purpose, sizing workers from the nodes that hold them, staging inputs."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from pipelines.cluster import (
    COMPLETE,
    ClusterError,
    check_reachable,
    check_storage,
    fetch_outputs,
    inputs_digest,
    stage_inputs,
    upload_path,
    worker_cpus,
)
from pvdm.config import RuntimeConfig
from pvdm.config.runtime import training_identity

KUBERAY = [{"CPU": 8.0}] + [{"CPU": 8.0}] * 4  # infra/kuberay/rayjob.yaml: an 8-CPU head and four 8-CPU pods


def test_workers_are_sized_from_the_nodes_that_hold_them_not_the_cluster_total() -> None:
    # the cluster total would say (8 + 4 x 8) // 4 = 10 CPUs: no 8-CPU pod can hold such a worker
    assert worker_cpus(RuntimeConfig(num_workers=4), KUBERAY) == 8
    assert worker_cpus(RuntimeConfig(num_workers=8), KUBERAY) == 4  # two workers per pod
    assert (
        worker_cpus(RuntimeConfig(num_workers=5), [{"CPU": 4.0}, {"CPU": 4.0}]) == 1
    )  # 3 + 2 would not fit at 2


def test_gpu_workers_are_sized_from_gpu_nodes_only() -> None:
    nodes = [
        {"CPU": 64.0},
        {"CPU": 96.0, "GPU": 8.0},
        {"CPU": 96.0, "GPU": 8.0},
    ]  # a CPU head, two 8-GPU nodes
    assert worker_cpus(RuntimeConfig(num_workers=16, use_gpu=True), nodes) == 12
    assert worker_cpus(RuntimeConfig(num_workers=2, use_gpu=True), nodes) == 12  # a GPU's share of its node
    # no GPU node yet (an autoscaler starts them on demand): one CPU, and the placement timeout bounds the wait
    assert worker_cpus(RuntimeConfig(num_workers=2, use_gpu=True), nodes[:1]) == 1
    assert worker_cpus(RuntimeConfig(num_workers=2, use_gpu=True, cpus_per_worker=6), nodes) == 6


def test_placement_keys_do_not_change_the_training_identity() -> None:
    base = RuntimeConfig(seed=3, precision="fp32")
    moved = base.model_copy(
        update={"num_workers": 8, "use_gpu": True, "ray_storage": "s3://b/p", "device": "cuda"}
    )
    assert training_identity(base) == training_identity(moved)
    assert training_identity(base) != training_identity(base.model_copy(update={"seed": 4}))
    assert training_identity(base) != training_identity(base.model_copy(update={"precision": "bf16"}))


def test_an_unreachable_ray_address_fails_within_seconds_naming_it() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"RAY_ADDRESS=127.0.0.1:{port}: no Ray cluster answers"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    assert time.monotonic() - started < 10
    with pytest.raises(ClusterError, match="not host:port"):
        check_reachable("just-a-name")


def test_a_local_storage_path_is_refused_on_a_cluster_of_several_nodes() -> None:
    check_storage(RuntimeConfig(), node_count=1)
    check_storage(RuntimeConfig(ray_storage="s3://bucket/ray"), node_count=3)
    with pytest.raises(
        ClusterError, match=r"runtime.ray_storage is the local path 'data/ray' but the cluster has 3"
    ):
        check_storage(RuntimeConfig(), node_count=3)


def _project(root: Path) -> Path:
    (root / "data" / "clips" / "shards").mkdir(parents=True)
    (root / "data" / "clips" / "manifest.parquet").write_bytes(b"manifest-v1")
    (root / "data" / "clips" / "shards" / "abc-123.npy").write_bytes(b"\x00" * 1000)
    (root / "data" / "other.txt").write_text("not an input")
    return root


def test_the_digest_follows_content_and_trusts_content_named_shards(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = inputs_digest(root, ["data/clips"])
    (root / "data" / "other.txt").write_text("changed, but not an input")
    assert inputs_digest(root, ["data/clips"]) == first
    (root / "data" / "clips" / "manifest.parquet").write_bytes(b"manifest-v2")
    assert inputs_digest(root, ["data/clips"]) != first
    with pytest.raises(FileNotFoundError, match="data/latents: a stage input is missing"):
        inputs_digest(root, ["data/latents"])


def test_local_storage_stages_nothing_and_workers_read_the_project(tmp_path: Path) -> None:
    root = _project(tmp_path)
    staged = stage_inputs(root, ["data/clips"], RuntimeConfig())
    assert staged.location is None and staged.materialize() == root


@pytest.mark.services
def test_inputs_go_through_s3_once_per_content_and_land_in_a_worker_cache(
    s3_server, tmp_path, monkeypatch
) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket("stage")
    runtime = RuntimeConfig(ray_storage=f"s3://{bucket}/ray")
    root = _project(tmp_path / "project")
    staged = stage_inputs(root, ["data/clips"], runtime)
    keys = s3_server.keys(bucket)
    assert f"ray/staged/{staged.digest}/data/clips/shards/abc-123.npy" in keys
    assert f"ray/staged/{staged.digest}/{COMPLETE}" in keys
    assert not any("other.txt" in k for k in keys)  # only the named inputs travel

    # a second stage of the same content uploads nothing (a deleted object would otherwise come back)
    s3_server.client().delete_object(
        Bucket=bucket, Key=f"ray/staged/{staged.digest}/data/clips/manifest.parquet"
    )
    assert stage_inputs(root, ["data/clips"], runtime) == staged
    assert f"ray/staged/{staged.digest}/data/clips/manifest.parquet" not in s3_server.keys(bucket)

    (root / "data" / "clips" / "manifest.parquet").write_bytes(b"manifest-v2")
    staged = stage_inputs(root, ["data/clips"], runtime)
    worker = staged.materialize(tmp_path / "worker-cache")  # what a worker on another node does
    assert worker == tmp_path / "worker-cache" / staged.digest
    assert (worker / "data" / "clips" / "manifest.parquet").read_bytes() == b"manifest-v2"
    assert (worker / "data" / "clips" / "shards" / "abc-123.npy").stat().st_size == 1000
    mtime = os.stat(worker / "data" / "clips" / "manifest.parquet").st_mtime_ns
    assert staged.materialize(tmp_path / "worker-cache") == worker  # cached: not downloaded again
    assert os.stat(worker / "data" / "clips" / "manifest.parquet").st_mtime_ns == mtime


@pytest.mark.services
def test_a_remote_tasks_outputs_replace_the_projects(s3_server, tmp_path, monkeypatch) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.new_bucket("out")
    root = _project(tmp_path / "project")
    (root / "data" / "samples").mkdir()
    (root / "data" / "samples" / "stale.mp4").write_text("old")
    produced = tmp_path / "worker-out"
    (produced / "data" / "samples").mkdir(parents=True)
    (produced / "data" / "samples" / "sample_0000.mp4").write_text("new")
    upload_path(produced, f"s3://{bucket}/results/sample-1")
    fetch_outputs(f"s3://{bucket}/results/sample-1", root, ["data/samples"])
    assert sorted(p.name for p in (root / "data" / "samples").iterdir()) == ["sample_0000.mp4"]
    with pytest.raises(ClusterError, match="left no data/latents"):
        fetch_outputs(f"s3://{bucket}/results/sample-1", root, ["data/latents"])


@pytest.mark.ray
def test_without_ray_address_a_stage_starts_its_own_ray_not_a_dead_recorded_cluster(monkeypatch) -> None:
    import ray
    from ray._common.utils import get_ray_address_file

    from pipelines.cluster import init_ray

    with socket.socket() as s:  # the address of a cluster that is gone
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    record = Path(get_ray_address_file(None))
    saved = record.read_text() if record.is_file() else None
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(dead)  # what `ray start` leaves on a machine; a bare ray.init() would join it
    try:
        started = time.monotonic()
        init_ray()
        assert ray.get_runtime_context().gcs_address != dead
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
        assert time.monotonic() - started < 120  # not minutes of "Failed to connect to GCS"
    finally:
        ray.shutdown()
        if saved is None:
            record.unlink(missing_ok=True)
        else:
            record.write_text(saved)


def test_the_heavy_stages_load_no_ray_when_they_run_here() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pipelines.stages.cache_latents, pipelines.stages.sample, pipelines.stages.evaluate; "
        "print('ray' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_worker_guard_of_the_cluster_test_catches_an_open_under_the_driver_data(tmp_path: Path) -> None:
    """The guard that tests/pipelines/test_cluster_run.py puts on its worker nodes: it must be able to fail."""
    import subprocess
    import sys

    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    (data / "clip.npy").write_bytes(b"x")
    log = tmp_path / "forbidden.log"
    env = os.environ | {
        "PYTHONPATH": str(Path(__file__).parent / "worker_guard"),
        "PVDM_TEST_FORBIDDEN_PATHS": str(data),
        "PVDM_TEST_FORBIDDEN_LOG": str(log),
    }
    code = f"open({str(tmp_path / 'allowed.txt')!r}, 'w').close(); open({str(data / 'clip.npy')!r}).read()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0 and "a worker opened the driver's path" in out.stderr
    assert log.read_text().split()[-1] == str(data / "clip.npy")


def test_shards_cover_every_row_once_in_order() -> None:
    from pipelines.cluster import shard_ranges

    assert shard_ranges(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_ranges(2, 8) == [(0, 1), (1, 2)]  # never an empty shard
    assert shard_ranges(5, 1) == [(0, 5)]


@pytest.mark.ray
def test_a_placement_the_cluster_cannot_hold_fails_in_bounded_time_with_what_was_asked(monkeypatch) -> None:
    import ray

    from pipelines.ray_train import fit

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    runtime = RuntimeConfig(num_workers=2, cpus_per_worker=512, placement_timeout_s=3)
    started = time.monotonic()
    try:
        with pytest.raises(ClusterError) as info:
            fit(lambda config: None, {}, runtime, name="too-big", storage_path="/nonexistent-never-written")
    finally:
        ray.shutdown()
    assert time.monotonic() - started < 120
    message = str(info.value)
    assert message.startswith("too-big: 2 workers of 512 CPU could not be placed within 3 s")
    assert "the cluster has 1 node: " in message and "runtime.cpus_per_worker" in message

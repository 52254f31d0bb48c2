"""The pipeline on a multi-node Ray cluster on loopback, with an S3 server as the only storage the nodes share.

A head with no CPUs and two 1-CPU worker nodes, each its own raylet (`ray.cluster_utils.Cluster`). The worker
nodes run with tests/pipelines/worker_guard on PYTHONPATH: any open or listing of a path under the driver's data
fails there and is recorded, as it would fail on a node that does not have the driver's file system.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipelines.projects import make_project, project_env, run
from tests.pipelines.tiny_params import TINY_PARAMS

GUARD = Path(__file__).parent / "worker_guard"


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set variables for what starts inside the block (a Ray node inherits them), then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cluster_params(bucket: str) -> dict:
    params = copy.deepcopy(TINY_PARAMS)
    params["runtime"] |= {"num_workers": 2, "ray_storage": f"s3://{bucket}/ray", "placement_timeout_s": 120.0,
                          "max_failures": 3}  # fmt: skip
    params["autoencoder"]["loss"] |= {"gan_start_step": 4}  # the GAN phase, with its discriminators under DDP
    params["autoencoder"]["train"] |= {"steps": 40, "checkpoint_every": 4, "log_every": 4}
    params["diffusion"]["train"] |= {"steps": 12, "batch_size": 8}
    return params


def wait_for_checkpoints(s3_server, bucket: str, stage: str, proc: subprocess.Popen, log: Path) -> None:  # noqa: ANN001
    """Until `stage` has two checkpoints in S3: the first is then committed (the second is reported after it)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        keys = s3_server.keys(bucket, "ray/")
        folders = {k.split("/")[2] for k in keys if k.startswith(f"ray/{stage}-") and "/checkpoint_" in k}
        if len(folders) >= 2:
            return
        assert proc.poll() is None, f"dvc repro ended before a checkpoint:\n{log.read_text()[-6000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no two {stage} checkpoints in S3 after 600 s:\n{log.read_text()[-6000:]}")


@pytest.mark.cluster
@pytest.mark.slow
def test_pipeline_trains_on_three_nodes_through_s3_and_survives_a_lost_node(
    s3_server, tmp_path: Path
) -> None:  # noqa: ANN001
    from ray.cluster_utils import Cluster

    bucket = s3_server.new_bucket("cluster")
    project = make_project(tmp_path / "project", cluster_params(bucket))
    run(["dvc", "repro", "preprocess"], project)
    forbidden_log = tmp_path / "forbidden.log"
    guard = {
        "PYTHONPATH": os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PVDM_TEST_FORBIDDEN_PATHS": os.pathsep.join(
            str(project / p) for p in ("data", "metrics", "params.yaml")
        ),
        "PVDM_TEST_FORBIDDEN_LOG": str(forbidden_log),
        "PVDM_WORKER_CACHE": str(tmp_path / "node-cache"),
    }
    with environ(**s3_server.env, RAY_USAGE_STATS_ENABLED="0", OMP_WAIT_POLICY="PASSIVE"):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            with environ(**guard):
                nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
            cluster.wait_for_nodes()
            log = tmp_path / "repro.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    ["dvc", "repro", "sample"], cwd=project, stdout=out, stderr=subprocess.STDOUT,
                    env=project_env(RAY_ADDRESS=cluster.address, **s3_server.env),
                )  # fmt: skip
            try:
                wait_for_checkpoints(s3_server, bucket, "train_autoencoder", proc, log)
                cluster.remove_node(nodes[1])  # a worker node is lost mid-run (its worker with it)
                with environ(**guard):
                    cluster.add_node(num_cpus=1)  # ... and a replacement joins, as an autoscaler would
                proc.wait(timeout=1200)
            finally:
                if proc.poll() is None:
                    proc.kill()
        finally:
            cluster.shutdown()

    output = log.read_text()
    assert proc.returncode == 0, output[-8000:]
    assert "train_autoencoder: resuming from the checkpoint of step" in output, output[-8000:]
    assert not forbidden_log.exists(), forbidden_log.read_text()
    autoencoder = json.loads((project / "metrics" / "autoencoder.json").read_text())
    assert autoencoder["steps"] == 40
    for model in ("autoencoder.pt", "diffusion.pt"):
        assert (project / "data" / "models" / model).stat().st_size > 0
    assert (project / "data" / "latents" / "latents.npy").is_file()  # encoded on a worker node, fetched back
    assert (
        len(list((project / "data" / "samples" / "clips").glob("*.mp4")))
        == TINY_PARAMS["sample"]["num_videos"]
    )
    keys = s3_server.keys(bucket)
    assert any(k.startswith("ray/staged/") and k.endswith("data/clips/manifest.parquet") for k in keys)
    assert any(k.startswith("ray/train_diffusion-") and "checkpoint_" in k for k in keys)
    assert any(k.startswith("ray/results/sample-") for k in keys)

"""`runtime`: seed, device and precision shared by the training and sampling stages, and where the work runs.

Two kinds of keys: `seed`, `device` and `precision` change what a stage computes; the others (PLACEMENT_KEYS) only
say where and how wide the work runs, so a changed worker count or storage resumes the same training run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pvdm.config.base import StrictModel


class RuntimeConfig(StrictModel):
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = Field(
        "bf16", description="bf16 autocast where the device supports it"
    )
    num_workers: int = Field(1, ge=1, description="Ray Train workers (data-parallel replicas)")
    use_gpu: bool = False
    ray_storage: str = Field(
        "data/ray",
        min_length=1,
        description="where Ray Train keeps checkpoints and the stages stage their inputs: a folder relative to the "
        "project (one machine), or s3://bucket/prefix (a cluster: any S3 endpoint, through AWS_ENDPOINT_URL)",
    )
    max_failures: int = Field(
        2, ge=-1, description="Ray Train restarts after a worker failure (-1: unlimited)"
    )
    cpus_per_worker: int = Field(
        0,
        ge=0,
        description="CPU cores per Ray worker (torch threads); 0: as many as the nodes that can hold the workers "
        "give each (GPU nodes when use_gpu)",
    )
    placement_timeout_s: float = Field(
        300.0,
        gt=0,
        description="how long to wait for the cluster to place the workers (an autoscaler may add nodes) before "
        "failing with what was asked and what the nodes have",
    )


PLACEMENT_KEYS = frozenset(
    {
        "num_workers",
        "use_gpu",
        "cpus_per_worker",
        "ray_storage",
        "max_failures",
        "placement_timeout_s",
        "device",
    }
)


def training_identity(runtime: RuntimeConfig, init_source: dict | None = None) -> dict:
    """What makes a training run itself: the runtime keys that change what it computes (seed, precision) and
    where its initial weights come from (`init_source`: `train.init_from` with the champion version or file
    SHA-256 it resolved to). A run keeps its identity, and resumes, when only the placement keys change; a new
    champion is a new run."""
    identity = {k: v for k, v in runtime.model_dump().items() if k not in PLACEMENT_KEYS}
    return identity | ({"init_source": dict(init_source)} if init_source else {})

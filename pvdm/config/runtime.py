"""`runtime`: seed, device and precision shared by the training and sampling stages."""

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
        description="where Ray Train keeps checkpoints (a folder relative to the project, or s3://... for a cluster)",
    )
    max_failures: int = Field(
        2, ge=-1, description="Ray Train restarts after a worker failure (-1: unlimited)"
    )
    cpus_per_worker: int = Field(
        0, ge=0, description="CPU cores per Ray worker (torch threads); 0: this machine's cores / num_workers"
    )

    def worker_cpus(self, machine_cores: int) -> int:
        return self.cpus_per_worker or max(1, machine_cores // self.num_workers)

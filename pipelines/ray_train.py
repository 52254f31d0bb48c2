"""Run a pvdm per-worker training loop on Ray Train (TorchTrainer).

The walk from params.yaml to a worker is three hops: the stage validates params once, binds the library loop to
its config sections (`functools.partial`), and `train_on_ray` ships that callable (pydantic configs pickle) to
every worker, which calls it with its RayContext. No JSON round trip, no second validation.

Locally Ray starts itself; with RAY_ADDRESS set it joins that cluster (pipelines.cluster: connecting, sizing the
workers from the nodes that hold them, a bounded wait for their placement, no shared file system). Workers and GPU
use come from params (`runtime.num_workers`, `runtime.use_gpu`). Checkpoints go through `ray.train.report` into
`storage/name`; re-running with the same name after a crash or a SIGKILL resumes from the latest reported
checkpoint (Ray Train v2's job-level restoration), and FailureConfig retries worker failures. The name hashes what
training computes (not where it runs), so a rerun with another worker count resumes too.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Ray reads this when it is imported. Enabled (Ray's default), a driver started under `uv run` (make demo) makes
# every worker rebuild the project and reinstall its ~290 packages into a fresh uv environment. Locally the
# workers share this process's environment; on a cluster they run the cluster's image.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import ray  # noqa: E402
import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.train.v2.api.exceptions import ControllerError, WorkerGroupError

from pipelines.cluster import (
    StagedInputs,
    alive_nodes,
    check_storage,
    init_ray,
    stage_inputs,
    storage_location,
    wait_for_placement,
    worker_bundle,
    worker_cpus,
)
from pvdm.checkpoint import load_checkpoint, save_checkpoint
from pvdm.config import Params, RuntimeConfig
from pvdm.config.runtime import training_identity
from pvdm.training.loop import Metrics, TrainContext

# Ray Train's own wait for a worker group (RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S): each expiry is one
# controller failure, so the limit below turns placement_timeout_s into a bound on a restart's placement too.
WORKER_GROUP_START_TIMEOUT_S = 60.0

CHECKPOINT_FILE = "checkpoint.pt"
WorkerFn = Callable[["RayContext", dict[str, Any]], None]


class RayContext:
    """pvdm's TrainContext on a Ray Train worker. Rank 0 also forwards metrics to `log_metrics` (MLflow)."""

    def __init__(
        self, log_metrics: Callable[[Metrics, int], None] | None = None, torch_threads: int = 0
    ) -> None:
        ctx = ray.train.get_context()
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self._log_metrics = log_metrics if self.rank == 0 else None

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(model)  # moves to the device; DDP when world_size > 1

    def resume_payload(self) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return load_checkpoint(Path(folder) / CHECKPOINT_FILE)

    def report(self, step: int, metrics: Metrics, payload: dict[str, Any] | None) -> None:
        metrics = {**metrics, "step": step}
        if self._log_metrics is not None:
            self._log_metrics(metrics, step)
        if payload is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(Path(folder) / CHECKPOINT_FILE, payload)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


class TrainingError(RuntimeError):
    """Training failed on a worker; the message carries the worker's own error (e.g. a non-finite loss)."""


def fit(
    train_loop: Callable[[dict[str, Any]], None],
    loop_config: dict[str, Any],
    runtime: RuntimeConfig,
    *,
    name: str,
    storage_path: Path | str,
    max_failures: int | None = None,
) -> ray.train.Result:
    """Run `train_loop(loop_config)` on `runtime.num_workers` workers; returns Ray's Result (latest checkpoint).

    Before Ray Train starts: the storage is checked against the cluster's node count, the workers are sized from
    the nodes that can hold them, and their placement is awaited for at most `runtime.placement_timeout_s`."""
    init_ray()
    nodes = alive_nodes()
    check_storage(runtime, len(nodes))
    # Ray gives each worker OMP_NUM_THREADS=1 by default: on CPU that wastes all but one core per worker.
    cpus = worker_cpus(runtime, nodes)
    bundle = worker_bundle(runtime, cpus)
    wait_for_placement(runtime, bundle, name)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={**loop_config, "torch_threads": cpus},
        scaling_config=ScalingConfig(
            num_workers=runtime.num_workers, use_gpu=runtime.use_gpu, resources_per_worker=bundle
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(Path(storage_path).resolve())
            if "://" not in str(storage_path)
            else str(storage_path),
            failure_config=FailureConfig(
                max_failures=runtime.max_failures if max_failures is None else max_failures,
                controller_failure_limit=max(
                    1, math.ceil(runtime.placement_timeout_s / WORKER_GROUP_START_TIMEOUT_S)
                ),
            ),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        return trainer.fit()
    except WorkerGroupError as err:
        causes = "; ".join(
            f"worker {rank}: {_last_line(exc)}" for rank, exc in sorted(err.worker_failures.items())
        )
        raise TrainingError(
            f"{name} failed ({causes}). Its checkpoints are kept in {storage_path}/{name}: "
            "run the stage again to resume from the latest one."
        ) from err
    except ControllerError as err:  # e.g. a restart whose workers could not be placed again
        raise TrainingError(
            f"{name} failed: {_last_line(err.controller_failure)}. Its checkpoints are kept in "
            f"{storage_path}/{name}: run the stage again to resume from the latest one."
        ) from err


def _last_line(exc: BaseException) -> str:
    """A worker error arrives wrapped with its remote traceback; the last line is the error itself."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def final_payload(result: ray.train.Result) -> dict[str, Any]:
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        return load_checkpoint(Path(folder) / CHECKPOINT_FILE)


# --- the training stages' entry -----------------------------------------------------------------------------


def run_name(
    stage: str, section: dict[str, Any], *inputs: Path, init_source: dict[str, Any] | None = None
) -> str:
    """Ray run name: the same training params and inputs resume the same run after a crash, whatever the worker
    count, storage or device (the section's `runtime` is reduced to its training identity, which names the
    initial weights `init_source` resolved to: a new champion is a new run); anything else starts fresh."""
    if "runtime" in section:
        identity = training_identity(RuntimeConfig(**section["runtime"]), init_source)
        section = {**section, "runtime": identity}
    h = hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode())
    for path in inputs:
        h.update(path.read_bytes())
    return f"{stage}-{h.hexdigest()[:12]}"


def _library_loop_worker(config: dict[str, Any]) -> None:
    """What each Ray worker runs: the stage's loop, given this worker's context and its local copy of the inputs
    (the project itself on one machine; a cache filled from storage on a cluster's node)."""
    ctx = RayContext(config["log_metrics"], config["torch_threads"])
    config["loop"](ctx, config["inputs"].materialize())


def train_on_ray(
    stage: str,
    loop: Callable[[TrainContext, Path], Any],
    params: Params,
    *,
    log_metrics: Callable[[Metrics, int], None],
    section: dict[str, Any],
    inputs: list[str],
    root: Path,
    init_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a training loop on Ray Train and return its final checkpoint payload.

    `loop(ctx, local_root)` opens the stage's inputs under `local_root`, never under the driver's project: `inputs`
    (paths relative to `root`) are staged to the workers through `runtime.ray_storage` when it is remote. The Ray
    run is named by `section`, the initial weights' source (`init_source`, a warm start's) and the inputs'
    content, so a rerun after a crash resumes it: resuming beats warm-starting again."""
    staged: StagedInputs = stage_inputs(root, inputs, params.runtime)
    name = run_name(stage, section, init_source=init_source) + f"-{staged.digest[:8]}"
    config = {"loop": loop, "log_metrics": log_metrics, "inputs": staged}
    result = fit(
        _library_loop_worker,
        config,
        params.runtime,
        name=name,
        storage_path=storage_location(params.runtime, root),
    )
    return final_payload(result)

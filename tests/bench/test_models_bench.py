"""Smoke test of bench.models on a tiny config: the result structure, not the speed."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch

from bench.models import (
    PAPER,
    Job,
    ModelSizes,
    largest_batch,
    main,
    max_batch_report,
    parse_args,
    plan_jobs,
    report,
    run_isolated,
    run_job,
)
from pvdm.families.triplane.config import TriplaneAEConfig, TriplaneUNetConfig
from pvdm.profiling import in_fresh_process

TINY = ModelSizes(
    "tiny",
    resolution=16,
    frames=4,
    ae=TriplaneAEConfig(
        width=16, heads=2, patch_size=4, encoder_depth=1, decoder_depth=1, projection_depth=1
    ),
    unet=TriplaneUNetConfig(
        model_channels=8,
        channel_mult=[1, 2],
        num_res_blocks=1,
        attention_resolutions=[2],
        num_heads=2,
        norm_groups=4,
    ),
    batches={"cpu": (2, 2)},
)
META = {
    "device": "cpu",
    "device_name": "test",
    "threads": 1,
    "precision": "fp32",
    "torch": "x",
    "load_average": 0.0,
    "memory": "rss",
    "omp_wait_policy": "default",
}


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread in this process: with OpenMP's default spin-waiting, two threads on a loaded shared CPU run
    these tiny steps many times slower (bench.models sets OMP_WAIT_POLICY=PASSIVE for its own processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_job(kind: str, **overrides) -> Job:
    fields = dict(kind=kind, sizes=TINY, device="cpu", precision="fp32", batch=2, repeats=1, warmup=1)
    return Job(**(fields | overrides))


@pytest.mark.parametrize("kind", ["ae", "unet"])
def test_training_measurement_is_complete_and_positive(kind: str) -> None:
    result = run_job(tiny_job(kind, lpips=False))
    assert result["kind"] == kind and result["config"] == "tiny" and result["batch"] == 2
    assert result["params"] > 0 and result["peak_bytes"] > 0
    assert len(result["step_s"]) == 1 and all(s > 0 for s in result["step_s"])
    assert result["per_clip_s"] == pytest.approx(result["step_s"][0] / 2) and result["per_clip_cpu_s"] > 0
    json.dumps(result)  # --json writes it as it is


def test_sampling_extrapolates_from_the_steps_it_ran() -> None:
    result = run_job(tiny_job("sample", batch=1, ddim_steps=20, measured_steps=2))
    assert result["extrapolated"]
    assert result["per_step_s"] > 0 and result["decode_s"] > 0 and result["peak_bytes"] > 0
    assert result["video_s"] == pytest.approx(20 * result["per_step_s"] + result["decode_s"])
    assert result["video_cpu_s"] > 0
    assert "20 DDIM steps" in report([result], META) and "extrapolated" in report([result], META)


def test_a_measurement_runs_in_its_own_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # read by the new process when it loads torch
    # sampling builds no optimizer, whose first use imports torch._dynamo (seconds): the cheapest job to spawn
    result = run_isolated(tiny_job("sample", batch=1, ddim_steps=2, measured_steps=2))
    assert "error" not in result and result["video_s"] > 0 and not result["extrapolated"]


def test_a_process_that_dies_or_is_stopped_for_host_memory_becomes_an_error_result() -> None:
    died = in_fresh_process(os._exit, 3)
    assert died["oom"] and "exit code 3" in died["error"]
    stopped = in_fresh_process(time.sleep, 60, min_free_gb=1e9)  # no host has that much free: stopped at once
    assert stopped["oom"] and "GiB free" in stopped["error"]


def test_largest_batch_doubles_then_bisects_to_the_last_batch_that_fits() -> None:
    tried = []

    def fake_run(job: Job) -> dict:
        tried.append(job.batch)
        return {"oom": True} if job.batch > 5 else {"per_clip_s": 1.0, "peak_bytes": job.batch}

    found = largest_batch(tiny_job("ae"), limit=64, run=fake_run)
    assert found["max_batch"] == 5 and found["peak_bytes"] == 5 and not found["at_limit"]
    assert tried == [1, 2, 4, 8, 6, 5]


def test_largest_batch_reports_a_failure_that_is_not_memory_instead_of_counting_it_as_a_fit() -> None:
    def fake_run(job: Job) -> dict:
        return (
            {"error": "invalid configuration argument"}
            if job.batch >= 4
            else {"per_clip_s": 1.0, "peak_bytes": 1}
        )

    found = largest_batch(tiny_job("unet"), limit=64, run=fake_run)
    assert found["max_batch"] == 2 and "invalid configuration" in found["error"]
    table = max_batch_report([{"config": "tiny"} | found])
    assert "invalid configuration" in table and "tiny" in table


def test_the_paper_config_on_cpu_defaults_to_a_short_clearly_extrapolated_run() -> None:
    ae, unet, sample = plan_jobs(PAPER, parse_args([]), torch.device("cpu"))
    assert (ae.kind, unet.kind, sample.kind) == ("ae", "unet", "sample")
    assert ae.repeats == 1 and ae.warmup == 0 and ae.checkpointing and not unet.checkpointing
    assert sample.ddim_steps == 100 and sample.measured_steps == 10


def test_max_batch_needs_cuda() -> None:
    with pytest.raises(SystemExit, match="CUDA"):
        main(["--device", "cpu", "--max-batch"])

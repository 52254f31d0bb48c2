"""`pvdm compare` at the tiniest size: PVDM and pixel VDM on the same clips, one table, one MLflow comparison."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

import pipelines.compare as compare_module
from pipelines.compare import COLUMNS, compare_families
from tests.pipelines.projects import make_project
from tests.pipelines.tiny_params import TINY_PARAMS

TINY_VDM = copy.deepcopy(TINY_PARAMS) | {
    "autoencoder": {"model": {"type": "identity"}},
    "diffusion": {
        "denoiser": {"type": "unet3d", "model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                     "attention_resolutions": [2], "num_heads": 2, "norm_groups": 4},
        "process": {"timesteps": 100},
        "train": {"steps": 6, "batch_size": 4, "lr": 0.001, "checkpoint_every": 6, "log_every": 3},
    },
}  # fmt: skip


def presets(project: Path) -> list[Path]:
    (project / "params").mkdir(exist_ok=True)
    (project / "params" / "vdm.yaml").write_text(yaml.safe_dump(TINY_VDM))
    return [project / "params.yaml", project / "params" / "vdm.yaml"]


def experiment_runs(uri: str) -> list[mlflow.entities.Run]:
    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("pvdm").experiment_id])


@pytest.mark.slow
def test_two_families_side_by_side_in_one_table_and_one_mlflow_comparison(
    tmp_path: Path, monkeypatch
) -> None:
    project = make_project(tmp_path / "project", videos=4)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rows = compare_families(presets(project), project, tmp_path / "compare")

    assert [r["family"] for r in rows] == ["PVDM", "pixel VDM"] and not any("error" in r for r in rows)
    pvdm, vdm = rows
    assert pvdm["autoencoder_params"] > 0 and vdm["autoencoder_params"] == 0  # identity: nothing to train
    assert "autoencoder_step_s" in pvdm and "autoencoder_step_s" not in vdm
    for row in rows:
        assert row["denoiser_params"] > 0 and row["sample_s_per_video"] > 0 and row["fvd_16"] > 0
        assert row["n_fake"] == TINY_PARAMS["evaluate"]["fvd_num_fake"] and "train_mb_per_sample" in row
    assert pvdm["sample_time_ratio_to_pvdm"] == 1.0
    assert vdm["sample_time_ratio_to_pvdm"] == pytest.approx(
        vdm["sample_s_per_video"] / pvdm["sample_s_per_video"]
    )

    table = (tmp_path / "compare" / "compare.md").read_text()
    assert table.count("\n| PVDM |") == 1 and "| pixel VDM |" in table and "N/A" not in table
    assert "16 x 16 x 16 clips, ddim with 4 steps" in table
    assert json.loads((tmp_path / "compare" / "compare.json").read_text())["rows"][1]["family"] == "pixel VDM"

    runs = experiment_runs(uri)
    parent = next(r for r in runs if r.data.tags.get("pvdm.kind") == "comparison")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.data.tags["pvdm.family"] for c in children) == ["PVDM", "pixel VDM"]
    shared = {"denoiser_params", "diffusion_step_s", "sample_s_per_video", "sample_peak_mb", "fvd_16"}
    assert all(shared <= set(c.data.metrics) for c in children)  # the same names: MLflow's compare view
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(parent.info.run_id)}
    assert {"compare.md", "compare.json"} <= artifacts

    # a second comparison reuses both families' trained models: no training step runs again
    monkeypatch.setattr("pvdm.comparison.train_diffusion", _must_not_train)
    monkeypatch.setattr("pvdm.comparison.train_autoencoder", _must_not_train)
    again = compare_families(presets(project), project, tmp_path / "compare")
    assert [r["diffusion_step_s"] for r in again] == [r["diffusion_step_s"] for r in rows]


def _must_not_train(*args, **kwargs):
    raise AssertionError("the comparison retrained a family whose inputs did not change")


@pytest.mark.slow
def test_a_family_that_fails_is_na_in_its_row_and_the_others_run(tmp_path: Path, monkeypatch) -> None:
    project = make_project(tmp_path / "project", videos=3)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def oom_for_pixels(params, *args, **kwargs):
        if params.autoencoder.model.type == "identity":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 11.10 GiB")
        return {name: 1.0 for _, name, _ in COLUMNS if name != "sample_time_ratio_to_pvdm"}

    monkeypatch.setattr(compare_module, "run_family", oom_for_pixels)
    rows = compare_families(
        presets(project)[::-1], project, tmp_path / "compare"
    )  # pixel VDM first: it fails
    assert (rows[0]["family"], rows[0]["error"]) == ("pixel VDM", "out of memory") and "error" not in rows[1]
    table = (tmp_path / "compare" / "compare.md").read_text()
    assert "| pixel VDM | N/A: out of memory |" in table and "| PVDM | 1 |" in table

"""`pvdm compare`: every family on the same clips, resolution, frames, sampler and steps, in one MLflow comparison.

    pvdm compare                                 # PVDM (params.yaml), pixel VDM, 3D-VQGAN + VDM, VIDM (params/*.yaml)
    pvdm compare --preset params.yaml --preset params/vdm.yaml --out data/compare

The first preset sets what is held equal (pvdm.comparison.aligned). One MLflow parent run (`compare-...`, tag
`pvdm.kind=comparison`) holds a child run per family with the same metric names, so MLflow's compare view is the
table; the table itself (markdown and JSON) is written to `--out` and logged as the parent's artifacts. A family
that fails (out of memory, say) gets "N/A: <reason>" in its row and the others still run. Trained models are kept
under `--out/<family>-<key>/` and reused while the family's params and the clips are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import mlflow

from pipelines.config import load_pipeline_params
from pipelines.tracking import configure, flatten, git_commit
from pvdm.comparison import aligned, family_name, run_family, workdir_key
from pvdm.config import Params
from pvdm.data.preprocess import run_preprocess
from pvdm.device import resolve_device
from pvdm.metrics.features import I3DFeatureExtractor

log = logging.getLogger("pvdm.compare")
# (column, metric, format): the table's columns, in order; each metric is logged under the same name per family.
COLUMNS = (
    ("AE params", "autoencoder_params", "{:,.0f}"),
    ("denoiser params", "denoiser_params", "{:,.0f}"),
    ("AE train s/step", "autoencoder_step_s", "{:.3f}"),
    ("diffusion train s/step", "diffusion_step_s", "{:.3f}"),
    ("train MB/sample (CPU)", "train_mb_per_sample", "{:.1f}"),
    ("max train batch (GPU)", "max_train_batch", "{:.0f}"),
    ("sample s/video", "sample_s_per_video", "{:.2f}"),
    ("sample peak MB", "sample_peak_mb", "{:.0f}"),
    ("fvd_16", "fvd_16", "{:.1f}"),
    ("sampling time / PVDM's", "sample_time_ratio_to_pvdm", "{:.2f}x"),
)


def failure_reason(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".splitlines()[0]
    return "out of memory" if "out of memory" in text.lower() or "OutOfMemory" in text else text[:200]


def prepare_clips(base: Params, root: Path, out: Path) -> Path:
    """The clips every family shares: the project's raw videos cut at the first preset's geometry (incremental:
    a rerun decodes only new videos)."""
    clips = out / "clips"
    run_preprocess(root / "data" / "raw", clips, base.data, base.preprocess, progress=False)
    return clips


def compare_families(presets: list[Path], root: Path, out: Path) -> list[dict[str, Any]]:
    """Run every preset's family and return one row per family (metrics, or `error` with its reason)."""
    base = load_pipeline_params(presets[0])
    clips = prepare_clips(base, root, out)
    data_key = hashlib.sha256(
        (clips / "manifest.parquet").read_bytes()
    ).hexdigest()  # the real-stats cache key
    extractor = I3DFeatureExtractor(
        device=resolve_device(base.evaluate.device), batch_size=base.evaluate.batch_size
    )
    configure(root)
    rows: list[dict[str, Any]] = []
    with mlflow.start_run(
        run_name=f"compare-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={"pvdm.kind": "comparison", "pvdm.git_commit": git_commit(root)},
    ) as parent:
        mlflow.log_params(flatten({"data": base.data.model_dump(), "sample": base.sample.model_dump()}))
        for preset in presets:
            rows.append(run_one(preset, base, clips, out, extractor, data_key, parent.info.run_id))
        add_ratios(rows)
        client = mlflow.MlflowClient()
        for row in rows:
            if "sample_time_ratio_to_pvdm" in row:
                client.log_metric(
                    row["run_id"], "sample_time_ratio_to_pvdm", row["sample_time_ratio_to_pvdm"]
                )
        write_outputs(rows, base, out)
        mlflow.log_artifact(str(out / "compare.md"))
        mlflow.log_artifact(str(out / "compare.json"))
    return rows


def run_one(
    preset: Path,
    base: Params,
    clips: Path,
    out: Path,
    extractor: I3DFeatureExtractor,
    data_key: str,
    parent: str,
) -> dict[str, Any]:
    params = aligned(load_pipeline_params(preset), base)
    name = family_name(params)
    row: dict[str, Any] = {"family": name, "preset": str(preset)}
    tags = {"pvdm.kind": "comparison-family", "pvdm.family": name, "mlflow.parentRunId": parent}
    with mlflow.start_run(run_name=name, nested=True, tags=tags) as run:
        row["run_id"] = run.info.run_id
        mlflow.log_params(flatten({"autoencoder": params.autoencoder.model_dump(),
                                   "diffusion": params.diffusion.model_dump()}))  # fmt: skip
        workdir = out / f"{name.replace(' ', '_').replace('+', '_')}-{workdir_key(params, clips)}"
        log.info("compare: %s (%s) in %s", name, preset, workdir)
        try:
            metrics = run_family(params, clips, workdir, extractor, data_key)
        except Exception as err:  # one family's failure is its row's N/A, as the paper's table shows it
            row["error"] = failure_reason(err)
            log.warning("compare: %s failed: %s", name, row["error"], exc_info=True)
            mlflow.set_tag("pvdm.status", f"N/A: {row['error']}")
            return row
        mlflow.log_metrics(metrics)
        return row | metrics


def add_ratios(rows: list[dict[str, Any]]) -> None:
    reference = next((r for r in rows if r["family"] == "PVDM" and "sample_s_per_video" in r), None)
    if reference is None:
        return
    for row in rows:
        if "sample_s_per_video" in row:
            row["sample_time_ratio_to_pvdm"] = row["sample_s_per_video"] / reference["sample_s_per_video"]


def cell(row: dict[str, Any], metric: str, fmt: str) -> str:
    if "error" in row:
        return f"N/A: {row['error']}"
    return fmt.format(row[metric]) if metric in row else "-"


def markdown(rows: list[dict[str, Any]], base: Params) -> str:
    d, s = base.data, base.sample
    head = (f"Families on {d.frames} x {d.resolution} x {d.resolution} clips, {s.sampler} with {s.steps} steps, "
            f"FVD-16 of {base.evaluate.fvd_num_fake} generated clips against the same real clips.\n\n")  # fmt: skip
    header = "| family | " + " | ".join(c[0] for c in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    lines += ["| " + " | ".join([r["family"], *(cell(r, m, f) for _, m, f in COLUMNS)]) + " |" for r in rows]
    return head + "\n".join(lines) + "\n"


def write_outputs(rows: list[dict[str, Any]], base: Params, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(markdown(rows, base))
    (out / "compare.json").write_text(
        json.dumps({"rows": rows, "data": base.data.model_dump()}, indent=2) + "\n"
    )

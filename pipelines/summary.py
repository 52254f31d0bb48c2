"""Print where a finished pipeline's results are (the last step of `make demo`)."""

from __future__ import annotations

import json

import mlflow

from pipelines.paths import METRICS, PLOTS, REPORTS, ROOT, SAMPLES
from pipelines.tracking import EXPERIMENT, configure, experiment_ui_url

UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default

SHOWN = ("fvd_16", "fvd_real_halves", "fvd_noise_latents", "fvd_long", "motion_real", "motion_fake", "recon_psnr", "recon_ssim",
         "recon_lpips", "recon_fvd", "n_real", "n_fake")  # fmt: skip


def main() -> None:
    rel = lambda p: p.relative_to(ROOT)  # noqa: E731
    print("\npvdm: pipeline finished\n")
    eval_file = METRICS / "eval.json"
    if eval_file.is_file():
        metrics = json.loads(eval_file.read_text())
        for key in SHOWN:
            if key in metrics:
                value = metrics[key]
                print(f"  {key:<18} {value:.4f}" if isinstance(value, float) else f"  {key:<18} {value}")
    print(f"\n  samples (mp4)      {rel(SAMPLES / 'clips')}/, long videos in {rel(SAMPLES / 'long')}/")
    print(f"  previews (gif)     {rel(SAMPLES / 'preview.gif')}, {rel(SAMPLES / 'long_preview.gif')}")
    print(f"  reconstructions    {rel(REPORTS / 'recon_grid.gif')} (originals above, reconstructions below)")
    print(f"  metrics            {rel(METRICS)}/*.json   (dvc metrics show)")
    print(f"  training curves    {rel(PLOTS)}/*.csv      (dvc plots show -> dvc_plots/index.html)")
    print(f"  data report        {rel(ROOT / 'data' / 'clips' / 'report.md')}")
    print(
        f"  MLflow runs        uv run mlflow ui --backend-store-uri sqlite:///mlflow.db  -> {mlflow_link()}\n"
    )


def mlflow_link() -> str:
    """The experiment's page on the UI's model-training view (MLflow 3 opens on its GenAI view otherwise)."""
    configure(ROOT)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    return experiment_ui_url(UI, experiment.experiment_id) if experiment else UI


if __name__ == "__main__":
    main()

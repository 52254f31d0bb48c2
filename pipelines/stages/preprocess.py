"""DVC stage `preprocess`: data/raw/ -> data/clips/ (sharded uint8 clips, manifest, data report, validation)."""

from __future__ import annotations

from concurrent.futures import Executor

from pipelines.stages.common import CLIPS, METRICS, RAW, run_stage, write_json
from pvdm.config import Params
from pvdm.data.workers import validation_process


def main(params: Params) -> None:
    # First of all: the validation process imports great-expectations (3 s) on the other core while this one
    # imports MLflow and pandas and sets up the run (2 s). A run with few new videos then barely waits for it.
    with validation_process() as validator:
        preprocess(params, validator)


def preprocess(params: Params, validator: Executor) -> None:
    # Imported here, once the validation process has started (see main): together 1 s or more.
    import mlflow

    from pipelines.tracking import stage_run
    from pvdm.data.preprocess import run_preprocess

    section = {"data": params.data.model_dump(), "preprocess": params.preprocess.model_dump()}
    with stage_run("preprocess", section, deps=["data/raw"]):
        try:
            report = run_preprocess(RAW, CLIPS, params.data, params.preprocess, validator=validator)
        finally:  # the report and validation result are logged whether the stage passed or failed
            for name in ("report.json", "report.md", "validation.json"):
                if (CLIPS / name).is_file():
                    mlflow.log_artifact(str(CLIPS / name), artifact_path="data_report")
        counts = report.counts()
        mlflow.log_metrics({k: float(v) for k, v in counts.items()})
        write_json(METRICS / "preprocess.json", counts)


if __name__ == "__main__":
    run_stage(main)

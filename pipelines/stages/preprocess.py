"""DVC stage `preprocess`: data/raw/ -> data/clips/ (sharded uint8 clips, manifest, data report, validation)."""

from __future__ import annotations

import mlflow

from pipelines.stages.common import CLIPS, METRICS, RAW, run_stage, write_json
from pipelines.tracking import stage_run
from pvdm.config import Params
from pvdm.data.preprocess import run_preprocess, validation_process


def main(params: Params) -> None:
    section = {"data": params.data.model_dump(), "preprocess": params.preprocess.model_dump()}
    # The validation process imports great-expectations (seconds) on another core while MLflow sets up the run.
    with validation_process() as validator, stage_run("preprocess", section, deps=["data/raw"]):
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

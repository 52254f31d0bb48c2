"""What a user sees in MLflow's UI, in a real browser (Debian's Chromium, headless) against a real `mlflow server`.

MLflow 3.17's UI picks its GenAI or model-training view from the link (`?workflowType=`) or the browser's saved
switch, not from the experiment's kind tag (seen here: a fresh browser opens `#/experiments/<id>` on the GenAI
overview, tag or not). So the link pvdm prints must carry the view, and these tests open exactly that link.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipelines import tracking
from pipelines.promotion import KEPT, Decision, decision_tags, record
from pvdm.metrics.bootstrap import Interval

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Debian's chromium (scripts/install-system-deps.sh installs it)"
    ),
]


def rendered_text(url: str, expect: str, tries: int = 3) -> str:
    """The visible text of the page once the single-page app has rendered `expect` (or the last try's text)."""
    text = ""
    for attempt in range(tries):
        argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--virtual-time-budget={20_000 * (attempt + 1)}", "--dump-dom", url]  # fmt: skip
        dom = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
        dom = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
        text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))
        if expect in text:
            break
    return text


@pytest.fixture
def ui_experiment(mlflow_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: ANN001
    """pvdm's experiment on the server, as the stages set it up; returns its id."""
    for key, value in {"MLFLOW_TRACKING_URI": mlflow_server.tracking_uri, **mlflow_server.s3.env}.items():
        monkeypatch.setenv(key, value)
    tracking.configure(tmp_path)
    return mlflow.get_experiment_by_name(tracking.EXPERIMENT).experiment_id


def test_the_printed_link_opens_the_model_training_view_with_the_runs_dataset(
    mlflow_server,
    ui_experiment: str,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    name, digest = f"train_autoencoder-{uuid.uuid4().hex[:8]}", hashlib.sha256(b"clip store").hexdigest()
    (tmp_path / "clips").mkdir()
    with mlflow.start_run(run_name=name):
        mlflow.log_metric("recon_psnr", 19.2)
        tracking.log_dataset_input("clips", tmp_path / "clips", digest)

    text = rendered_text(tracking.experiment_ui_url(mlflow_server.tracking_uri, ui_experiment), name)
    assert f"Runs - Experiment {ui_experiment}" in text  # the runs table, not the GenAI overview
    assert name in text and f"clips ({digest[: tracking.DATASET_DIGEST_CHARS]})" in text  # the Dataset column
    assert "Traces 0" not in text and "Detect Issues" not in text


def test_a_diffusion_model_version_page_shows_the_promotion_decision(
    mlflow_server, ui_experiment: str
) -> None:  # noqa: ANN001
    client, model = MlflowClient(), f"pvdm-diffusion-ui-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(run_name="pipeline") as parent:
        pass
    client.create_registered_model(model)
    version = client.create_model_version(
        model, f"{parent.info.artifact_uri}/model", parent.info.run_id
    ).version
    decision = Decision(
        KEPT, "the challenger is not better beyond the noise", 905.5, 910.25, {model: version}, {},
        [801.0, 1003.0], [811.0, 1012.0], Interval(-4.75, -41.0, 26.5), "paired bootstrap, margin 0",
        "ab" * 32, True,
    )  # fmt: skip
    record(client, parent.info.run_id, decision)

    text = rendered_text(f"{mlflow_server.tracking_uri}/#/models/{model}/versions/{version}", "pvdm.decision")
    assert f"{model} v{version}" in text
    for key, value in decision_tags(decision).items():
        assert f"{key} {value}" in text, key  # each tag's name beside its value in the Tags table

"""MLflow against the services a team deployment uses: PostgreSQL backend store, S3 artifact store, `mlflow server`.

A small training-like run logs params, step metrics, an artifact and a model; the model is registered, given the
`champion` alias and loaded back by that alias. The assertions look behind the server: the run and the model version
are rows in PostgreSQL, and the artifacts are objects in the S3 bucket.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.service_fixtures import MlflowServer

pytestmark = [pytest.mark.services, pytest.mark.slow]

MODEL_NAME = "pvdm-services-test"


def _train(steps: int = 20) -> tuple[nn.Module, list[float]]:
    """Fit y = 3x - 1 with a tiny MLP; returns the model and the loss per step."""
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    losses = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x), 3 * x - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


@pytest.fixture
def tracking(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.tracking_uri)
    # Artifacts go through the server's proxy: the client itself holds no S3 credentials.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    yield mlflow
    mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_a_run_logs_and_a_registered_model_loads_back(tracking, mlflow_server: MlflowServer) -> None:
    mlflow = tracking
    mlflow.set_experiment("services-test")
    model, losses = _train()
    example = np.linspace(-1, 1, 5, dtype=np.float32).reshape(5, 1)
    with mlflow.start_run(run_name="tiny-stage") as run:
        mlflow.log_params({"lr": 0.1, "steps": len(losses)})
        for step, loss in enumerate(losses):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_dict({"final_loss": losses[-1]}, "metrics/tiny.json")
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            registered_model_name=MODEL_NAME,
            serialization_format="pt2",  # torch.export: loading runs no pickled code
            input_example=example,
            pip_requirements=["torch"],
        )
    client = mlflow.MlflowClient()
    version = info.registered_model_version
    client.set_registered_model_alias(MODEL_NAME, "champion", version)

    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(losses)
    assert losses[-1] < losses[0]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="metrics/tiny.json")
    assert json.loads(Path(local).read_text()) == {"final_loss": losses[-1]}

    loaded = mlflow.pytorch.load_model(f"models:/{MODEL_NAME}@champion")
    x = torch.from_numpy(example)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)

    _assert_rows_in_postgres(mlflow_server, run.info.run_id, version)
    _assert_objects_in_s3(mlflow_server, run.info.run_id)


def _assert_rows_in_postgres(server: MlflowServer, run_id: str, version: int | str) -> None:
    import psycopg

    with psycopg.connect(server.backend_uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
        assert cur.fetchall() == [("FINISHED",)]
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL_NAME,))
        assert cur.fetchall() == [("champion", int(version))]


def _assert_objects_in_s3(server: MlflowServer, run_id: str) -> None:
    keys = server.s3.keys(server.artifact_bucket, server.artifact_prefix + "/")
    assert any(k.endswith(f"{run_id}/artifacts/metrics/tiny.json") for k in keys), keys
    assert any(k.endswith("MLmodel") for k in keys), keys  # the logged model's files live in the bucket too

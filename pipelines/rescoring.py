"""Scores that promotion can compare: fvd_16 of a registered model pair on one evaluation set and protocol.

A challenger's score comes from its pipeline run's `evaluate` stage (metrics, the `pvdm.eval_set_sha256` and
`pvdm.protocol_sha256` tags, the `fvd_16_features.npz` artifact). A champion's score on that same set and protocol is
looked up in its diffusion version's tags (`pvdm.score.<key>`); when there is none, the champion is scored again:
its checkpoints are downloaded (pipelines/champion.py), sampled with the challenger's sample config and seeds (the
`sample` stage's function) and scored by pvdm.evaluation's fvd_16 against today's clip store; the features are
logged to the champion's training run and the score cached as a tag, so the next retrain on the same set reuses it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from pipelines.champion import AUTOENCODER, CHECKPOINT_FILES, DIFFUSION, download_checkpoint
from pipelines.stages.evaluate import FEATURES_ARTIFACT
from pipelines.stages.sample import generate
from pipelines.tracking import safe_tags
from pvdm.config import Params
from pvdm.data.clips import ClipStore
from pvdm.data.layout import MANIFEST
from pvdm.device import resolve_device
from pvdm.evaluation import score_fvd_16
from pvdm.hashing import sha256_file
from pvdm.metrics.features import I3DFeatureExtractor

SCORE_TAG = "pvdm.score."  # + the score key: a cached score of this version (JSON)


@dataclass(frozen=True)
class Score:
    """fvd_16 of one model pair with its bootstrap interval, where it was measured, and its features' artifact."""

    fvd_16: float
    ci: list[float]
    eval_set_sha256: str
    protocol_sha256: str
    run_id: str  # the run holding the features artifact
    features_path: str  # artifact path inside that run
    rescored: bool = False  # True: computed by promotion (the champion on the challenger's set)

    def features(self, client: MlflowClient) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(self.run_id, self.features_path, tmp)
            with np.load(local) as data:
                return {"real": data["real"], "fake": data["fake"]}


def score_key(score_set: str, protocol: str, params: Params, autoencoder_version: str) -> str:
    """What a cached score must match to be reused: the set, the protocol, the sampling config and seeds, the
    device that sampled (noise differs across devices) and the autoencoder the pair decodes with."""
    record = {"eval_set_sha256": score_set, "protocol_sha256": protocol, "sample": params.sample.model_dump(),
              "device": params.runtime.device, "autoencoder": autoencoder_version}  # fmt: skip
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:24]


def evaluated_score(evaluate: Run) -> Score | None:
    """The score an evaluate stage run logged; None for runs from before intervals and features were logged."""
    metrics, tags = evaluate.data.metrics, evaluate.data.tags
    needed = ("fvd_16", "fvd_16_ci_low", "fvd_16_ci_high")
    if not all(k in metrics for k in needed) or "pvdm.eval_set_sha256" not in tags:
        return None
    return Score(metrics["fvd_16"], [metrics["fvd_16_ci_low"], metrics["fvd_16_ci_high"]],
                 tags["pvdm.eval_set_sha256"], tags["pvdm.protocol_sha256"], evaluate.info.run_id,
                 FEATURES_ARTIFACT)  # fmt: skip


def cached_score(version: ModelVersion, key: str) -> Score | None:
    value = version.tags.get(SCORE_TAG + key)
    return Score(**json.loads(value)) if value else None


def cache_score(client: MlflowClient, version: ModelVersion, key: str, score: Score) -> None:
    (value,) = safe_tags({"score": json.dumps(asdict(score))}).values()
    client.set_model_version_tag(version.name, version.version, SCORE_TAG + key, value)


def rescore(
    client: MlflowClient, pair: dict[str, ModelVersion], root: Path, params: Params, key: str
) -> Score:
    """Sample with the pair's checkpoints as the `sample` stage does, score fvd_16 as `evaluate` does against
    the project's clip store, log the features to the diffusion version's run and cache the score as its tag."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _place_checkpoints(client, pair, work / "data" / "models", work / "download")
        # fvd_16 reads the 16-frame clips only; they are drawn before the long videos from the same generator,
        # so skipping the long ones leaves every clip as the challenger's seeds drew it.
        generate(work, work, params.sample.model_copy(update={"num_long_videos": 0}), params.runtime.device)
        cfg = params.evaluate
        store = ClipStore(root / "data" / "clips")
        extractor = I3DFeatureExtractor(
            device=resolve_device(cfg.device), batch_size=cfg.batch_size, progress=False
        )
        scored = score_fvd_16(
            cfg, store, work / "data" / "samples", extractor, sha256_file(store.root / MANIFEST)
        )
        features = work / FEATURES_ARTIFACT
        np.savez(features, real=scored.real_features, fake=scored.fake_features)
        diffusion = pair[DIFFUSION]
        folder = f"scores/{key}"
        client.log_artifact(diffusion.run_id, str(features), folder)
    m = scored.metrics
    score = Score(m["fvd_16"], m["fvd_16_ci"], m["eval_set_sha256"], m["protocol_sha256"], diffusion.run_id,
                  f"{folder}/{FEATURES_ARTIFACT}", rescored=True)  # fmt: skip
    cache_score(client, diffusion, key, score)
    return score


def _place_checkpoints(
    client: MlflowClient, pair: dict[str, ModelVersion], models: Path, download: Path
) -> None:
    """The pair's checkpoints at the names the sample stage reads (data/models/autoencoder.pt, diffusion.pt)."""
    models.mkdir(parents=True)
    for name in (AUTOENCODER, DIFFUSION):
        checkpoint = download_checkpoint(client, pair[name], download / name)
        shutil.move(checkpoint.path, models / CHECKPOINT_FILES[name])

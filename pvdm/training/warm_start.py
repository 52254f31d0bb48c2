"""Warm starts: training that begins from another checkpoint's weights (`train.init_from`) instead of random ones.

pvdm only ever receives a local checkpoint file and a description of where it came from (`InitSource`): the stage
scripts resolve `champion` to a file downloaded from the model registry (pipelines/warm_start.py). What is taken
over is the model's weights and, for diffusion, its EMA; the optimizer, the discriminator and the step start
afresh, so `train.steps` count fine-tuning steps. The weights must fit the current config: the checkpoint's
architecture (family, model section, data size / latent spec) is compared key by key first, so a mismatch is one
error naming the key instead of a wall of state-dict names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from pvdm.checkpoint import CheckpointError, load_checkpoint
from pvdm.hashing import sha256_file


class WarmStartError(CheckpointError):
    """The initial weights do not fit the model being trained."""


@dataclass(frozen=True)
class InitSource:
    """Where a warm start's weights come from; recorded in every checkpoint it leads to (`init`)."""

    init_from: str  # the config value: "champion" or a checkpoint path
    label: str  # what a person reads: "pvdm-diffusion v3", or the path
    sha256: str  # the checkpoint file's
    version: str | None = None  # the registry version, for `champion`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InitialWeights:
    """The tensors a warm start loads: the model's state dict and, when the checkpoint has one, its EMA."""

    source: InitSource
    model: dict[str, torch.Tensor]
    ema: dict[str, Any] | None = None


def architecture(record: dict[str, Any], *, with_latent_spec: bool = True) -> dict[str, Any]:
    """What weights must agree on, from a checkpoint's record (pvdm.families.registry): the family and its model
    section, and the data size (autoencoder) or the latent spec (diffusion). Optimisation settings are left out:
    fine-tuning with another learning rate or step count is the point."""
    kind, cfg = record.get("kind"), record.get("config", {})
    if kind == "autoencoder":
        data = cfg.get("data", {})
        return {
            "family": record.get("family"),
            "autoencoder.model": cfg.get("autoencoder", {}).get("model"),
            "data.resolution": data.get("resolution"),
            "data.frames": data.get("frames"),
        }
    if kind == "diffusion":
        found = {
            "family": record.get("family"),
            "diffusion.denoiser": cfg.get("diffusion", {}).get("denoiser"),
        }
        return found | ({"latent_spec": cfg.get("latent_spec")} if with_latent_spec else {})
    raise WarmStartError(f"not a pvdm training checkpoint (kind {kind!r})")


def first_difference(recorded: Any, current: Any, key: str = "") -> str | None:
    """The first dotted key where two nested configs differ, with both values; None when they are equal."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        for name in sorted(set(recorded) | set(current), key=str):
            sub = f"{key}.{name}" if key else str(name)
            if name not in recorded or name not in current:
                where = "the checkpoint" if name not in recorded else "the current config"
                return f"{sub} is missing from {where}"
            if found := first_difference(recorded[name], current[name], sub):
                return found
        return None
    if recorded != current:
        return f"{key}: {recorded!r} in the checkpoint, {current!r} now"
    return None


def read_initial_weights(path: str | Path, source: InitSource, current: dict[str, Any]) -> InitialWeights:
    """The weights of checkpoint `path` for a model whose record is `current` (what its own checkpoints will
    say: autoencoder_record / denoiser_record). Raises WarmStartError naming the first key that differs."""
    payload = load_checkpoint(path)
    if payload.get("kind") != current.get("kind"):
        raise WarmStartError(
            f"train.init_from ({source.label}): a {payload.get('kind')!r} checkpoint cannot start a "
            f"{current.get('kind')} model"
        )
    diff = first_difference(architecture(payload), architecture(current))
    if diff:
        raise WarmStartError(
            f"train.init_from ({source.label}) does not fit the {current['kind']} config: {diff}. Set "
            "init_from: none to train from scratch, or use the config the checkpoint was trained with"
        )
    if not payload.get("model"):
        raise WarmStartError(f"train.init_from ({source.label}): the checkpoint holds no weights")
    return InitialWeights(source, payload["model"], payload.get("ema"))


def file_source(init_from: str, path: Path) -> InitSource:
    """The source of a checkpoint named by path in the config."""
    return InitSource(init_from=init_from, label=init_from, sha256=sha256_file(path))


def load_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: InitSource) -> None:
    """Strict load; a leftover mismatch (the configs agreed) is still one error naming the first keys."""
    missing, unexpected = (
        model.state_dict().keys() - weights.keys(),
        weights.keys() - model.state_dict().keys(),
    )
    if missing or unexpected:
        raise WarmStartError(
            f"train.init_from ({source.label}): weights do not match the model: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    shapes = [k for k, v in model.state_dict().items() if weights[k].shape != v.shape]
    if shapes:
        k = shapes[0]
        raise WarmStartError(
            f"train.init_from ({source.label}): {k} has shape {tuple(weights[k].shape)} in the checkpoint, "
            f"{tuple(model.state_dict()[k].shape)} in the model"
        )
    model.load_state_dict(weights)

"""The one place that builds a family's models from config and loads them back from checkpoints.

A family folder (pvdm/families/<name>/) registers a builder per role under its config `type`
(`register_autoencoder`, `register_denoiser`) in its `build.py`; its `config.py` registers its config sections
(pvdm.config.models) and the model families users pick by name (pvdm.families.catalog). A checkpoint records its
role (`kind`), its family and its config, so loading dispatches on that record and refuses the wrong role or family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig
from pvdm.config.models import ModelSpec, model_types
from pvdm.diffusion.ema import EMA
from pvdm.diffusion.schedule import NoiseSchedule, make_schedule
from pvdm.families import load_families
from pvdm.families.catalog import Family, families, family_name, register_family
from pvdm.families.errors import FamilyError
from pvdm.families.roles import Denoiser, LatentSpec, VideoAutoencoder

__all__ = ["Family", "FamilyError", "families", "family_name", "register_family"]  # re-exported

AutoencoderBuilder = Callable[[Any, DataConfig], VideoAutoencoder]  # (its config section, data) -> model
DenoiserBuilder = Callable[
    [Any, LatentSpec], Denoiser
]  # (its config section, the latents it models) -> model

_AUTOENCODERS: dict[str, AutoencoderBuilder] = {}
_DENOISERS: dict[str, DenoiserBuilder] = {}


def register_autoencoder(name: str, build: AutoencoderBuilder) -> None:
    _AUTOENCODERS[name] = build


def register_denoiser(name: str, build: DenoiserBuilder) -> None:
    _DENOISERS[name] = build


def _builder(table: dict[str, Callable], role: str, section: ModelSpec) -> Callable:
    load_families("build")
    if section.type not in table:
        raise FamilyError(
            f"no {role} family {section.type!r} is registered (registered: {', '.join(sorted(table))}; "
            f"config types: {', '.join(model_types(role))})"
        )
    return table[section.type]


def build_autoencoder(cfg: AutoencoderConfig, data: DataConfig) -> VideoAutoencoder:
    return _builder(_AUTOENCODERS, "autoencoder", cfg.model)(cfg.model, data)


def build_denoiser(cfg: DiffusionConfig, spec: LatentSpec) -> Denoiser:
    return _builder(_DENOISERS, "denoiser", cfg.denoiser)(cfg.denoiser, spec)


# --- checkpoint records ---------------------------------------------------------------------------------------


def autoencoder_record(cfg: AutoencoderConfig, data: DataConfig) -> dict[str, Any]:
    """What an autoencoder checkpoint says about itself (merged into the payload beside the weights)."""
    return {
        "kind": "autoencoder",
        "family": cfg.model.type,
        "config": {"autoencoder": cfg.model_dump(mode="json"), "data": data.model_dump(mode="json")},
    }


def denoiser_record(
    cfg: DiffusionConfig, spec: LatentSpec, label_names: list[str] | None = None
) -> dict[str, Any]:
    """`label_names`: the classes a class-conditional denoiser knows (label i = names[i]), for sampling by name."""
    return {
        "kind": "diffusion",
        "family": cfg.denoiser.type,
        "config": {"diffusion": cfg.model_dump(mode="json"), "latent_spec": spec.to_dict()},
        "label_names": list(label_names or []),
    }


def _check_kind(payload: dict[str, Any], kind: str) -> None:
    found = payload.get("kind")
    if found != kind:
        raise FamilyError(
            f"expected the checkpoint of a{'n' if kind[0] in 'aeiou' else ''} {kind}, got {found!r}"
        )


def load_autoencoder(payload: dict[str, Any]) -> VideoAutoencoder:
    """Rebuild a trained autoencoder for inference (eval mode) from its checkpoint payload alone."""
    _check_kind(payload, "autoencoder")
    cfg = AutoencoderConfig.model_validate(payload["config"]["autoencoder"])
    model = build_autoencoder(cfg, DataConfig.model_validate(payload["config"]["data"]))
    if payload.get("model"):
        model.load_state_dict(payload["model"])
    return model.eval()


@dataclass
class TrainedDiffusion:
    """What sampling needs, rebuilt from a diffusion checkpoint alone."""

    model: Denoiser
    schedule: NoiseSchedule
    config: DiffusionConfig
    latent_spec: LatentSpec
    label_names: list[str]

    @property
    def x0_bound(self) -> float | None:
        """The clip applied to predicted x_0 while sampling: the latents' bound, if the process asks for it."""
        return self.latent_spec.bound if self.config.process.clip_x0 else None


# Parameter names that changed: checkpoints written before keep loading.
RENAMED_PARAMETERS = (("time_embed.", "embed.time."), ("label_embed.", "embed.label."))


def _renamed(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in state.items():
        for old, new in RENAMED_PARAMETERS:
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = value
    return out


def upgrade_diffusion_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A diffusion checkpoint with today's parameter names (and, before latent specs, a triplane spec)."""
    payload = dict(payload, model=_renamed(payload["model"]))
    if "ema" in payload:
        payload["ema"] = dict(payload["ema"], shadow=_renamed(payload["ema"]["shadow"]))
    config = payload["config"]
    if "latent_spec" not in config and "latent_shape" in config:  # written before model families
        from pvdm.models.latent import LatentShape, triplane_spec

        payload["config"] = {
            **config,
            "latent_spec": triplane_spec(LatentShape(**config["latent_shape"])).to_dict(),
        }
    if "diffusion" in payload["config"] and "unet" in payload["config"]["diffusion"]:
        diffusion = dict(payload["config"]["diffusion"])
        diffusion["denoiser"] = {"type": "triplane_unet", **diffusion.pop("unet")}
        payload["config"] = {**payload["config"], "diffusion": diffusion}
    return payload


def load_diffusion(payload: dict[str, Any], use_ema: bool = True) -> TrainedDiffusion:
    """Rebuild a trained denoiser (EMA weights by default) with its noise schedule and latent spec."""
    _check_kind(payload, "diffusion")
    payload = upgrade_diffusion_payload(payload)
    cfg = DiffusionConfig.model_validate(payload["config"]["diffusion"])
    spec = LatentSpec.from_dict(payload["config"]["latent_spec"])
    model = build_denoiser(cfg, spec)
    model.load_state_dict(payload["model"])
    if use_ema:
        ema = EMA(model, decay=cfg.train.ema_decay)
        ema.load_state_dict(payload["ema"])
        ema.copy_to(model)
    names = list(payload.get("label_names", []))
    return TrainedDiffusion(model.eval(), make_schedule(cfg.process), cfg, spec, names)


def check_pair(autoencoder: VideoAutoencoder, diffusion: TrainedDiffusion, names: tuple[str, str]) -> None:
    """A denoiser samples latents only for the autoencoder whose latents it was trained on."""
    if autoencoder.latent_spec != diffusion.latent_spec:
        raise FamilyError(
            f"{names[1]} was trained on latents {diffusion.latent_spec.shape} "
            f"({diffusion.config.denoiser.type}, layout {diffusion.latent_spec.layout}), but {names[0]} "
            f"produces {autoencoder.latent_spec.shape} (layout {autoencoder.latent_spec.layout}): "
            "they come from different runs or families"
        )


def describe_checkpoint(payload: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint is, from its record alone (for `pvdm inspect`): role, family, step, sizes, latents."""
    kind = payload.get("kind", "unknown")
    info: dict[str, Any] = {
        "kind": kind,
        "family": payload.get("family", "unknown"),
        "step": payload.get("step"),
    }
    info["parameters"] = sum(v.numel() for v in payload.get("model", {}).values() if hasattr(v, "numel"))
    info["has_ema"] = "ema" in payload
    info["resumable"] = "optimizer" in payload
    if kind == "autoencoder":
        info["latent_spec"] = load_autoencoder(payload).latent_spec.to_dict()
        info["data"] = payload["config"]["data"]
    elif kind == "diffusion":
        info["latent_spec"] = payload["config"]["latent_spec"]
    info["config"] = payload.get("config", {})
    return info

"""Importing the authors' released weights as ordinary pvdm checkpoints (`pvdm import`; docs/official-weights.md).

The official PVDM autoencoder checkpoint is a plain state dict (`torch.save(model.module.state_dict())`), read
with `weights_only=True`, so a file holding pickled code is refused. Its sizes are read from the tensors, so a
checkpoint of any size imports without flags; its keys load strictly into the `layout: official` autoencoder
(pvdm.families.triplane.official_autoencoder), whose names are the official ones. The result is the checkpoint
the train_autoencoder stage writes: family and config recorded beside the weights, step 0, no history.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from pvdm.checkpoint import save_checkpoint
from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig, DiffusionTrainConfig, ProcessConfig
from pvdm.diffusion.ema import EMA
from pvdm.families.registry import autoencoder_record, build_autoencoder, build_denoiser, denoiser_record
from pvdm.families.roles import LatentSpec
from pvdm.families.triplane.config import (
    OfficialAESizes,
    OfficialUNetSizes,
    TriplaneAEConfig,
    TriplaneUNetConfig,
)
from pvdm.hashing import sha256_file
from pvdm.models.latent import LatentShape, triplane_shape, triplane_spec

WRAPPER_KEYS = (
    "state_dict",
    "model",
    "module",
    "net",
    "ema",
    "model_state_dict",
)  # where trainers nest weights
PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
# Not readable from the tensors: the official projection transformers split their width into 4 heads.
ASSUMED = "projection heads: 4 (the official value; a checkpoint cannot say how the projection width splits)"


# Where an imported checkpoint records its source (`pvdm import --register` tags the MLflow model with it).
IMPORTED_KEY = "imported"


def import_record(source: Path, read_as: str) -> dict[str, Any]:
    """An imported checkpoint's record of its source: the file's name (not its folder, which may name a user, a
    mount or a signed URL's path), its SHA-256 and what it was read as (the `pvdm import` option)."""
    return {IMPORTED_KEY: {"file": source.name, "sha256": sha256_file(source), "read_as": read_as}}


class WeightImportError(ValueError):
    """A file is not the checkpoint it was given as (not a state dict, or missing, extra or misshapen tensors)."""


@dataclass(frozen=True)
class ImportedModel:
    path: Path
    autoencoder: AutoencoderConfig
    data: DataConfig
    assumed: tuple[str, ...]


@dataclass(frozen=True)
class ImportedDenoiser:
    path: Path
    diffusion: DiffusionConfig
    latent: LatentShape
    assumed: tuple[str, ...]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict checkpoint (nested under a key such as `state_dict` or not, `module.` prefixes
    removed), loaded with weights_only=True."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign, truncated or pickled-code files
        raise WeightImportError(
            f"{path}: not a readable weights-only checkpoint ({type(err).__name__})"
        ) from err
    state = _unwrap(payload)
    if state is None:
        raise WeightImportError(
            f"{path}: not a state dict (expected a mapping of parameter names to tensors, got {type(payload).__name__}"
            f"{' with keys ' + ', '.join(map(str, list(payload)[:6])) if isinstance(payload, dict) else ''})"
        )
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _unwrap(payload: Any) -> dict[str, torch.Tensor] | None:
    if _is_state_dict(payload):
        return payload
    if isinstance(payload, dict):
        for key in WRAPPER_KEYS:
            if _is_state_dict(payload.get(key)):
                return payload[key]
    return None


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


# --- the official PVDM autoencoder ----------------------------------------------------------------------------


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return tuple(state[key].shape)


def _depth(state: dict[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


SIZE_KEYS = (  # the tensors the sizes are read from
    "xy_token", "xy_pos_embedding", "xt_pos_embedding", "pre_xy.weight", "to_pixel.1.weight",
    "encoder.frame_rot_emb.inv_freqs", "encoder.layers.0.0.fn.to_qkv.weight", "encoder.layers.0.2.fn.net.3.weight",
    "xy_quant_attn.layers.0.0.fn.to_qkv.weight", "xy_quant_attn.layers.0.1.fn.net.0.weight",
)  # fmt: skip


def infer_pvdm_autoencoder(state: dict[str, torch.Tensor]) -> tuple[TriplaneAEConfig, DataConfig]:
    """The official autoencoder's sizes, read from its tensors (see docs/official-weights.md for which)."""
    missing = [k for k in SIZE_KEYS if k not in state]
    if missing:
        raise WeightImportError(f"not an official PVDM autoencoder: missing {', '.join(missing)}")
    try:
        return _read_sizes(state)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise WeightImportError(f"the tensors give no valid official PVDM autoencoder: {problems}") from None


def _read_sizes(state: dict[str, torch.Tensor]) -> tuple[TriplaneAEConfig, DataConfig]:
    width = _shape(state, "xy_token")[-1]
    patch = _shape(state, "to_pixel.1.weight")[-1]
    head_dim = 2 * _shape(state, "encoder.frame_rot_emb.inv_freqs")[0]
    projection_width = _shape(state, "xy_quant_attn.layers.0.0.fn.to_qkv.weight")[0] // 3
    sizes = OfficialAESizes(
        head_dim=head_dim,
        projection_heads=OfficialAESizes().projection_heads,
        projection_head_dim=max(projection_width // OfficialAESizes().projection_heads, 1),
        projection_mlp=_shape(state, "xy_quant_attn.layers.0.1.fn.net.0.weight")[0],
    )
    model = TriplaneAEConfig(
        layout="official",
        width=width,
        heads=max(_shape(state, "encoder.layers.0.0.fn.to_qkv.weight")[0] // 3 // head_dim, 1),
        patch_size=patch,
        latent_channels=_shape(state, "pre_xy.weight")[0],
        encoder_depth=_depth(state, "encoder.layers."),
        decoder_depth=max(_depth(state, "decoder.layers."), 1),  # none at all: check_keys names them
        projection_depth=_depth(state, "xy_quant_attn.layers."),
        mlp_ratio=_shape(state, "encoder.layers.0.2.fn.net.3.weight")[1] / width,
        official=sizes,
    )
    grid = _shape(state, "xt_pos_embedding")[1] - 1
    data = DataConfig(resolution=grid * patch, frames=_shape(state, "xy_pos_embedding")[1] - 1)
    return model, data


def check_keys(
    expected: dict[str, torch.Tensor],
    found: dict[str, torch.Tensor],
    what: str = "the official PVDM autoencoder",
) -> None:
    """One error naming every missing, extra and misshapen tensor (what load_state_dict(strict=True) checks)."""
    problems = []
    if missing := sorted(set(expected) - set(found)):
        problems.append(f"missing {', '.join(missing)}")
    if extra := sorted(set(found) - set(expected)):
        problems.append(f"unexpected {', '.join(extra)}")
    wrong = [
        f"{k} {tuple(found[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    if wrong:
        problems.append(f"misshapen {', '.join(wrong)}")
    if problems:
        raise WeightImportError(f"the checkpoint does not fit {what}: " + "; ".join(problems))


def import_pvdm_autoencoder(source: Path, out: Path) -> ImportedModel:
    """Read an official PVDM autoencoder checkpoint and write it to `out` as a pvdm autoencoder checkpoint."""
    state = read_state_dict(source)
    section, data = infer_pvdm_autoencoder(state)
    cfg = AutoencoderConfig(model=section)
    model = build_autoencoder(cfg, data)
    check_keys(model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    payload = autoencoder_record(cfg, data) | {"step": 0, "model": model.state_dict(), "history": []}
    payload |= import_record(source, "pvdm-autoencoder")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, payload)
    return ImportedModel(out, cfg, data, (ASSUMED,))


# --- the official PVDM denoiser -------------------------------------------------------------------------------

# The official trainer saves `DiffusionWrapper.state_dict()` (keys `diffusion_model.*`; tools/trainer.py), the DDPM
# criterion would add `model.`: both are removed, in that order, when every key has them.
DIFFUSION_PREFIXES = ("model.", "diffusion_model.")
# The official UNetModel.forward hard-codes these planes (32 x 32 and 16 x 32: 2,048 positions, its `zeros` buffer).
OFFICIAL_PLANES = {"frames": 16, "height": 32, "width": 32}
OFFICIAL_HEADS = (
    8  # configs/latent-diffusion/base.yaml; a checkpoint cannot say how its widths split into heads
)


# The one official name pvdm's module does not use: pvdm's diffusion checkpoints call it embed.time (official_unet).
DIFFUSION_RENAMES = (("time_embed.", "embed.time."),)


def official_denoiser_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet's keys as pvdm's module names them: the official wrapper prefixes removed, time_embed renamed."""
    for prefix in DIFFUSION_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    out = {}
    for key, value in state.items():
        for old, new in DIFFUSION_RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = value
    return out


def _first_upsample(state: dict[str, torch.Tensor], n_out: int) -> int | None:
    """Index of the first output block that ends with an upsample (a second res block or an `Upsample` conv)."""
    for j in range(n_out):
        for k in (1, 2):
            if (
                f"output_blocks.{j}.{k}.in_layers.0.weight" in state
                or f"output_blocks.{j}.{k}.conv.weight" in state
            ):
                return j
    return None


def official_name(key: str) -> str:
    """A pvdm denoiser key as the official state dict names it (for messages a user checks against the file)."""
    for old, new in DIFFUSION_RENAMES:
        if key.startswith(new):
            return old + key[len(new) :]
    return key


DENOISER_SIZE_KEYS = ("embed.time.0.weight", "input_blocks.0.0.weight", "out.2.weight")


def infer_pvdm_diffusion(state: dict[str, torch.Tensor], heads: int = OFFICIAL_HEADS) -> TriplaneUNetConfig:
    """The official UNet's sizes, read from its tensors (docs/official-weights.md says which); `heads` is not in
    them (the official 8 by default)."""
    missing = [official_name(k) for k in DENOISER_SIZE_KEYS if k not in state]
    if missing:
        hint = " (it holds the official autoencoder's: --pvdm-autoencoder)" if "xy_token" in state else ""
        raise WeightImportError(f"not an official PVDM diffusion model: missing {', '.join(missing)}{hint}")
    ch = _shape(state, "embed.time.0.weight")[1]
    n_out = _depth(state, "output_blocks.")
    up = _first_upsample(state, n_out)
    per_level = (up + 1) if up is not None else n_out  # output blocks per level: num_res_blocks + 1
    if per_level < 2 or n_out % per_level:
        raise WeightImportError(
            f"the output blocks ({n_out}) do not form levels of num_res_blocks + 1 (first upsample at {up})"
        )
    res_blocks, levels = per_level - 1, n_out // per_level
    first = [1 + level * per_level for level in range(levels)]  # each level's first input block
    widths = [_shape(state, f"input_blocks.{i}.0.in_layers.2.weight")[0] for i in first if
              f"input_blocks.{i}.0.in_layers.2.weight" in state]  # fmt: skip
    if len(widths) != levels or any(w % ch for w in widths):
        raise WeightImportError(f"the input blocks' widths {widths} are not multiples of model_channels {ch}")
    if indivisible := [w for w in widths if w % heads]:
        raise WeightImportError(
            f"{heads} attention heads do not divide the UNet's widths {indivisible} (read from the tensors): give "
            f"a head count that divides {math.gcd(*widths)} (--diffusion-heads; the official 8 unless the authors "
            "changed it)"
        )
    emb_out = _shape(state, "input_blocks.1.0.emb_layers.1.weight")[0]
    down = f"input_blocks.{per_level}.0."
    sizes = OfficialUNetSizes(
        cond_model="zeros" in state,
        resblock_updown=levels == 1 or down + "in_layers.0.weight" in state,
        conv_resample=levels == 1 or down + "in_layers.0.weight" in state or down + "op.weight" in state,
    )
    try:
        return TriplaneUNetConfig(
            layout="official",
            model_channels=ch,
            channel_mult=[w // ch for w in widths],
            num_res_blocks=res_blocks,
            attention_resolutions=[
                2**lv for lv, i in enumerate(first) if f"input_blocks.{i}.1.qkv.weight" in state
            ],
            num_heads=heads,
            use_scale_shift_norm=emb_out == 2 * widths[0],
            official=sizes,
        )
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise WeightImportError(f"the tensors give no valid official PVDM UNet: {problems}") from None


def official_latent(state: dict[str, torch.Tensor], latent: LatentShape | None) -> LatentShape:
    """The latent the denoiser runs on: `latent` (the paired autoencoder's) or the official code's fixed planes;
    its channels and, with a condition, its length must be the checkpoint's."""
    channels = _shape(state, "out.2.weight")[0]
    shape = latent or LatentShape(channels, **OFFICIAL_PLANES)
    if shape.channels != channels:
        raise WeightImportError(
            f"the denoiser predicts {channels} latent channels, the autoencoder makes {shape.channels}"
        )
    if "zeros" in state and _shape(state, "zeros")[-1] != shape.length:
        raise WeightImportError(
            f"the denoiser's condition buffer `zeros` has {_shape(state, 'zeros')[-1]} positions, the latents "
            f"{shape.length} ({shape.frames} frames, {shape.height} x {shape.width} planes)"
            + ("" if latent else ": import the matching autoencoder with it (--pvdm-autoencoder)")
        )
    return shape


def official_process() -> tuple[ProcessConfig, DiffusionTrainConfig]:
    """The official diffusion process (configs/latent-diffusion/base.yaml, losses/ddpm.py, tools/trainer.py,
    exps/diffusion.py): 1000 steps, LDM linear betas 0.0015 -> 0.0195, eps, x0 clipped to [-1, 1], the official
    sampler convention; lambda 0.3, EMA every 25 steps (docs/official-weights.md has the lines)."""
    process = ProcessConfig(
        timesteps=1000,
        schedule="linear",
        beta_start=0.0015,
        beta_end=0.0195,
        clip_x0=True,
        convention="official",
    )
    return process, DiffusionTrainConfig(cond_prob=0.3, ema_every=25, ema_decay=0.9999)


def import_pvdm_diffusion(
    source: Path, out: Path, latent: LatentShape | None = None, heads: int = OFFICIAL_HEADS
) -> ImportedDenoiser:
    """Read an official PVDM diffusion checkpoint (model_{step}.pth or ema_model_{step}.pth) and write it to `out`
    as a pvdm diffusion checkpoint; its weights are both the model's and the EMA's (the file is one of them)."""
    state = official_denoiser_state(read_state_dict(source))
    unet = infer_pvdm_diffusion(state, heads)
    shape = official_latent(state, latent)
    process, train = official_process()
    cfg = DiffusionConfig(denoiser=unet, process=process, train=train)
    spec = triplane_spec(shape)
    if reason := unet.accepts(spec):
        raise WeightImportError(reason)
    with torch.device("meta"):  # the expected tensors, at no cost (the paper's UNet has 528 M parameters)
        expected = build_denoiser(cfg, spec).state_dict()
    check_keys(expected, state, "the official PVDM UNet")
    model = build_denoiser(cfg, spec)
    model.load_state_dict(state, strict=True)
    ema = EMA(model, decay=train.ema_decay, warmup=train.ema_warmup)
    payload = denoiser_record(cfg, spec) | {"step": 0, "model": model.state_dict(), "ema": ema.state_dict()}
    payload |= import_record(source, "pvdm-diffusion")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, payload)
    assumed = (
        f"attention heads: {heads} (the official base.yaml's; a checkpoint cannot say how widths split)",
    )
    if latent is None:
        assumed += ("latents: 16 frames of 32 x 32 planes (the official UNet's hard-coded planes)",)
    return ImportedDenoiser(out, cfg, shape, assumed)


def autoencoder_latent(path: Path) -> LatentShape:
    """The latent shape a pvdm autoencoder checkpoint makes, from its record alone (no weights built)."""
    from pvdm.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if payload.get("kind") != "autoencoder":
        raise WeightImportError(f"{path}: not a pvdm autoencoder checkpoint")
    cfg = AutoencoderConfig.model_validate(payload["config"]["autoencoder"])
    spec: LatentSpec = cfg.model.latent_spec(DataConfig.model_validate(payload["config"]["data"]))
    try:
        return triplane_shape(spec)
    except ValueError as err:
        raise WeightImportError(f"{path}: {err}") from None

"""Importing the authors' released weights as ordinary pvdm checkpoints (`pvdm import`; docs/official-weights.md).

The official PVDM autoencoder checkpoint is a plain state dict (`torch.save(model.module.state_dict())`), read
with `weights_only=True`, so a file holding pickled code is refused. Its sizes are read from the tensors, so a
checkpoint of any size imports without flags; its keys load strictly into the `layout: official` autoencoder
(pvdm.families.triplane.official_autoencoder), whose names are the official ones. The result is the checkpoint
the train_autoencoder stage writes: family and config recorded beside the weights, step 0, no history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from pvdm.checkpoint import save_checkpoint
from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.data import DataConfig
from pvdm.families.registry import autoencoder_record, build_autoencoder
from pvdm.families.triplane.config import OfficialAESizes, TriplaneAEConfig

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


class WeightImportError(ValueError):
    """A file is not the checkpoint it was given as (not a state dict, or missing, extra or misshapen tensors)."""


@dataclass(frozen=True)
class ImportedModel:
    path: Path
    autoencoder: AutoencoderConfig
    data: DataConfig
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


def check_keys(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
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
        raise WeightImportError(
            "the checkpoint does not fit the official PVDM autoencoder: " + "; ".join(problems)
        )


def import_pvdm_autoencoder(source: Path, out: Path) -> ImportedModel:
    """Read an official PVDM autoencoder checkpoint and write it to `out` as a pvdm autoencoder checkpoint."""
    state = read_state_dict(source)
    section, data = infer_pvdm_autoencoder(state)
    cfg = AutoencoderConfig(model=section)
    model = build_autoencoder(cfg, data)
    check_keys(model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    payload = autoencoder_record(cfg, data) | {"step": 0, "model": model.state_dict(), "history": []}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, payload)
    return ImportedModel(out, cfg, data, (ASSUMED,))

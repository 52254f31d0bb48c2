"""`pvdm import --tats-vqgan`: a TATS 3D-VQGAN checkpoint (songweige/TATS) as an ordinary pvdm autoencoder checkpoint
of the vqgan3d family, `layout: tats` (docs/official-weights.md, "The TATS 3D-VQGAN").

TATS's checkpoints are PyTorch Lightning `.ckpt` files: `state_dict` (the VQGAN with its two discriminators and the
LPIPS network), `hyper_parameters` (`{"args": argparse.Namespace}`: TATS's command-line arguments), optimizer
states and trainer bookkeeping. The file is read with torch's weights-only unpickler (`weights_only=True`); when it
is refused only because of pickled `argparse.Namespace` objects, it is read again by the same restricted unpickler
with `argparse.Namespace` added to its allow-list for that one load (a Namespace is a bag of attributes: building one
runs no code). Any other pickled object is refused and named.

Sizes come from the tensors (n_hiddens, levels, embedding_dim, n_codes, image channels, norm type); what the
tensors cannot say (the per-axis downsampling, the encoder's padding mode, the clip size) comes from the
hyper-parameters, and is assumed and reported when a file has none. The autoencoder's keys load strictly; the
discriminators' and the perceptual network's are dropped and counted; any other key is an error.
"""

from __future__ import annotations

import argparse
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from pvdm.checkpoint import save_checkpoint
from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.base import ConfigError
from pvdm.config.data import DataConfig
from pvdm.families.registry import autoencoder_record, build_autoencoder
from pvdm.families.vqgan3d.config import TATSOptions, VQGAN3DConfig
from pvdm.importing import ImportedModel, WeightImportError, import_record

AUTOENCODER_GROUPS = ("encoder.", "decoder.", "pre_vq_conv.", "post_vq_conv.", "codebook.")
DROPPED_GROUPS = (
    "image_discriminator.",
    "video_discriminator.",
    "perceptual_model.",
)  # training-only networks
ALLOWED_GLOBALS = ("argparse.Namespace",)  # what a TATS checkpoint pickles besides tensors and containers
ANCHOR = "encoder.conv_first.conv.weight"  # every TATS VQGAN has it: where the module's keys start
SIZE_KEYS = (
    ANCHOR,
    "pre_vq_conv.conv.weight",
    "codebook.embeddings",
    "encoder.conv_blocks.0.down.conv.weight",
)
# What TATS trained its released VQGANs on (README: --resolution 128 --sequence_length 16): a file without
# hyper-parameters is taken to be of that size.
RELEASED_CLIP = {"resolution": 128, "frames": 16}


@dataclass(frozen=True)
class TATSCheckpoint:
    """What a TATS file holds for the import: the VQGAN's tensors, the other groups' counts, the hyper-parameters."""

    state: dict[str, torch.Tensor]
    dropped: dict[str, int]
    hparams: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


def load_payload(path: Path) -> tuple[Any, tuple[str, ...]]:
    """The unpickled file (weights-only; argparse.Namespace allowed when it is the only other object) and a note
    saying when the allow-list was needed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), ()
    except pickle.UnpicklingError:
        refused = _pickled_globals(path)
    except Exception as err:  # torch raises several types for foreign and truncated files
        raise WeightImportError(f"not a readable weights-only checkpoint ({type(err).__name__})") from err
    if not refused or not set(refused) <= set(ALLOWED_GLOBALS):
        raise WeightImportError(
            "refused: the file pickles objects other than tensors, containers and argparse.Namespace "
            f"({', '.join(refused) or 'unreadable'}); loading them could run code"
        )
    with torch.serialization.safe_globals([argparse.Namespace]):
        payload = torch.load(path, map_location="cpu", weights_only=True)
    note = "hyper_parameters hold a pickled argparse.Namespace: read with torch's weights-only unpickler, "
    return payload, (note + "argparse.Namespace allowed (no other object)",)


def _pickled_globals(path: Path) -> list[str]:
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint: nothing we can vouch for
        return []


def read_tats_checkpoint(path: Path) -> TATSCheckpoint:
    payload, notes = load_payload(path)
    raw = payload.get("state_dict") if isinstance(payload, dict) else None
    if (
        raw is None
        and isinstance(payload, dict)
        and all(isinstance(v, torch.Tensor) for v in payload.values())
    ):
        raw = payload  # a bare state dict
    if not isinstance(raw, dict) or not raw:
        kind = type(payload).__name__
        raise WeightImportError(f"not a Lightning checkpoint or state dict (a {kind} without `state_dict`)")
    state, dropped = split_groups(_without_prefix(raw))
    return TATSCheckpoint(state, dropped, _hyper_parameters(payload), notes)


def _without_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """Keys relative to the VQGAN module: whatever precedes `encoder.conv_first.conv.weight` (a wrapper's attribute
    name, `module.`) is removed from every key that has it."""
    anchors = [k for k in state if k.endswith(ANCHOR)]
    if len(anchors) != 1:
        raise WeightImportError(f"not a TATS VQGAN: {'no' if not anchors else 'more than one'} {ANCHOR}")
    prefix = anchors[0][: -len(ANCHOR)]
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def split_groups(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """(the VQGAN's tensors, tensors dropped per training-only group); a key in neither is an error."""
    kept = {k: v for k, v in state.items() if k.startswith(AUTOENCODER_GROUPS)}
    dropped = {g.rstrip("."): sum(k.startswith(g) for k in state) for g in DROPPED_GROUPS}
    unknown = sorted(k for k in state if not k.startswith(AUTOENCODER_GROUPS + DROPPED_GROUPS))
    if unknown:
        raise WeightImportError(
            f"unexpected {', '.join(unknown)} (neither the VQGAN's {', '.join(AUTOENCODER_GROUPS)} nor the "
            f"training-only {', '.join(DROPPED_GROUPS)})"
        )
    not_tensors = sorted(k for k, v in kept.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise WeightImportError(f"not tensors: {', '.join(not_tensors)}")
    return kept, {k: n for k, n in dropped.items() if n}


def _hyper_parameters(payload: Any) -> dict[str, Any]:
    hp = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if isinstance(hp, dict) and isinstance(hp.get("args"), argparse.Namespace):
        return vars(hp["args"])
    if isinstance(hp, argparse.Namespace):
        return vars(hp)
    return dict(hp) if isinstance(hp, dict) else {}


# --- sizes ---------------------------------------------------------------------------------------------------


def _levels(state: dict[str, torch.Tensor]) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.conv_blocks\.(\d+)\.", k))}
    return max(found) + 1 if found else 0


@dataclass(frozen=True)
class TATSSizes:
    model: VQGAN3DConfig
    data: DataConfig
    read: dict[str, Any]  # from the tensors
    from_hparams: dict[str, Any]
    assumed: tuple[str, ...]


def infer_tats_vqgan(ckpt: TATSCheckpoint) -> TATSSizes:
    """The VQGAN's sizes: from the tensors where they say, else from the hyper-parameters, else assumed."""
    state, hp = ckpt.state, ckpt.hparams
    missing = [k for k in SIZE_KEYS if k not in state]
    if missing:
        raise WeightImportError(f"not a TATS VQGAN: missing {', '.join(missing)}")
    n_hiddens, image_channels = state[ANCHOR].shape[:2]
    read = {
        "n_hiddens": int(n_hiddens),
        "levels": _levels(state),
        "embedding_dim": int(state["codebook.embeddings"].shape[1]),
        "n_codes": int(state["codebook.embeddings"].shape[0]),
        "norm": "batch" if "encoder.final_block.0.running_mean" in state else "group",
        "image_channels": int(image_channels),
    }
    if read["image_channels"] != 3:
        raise WeightImportError(f"{ANCHOR} takes {read['image_channels']} channels: pvdm's clips are RGB (3)")
    _agree(read, hp)
    downsample, assumed = _downsample(read["levels"], hp)
    from_hp = {"downsample": downsample, "padding": hp.get("padding_type", "replicate")}
    if "resolution" in hp and "sequence_length" in hp:
        from_hp["resolution"] = int(hp["resolution"])
        from_hp["frames"] = int(hp["sequence_length"]) // int(hp.get("sample_every_n_frames", 1))
        clip = {"resolution": from_hp["resolution"], "frames": from_hp["frames"]}
    else:
        clip = dict(RELEASED_CLIP)
        assumed += (f"clip {clip['resolution']}x{clip['resolution']}, {clip['frames']} frames (no resolution / "
                    "sequence_length in the hyper-parameters: the released models' size)",)  # fmt: skip
    try:
        model = VQGAN3DConfig(
            layout="tats",
            channels=read["n_hiddens"],
            temporal_downsample=downsample[0],
            spatial_downsample=downsample[1],
            codebook_size=read["n_codes"],
            codebook_dim=read["embedding_dim"],
            tats=TATSOptions(norm=read["norm"], padding=from_hp["padding"]),
        )
        data = DataConfig(**clip)
        model.check_data(data.resolution, data.frames)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise WeightImportError(f"the checkpoint gives no valid vqgan3d layout tats: {problems}") from None
    except ConfigError as err:
        raise WeightImportError(str(err)) from None
    return TATSSizes(model, data, read, from_hp, assumed)


def _agree(read: dict[str, Any], hp: dict[str, Any]) -> None:
    """A hyper-parameter that contradicts the tensors means the file was edited or mislabelled."""
    names = {"n_hiddens": "n_hiddens", "embedding_dim": "embedding_dim", "n_codes": "n_codes",
             "norm": "norm_type", "image_channels": "image_channels"}  # fmt: skip
    wrong = [f"{arg} {hp[arg]!r} (tensors: {read[key]!r})" for key, arg in names.items()
             if arg in hp and hp[arg] != read[key]]  # fmt: skip
    if wrong:
        raise WeightImportError(f"hyper_parameters contradict the tensors: {', '.join(wrong)}")


def _downsample(levels: int, hp: dict[str, Any]) -> tuple[tuple[int, int, int], tuple[str, ...]]:
    """(time, height, width) factors. The tensors give only the levels (log2 of the largest factor): each level's
    stride is not a tensor, so the per-axis factors are TATS's `downsample` argument."""
    if "downsample" not in hp:
        factor = 2**levels
        return (factor, factor, factor), (
            f"downsample {factor} on every axis (no downsample in the hyper-parameters; the tensors give "
            f"{levels} levels, not which axes each strides)",
        )
    t, h, w = (int(d) for d in hp["downsample"])
    if h != w:
        raise WeightImportError(
            f"downsample {[t, h, w]}: pvdm's clips are square, height and width must match"
        )
    if max(t, h).bit_length() - 1 != levels:
        raise WeightImportError(
            f"downsample {[t, h, w]} in the hyper-parameters needs {max(t, h).bit_length() - 1} levels, the "
            f"tensors have {levels}"
        )
    return (t, h, w), ()


# --- the import ------------------------------------------------------------------------------------------------


def check_keys(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """One error naming every missing, extra and misshapen tensor (what load_state_dict(strict=True) checks)."""
    problems = []
    if missing := sorted(set(expected) - set(found)):
        problems.append(f"missing {', '.join(missing)}")
    if extra := sorted(set(found) - set(expected)):
        problems.append(f"unexpected {', '.join(extra)}")
    wrong = [f"{k} {tuple(found[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in found and found[k].shape != v.shape]  # fmt: skip
    if wrong:
        problems.append(f"misshapen {', '.join(wrong)}")
    if problems:
        raise WeightImportError("the checkpoint does not fit the TATS VQGAN: " + "; ".join(problems))


@dataclass(frozen=True)
class ImportedTATS(ImportedModel):
    sizes: TATSSizes | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def import_tats_vqgan(source: Path, out: Path) -> ImportedTATS:
    """Read a TATS VQGAN checkpoint and write it to `out` as a pvdm autoencoder checkpoint (vqgan3d, layout tats)."""
    ckpt = read_tats_checkpoint(source)
    sizes = infer_tats_vqgan(ckpt)
    cfg = AutoencoderConfig(model=sizes.model)
    model = build_autoencoder(cfg, sizes.data)
    check_keys(model.state_dict(), ckpt.state)
    model.load_state_dict(ckpt.state, strict=True)
    payload = autoencoder_record(cfg, sizes.data) | {"step": 0, "model": model.state_dict(), "history": []}
    payload |= import_record(source, "tats-vqgan")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, payload)
    return ImportedTATS(out, cfg, sizes.data, sizes.assumed, sizes, ckpt.dropped, ckpt.notes)


def describe(done: ImportedTATS) -> list[str]:
    """What `pvdm import` prints: where it wrote, what it read from where, what it dropped and assumed."""
    s = done.sizes
    assert s is not None
    read = ", ".join(f"{k} {v}" for k, v in s.read.items())
    hp = ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in s.from_hparams.items())
    dropped = ", ".join(f"{k} ({n} tensors)" for k, n in done.dropped.items()) or "nothing"
    lines = [
        f"wrote {done.path}: the TATS 3D-VQGAN (vqgan3d, layout tats)",
        f"  read from the tensors: {read}",
        f"  read from hyper_parameters: {hp}",
        f"  dropped (training only): {dropped}",
    ]
    lines += [f"  note: {n}" for n in done.notes]
    return lines + [f"  assumed: {a}" for a in done.assumed]

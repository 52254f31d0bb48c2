"""What is in a clip store, a folder of raw videos or a checkpoint: the facts behind `pvdm inspect`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pvdm.data.clips import ClipStore
from pvdm.data.report import REPORT_JSON
from pvdm.data.sources import list_raw
from pvdm.data.video import VideoError, probe


def inspect_store(root: Path) -> dict[str, Any]:
    """Counts by split, clip geometry, frame rates, consecutive pairs, and the rejected files of the last run."""
    store = ClipStore(root)
    m = store.manifest
    info: dict[str, Any] = {"store": str(root), "clips": len(store), "videos": int(m["source"].nunique())}
    if len(store):
        info["clip_shape"] = list(store[0].shape)
        info["fps"] = _spread(m["fps"])
        info["clips_per_video"] = _spread(m.groupby("source").size())
    info["labels"] = store.label_names
    info["splits"] = {
        split: {
            "clips": len(store.indices(split)),
            "videos": int(m.loc[m["split"] == split, "source"].nunique()),
            "consecutive_pairs": len(store.pairs(split)),
        }
        for split in ("train", "test")
    }
    report = _read_json(root / REPORT_JSON)
    info["rejected"] = report.get("rejected", [])
    info["duplicates"] = report.get("duplicates", [])
    info["validation"] = report.get("validation", {}).get("success")
    info["text"] = _store_text(info)
    return info


def _spread(values: Any) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "min": round(float(v.min()), 3),
        "median": round(float(np.median(v)), 3),
        "max": round(float(v.max()), 3),
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _store_text(info: dict[str, Any]) -> str:
    lines = [f"clip store {info['store']}: {info['clips']} clips from {info['videos']} videos"]
    if info["clips"]:
        fps, per = info["fps"], info["clips_per_video"]
        lines.append(f"clip shape (T, H, W, C): {tuple(info['clip_shape'])}, uint8")
        lines.append(f"fps: {fps['min']:g} to {fps['max']:g} (median {fps['median']:g})")
        lines.append(f"clips per video: {per['min']:g} to {per['max']:g} (median {per['median']:g})")
    for split, s in info["splits"].items():
        lines.append(
            f"{split}: {s['clips']} clips, {s['videos']} videos, {s['consecutive_pairs']} consecutive pairs"
        )
    labels = info["labels"]
    lines.append(f"labels: {len(labels)} classes ({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''})"
                 if labels else "labels: none (unconditional)")  # fmt: skip
    lines.append(f"validation: {'passed' if info['validation'] else 'failed or not run'}")
    lines.append(f"rejected files: {len(info['rejected'])}, duplicates: {len(info['duplicates'])}")
    lines += [f"  {r['source']}: {r['reason']}" for r in info["rejected"]]
    return "\n".join(lines)


def inspect_folder(root: Path, extensions: list[str]) -> dict[str, Any]:
    """What each video-named file claims to be (container metadata, not decoded), and which files are unusable."""
    listing = list_raw(root, extensions)
    videos, unusable = [], [{"source": r.source, "reason": r.reason} for r in listing.rejected]
    for c in listing.candidates:
        try:
            v = probe(c.path)
        except VideoError as err:
            unusable.append({"source": c.source, "reason": str(err)})
            continue
        videos.append({
            "source": c.source, "codec": v.codec, "width": v.width, "height": v.height, "fps": round(v.fps, 3),
            "frames": v.frames, "duration": round(v.duration, 3), "grayscale": v.is_grayscale, "audio": v.has_audio,
        })  # fmt: skip
    info = {"folder": str(root), "videos": videos, "unusable": unusable, "other_files": len(listing.ignored)}
    info["text"] = _folder_text(info)
    return info


def _folder_text(info: dict[str, Any]) -> str:
    lines = [
        f"folder {info['folder']}: {len(info['videos'])} videos, {len(info['unusable'])} unusable, "
        f"{info['other_files']} other files (metadata as the containers claim it; `pvdm preprocess` checks the pixels)"
    ]
    for v in info["videos"]:
        extra = ", ".join(k for k in ("grayscale", "audio") if v[k])
        lines.append(
            f"  {v['source']}: {v['codec']} {v['width']}x{v['height']} {v['fps']:g} fps, "
            f"{v['frames'] or '?'} frames, {v['duration']:g} s{f' ({extra})' if extra else ''}"
        )
    lines += [f"  UNUSABLE {u['source']}: {u['reason']}" for u in info["unusable"]]
    return "\n".join(lines)


def inspect_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's own record: role, family, step, parameters, latent spec (no weights are run)."""
    from pvdm.checkpoint import load_checkpoint
    from pvdm.families.registry import describe_checkpoint

    info = describe_checkpoint(load_checkpoint(path))
    spec = info.get("latent_spec", {})
    lines = [
        f"checkpoint {path}: {info['kind']} of the {info['family']!r} family, step {info['step']}, "
        f"{info['parameters']:,} parameters{' (+ EMA)' if info['has_ema'] else ''}, "
        f"{'resumable (optimizer state)' if info['resumable'] else 'inference only'}"
    ]
    if spec:
        bound = "unbounded" if spec["bound"] is None else f"in [-{spec['bound']:g}, {spec['bound']:g}]"
        lines.append(f"latents: shape {tuple(spec['shape'])}, {bound}, prior {spec['prior']}, stored as {spec['dtype']}")
    info["text"] = "\n".join(lines)
    return {"path": str(path), **info}

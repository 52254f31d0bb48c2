"""The `evaluate` stage's measurements: FVD of generated videos, reconstruction quality, and sanity baselines.

Real clips come from the clip store's `real_split`; long real clips are runs of consecutive clips of one video
(ClipStore.next_clip), concatenated. Two baselines say whether a small model learnt anything:
`motion_*` (mean absolute frame-to-frame difference, in [0, 1] units: a frozen video scores 0) and
`fvd_noise_latents` (FVD of the autoencoder's decoding of a prior sample of its family's latents: its
LatentSpec says what that is). Nothing here knows a family: the autoencoder is any VideoAutoencoder.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm.config.autoencoder import AEValidationConfig
from pvdm.config.evaluate import EvaluateConfig
from pvdm.data.clips import ClipStore, from_model_tensor, to_model_tensor
from pvdm.data.layout import SAMPLE_FRAMES, SAMPLE_LABELS
from pvdm.data.video import read_video
from pvdm.families.roles import VideoAutoencoder
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.folders import list_videos
from pvdm.metrics.fvd import FVDProtocol, FVDResult, compute_fvd, protocols_from_config
from pvdm.metrics.lpips import load_lpips
from pvdm.metrics.recon import psnr, reconstruction_metrics


def real_split_indices(store: ClipStore, split: str) -> tuple[str, list[int]]:
    """(split used, clip indices): falls back to train when the requested split is empty (tiny datasets)."""
    indices = store.indices(split)
    return (split, indices) if indices else ("train", store.indices("train"))


def real_clips(store: ClipStore, indices: list[int]) -> Iterator[np.ndarray]:
    for i in indices:
        yield np.asarray(store[i])


def real_long_clips(store: ClipStore, indices: list[int], frames: int) -> Iterator[np.ndarray]:
    """Clips of `frames` frames made of consecutive stored clips of one video (each run used once)."""
    per_clip = store.frames
    need = -(-frames // per_clip)
    used: set[int] = set()
    for i in indices:
        run = [i]
        while len(run) < need and (nxt := store.next_clip(run[-1])) is not None:
            run.append(nxt)
        if len(run) == need and not used.intersection(run):
            used.update(run)
            yield np.concatenate([np.asarray(store[j]) for j in run])[:frames]


def video_files(folder: Path) -> Iterator[np.ndarray]:
    for path in list_videos(folder):
        yield read_video(path)


def generated_videos(folder: Path) -> tuple[int, Callable[[], Iterator[np.ndarray]], str]:
    """(count, a fresh iterator over the videos, where they came from) of a folder of generated videos: the
    sampler's own uint8 frames when the folder has them (no codec in between), else its video files decoded."""
    frames = folder / SAMPLE_FRAMES
    if frames.is_file():
        array = np.load(frames, mmap_mode="r")
        return (
            len(array),
            lambda: (np.asarray(v) for v in array),
            f"{SAMPLE_FRAMES} (the sampler's uint8 frames)",
        )
    paths = list_videos(folder)
    return len(paths), lambda: (read_video(p) for p in paths), "decoded video files"


def class_matched(store: ClipStore, indices: list[int], samples: Path) -> tuple[list[int], str]:
    """Real clips drawn per class in the generated videos' class proportions (class-conditional samples, whose
    classes samples/labels.json records); otherwise the split as it is. Returns (indices, the rule applied)."""
    path = samples / SAMPLE_LABELS
    record = json.loads(path.read_text()) if path.is_file() else {}
    names, fake = store.label_names, record.get("clips", [])
    if not names or not fake:
        return indices, "every clip of the split, in store order"
    counts = Counter(str(name) for name in fake)
    labels = store.labels()
    by_class = {name: [i for i in indices if labels[i] == k] for k, name in enumerate(names)}
    # as many real clips as the scarcest class allows at the generated proportions
    total = min(len(by_class.get(name, [])) * len(fake) // n for name, n in counts.items())
    chosen = []
    for name, n in counts.items():
        chosen += by_class.get(name, [])[: total * n // len(fake)]
    return chosen, f"stratified by class to match the generated labels ({dict(counts)})"


def motion(clips: Iterable[np.ndarray], limit: int) -> float:
    """Mean |frame t+1 - frame t| over pixels, in [0, 1] units, over up to `limit` clips."""
    values = []
    for k, clip in enumerate(clips):
        if k >= limit:
            break
        values.append(np.abs(np.diff(clip.astype(np.float32), axis=0)).mean() / 255.0)
    return float(np.mean(values)) if values else float("nan")


def sized(protocol: FVDProtocol, n_real: int, n_fake: int) -> FVDProtocol:
    return FVDProtocol(protocol.name, protocol.frames, min(protocol.n_real, n_real), min(protocol.n_fake, n_fake),
                       protocol.real_split)  # fmt: skip


@torch.no_grad()
def reconstruct(ae: VideoAutoencoder, clips: list[np.ndarray], batch_size: int, device: torch.device):
    """Held-out clips and their reconstructions, as paired float batches (B, 3, T, H, W) in [-1, 1]."""
    for start in range(0, len(clips), batch_size):
        x = torch.stack([to_model_tensor(c) for c in clips[start : start + batch_size]]).to(device)
        yield x.cpu(), ae(x).clamp(-1, 1).cpu()


@torch.no_grad()
def decode_noise_latents(
    ae: VideoAutoencoder, n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[np.ndarray]:
    """The autoencoder's decoding of prior samples of its latents: what 'no diffusion model at all' looks like."""
    for start in range(0, n, batch_size):
        z = ae.latent_spec.prior_sample(min(batch_size, n - start), generator)
        for video in ae.decode(z.to(device)).clamp(-1, 1):
            yield from_model_tensor(video)


def fvd_record(result: FVDResult) -> dict[str, Any]:
    return result.as_dict()


def fvd_long_record(
    protocol: FVDProtocol,
    store: ClipStore,
    indices: list[int],
    long_dir: Path,
    extractor: I3DFeatureExtractor,
) -> dict[str, Any]:
    """fvd_long over the generated long videos, on as many frames as they have (up to the protocol's)."""
    n_fakes, fakes, source = generated_videos(long_dir)
    if n_fakes < 2:
        return {}  # a covariance needs at least two clips a side
    frames = min(protocol.frames, next(fakes()).shape[0])
    reals = list(real_long_clips(store, indices, frames))[: protocol.n_real]
    if len(reals) < 2:
        return {}
    sized_protocol = FVDProtocol(
        "fvd_long", frames, len(reals), min(protocol.n_fake, n_fakes), protocol.real_split
    )
    result = compute_fvd(reals, fakes(), sized_protocol, extractor)
    return {"fvd_long": result.fvd, "protocol_fvd_long": fvd_record(result) | {"generated_from": source}}


def evaluate_run(
    cfg: EvaluateConfig,
    store: ClipStore,
    samples: Path,
    ae: VideoAutoencoder,
    device: torch.device,
    data_key: str,
) -> dict[str, Any]:
    """Everything metrics/eval.json holds; see shared/DESIGN.md section 4 for the keys."""
    extractor = I3DFeatureExtractor(device=device, batch_size=cfg.batch_size, progress=True)
    protocols = protocols_from_config(cfg)
    split, indices = real_split_indices(store, cfg.real_split)
    indices, selection = class_matched(store, indices, samples)
    n_fakes, fakes, source = generated_videos(samples / "clips")
    p16 = sized(protocols["fvd_16"], len(indices), n_fakes)
    out: dict[str, Any] = {"real_split": split}
    selection_key = f"{data_key}:{split}:{hashlib.sha256(str(indices).encode()).hexdigest()[:12]}"
    real_key = selection_key if cfg.cache_real_stats else None  # None: the real-statistics cache is not used

    r16 = compute_fvd(real_clips(store, indices), fakes(), p16, extractor, real_key)
    record = fvd_record(r16) | {"real_selection": selection, "generated_from": source}
    out |= {"fvd_16": r16.fvd, "n_real": r16.n_real, "n_fake": r16.n_fake, "detector": r16.detector["detector"],
            "detector_sha256": r16.detector["detector_sha256"], "protocol_fvd_16": record}  # fmt: skip

    long_dir = samples / "long"
    if long_dir.is_dir() and any(long_dir.iterdir()):
        out |= fvd_long_record(protocols["fvd_long"], store, indices, long_dir, extractor)

    noise = compute_fvd(
        real_clips(store, indices),
        decode_noise_latents(ae, p16.n_fake, cfg.batch_size, torch.Generator().manual_seed(0), device),
        p16, extractor, real_key,
    )  # fmt: skip
    out["fvd_noise_latents"] = noise.fvd
    out["motion_real"] = motion(real_clips(store, indices), p16.n_fake)
    out["motion_fake"] = motion(fakes(), p16.n_fake)
    out["motion_ratio"] = (
        out["motion_fake"] / out["motion_real"]
    )  # ~1: samples move like the data; ~0: frozen
    out["fvd_ratio_to_noise"] = out["fvd_16"] / out["fvd_noise_latents"]  # << 1: far better than no model

    if ae.trainable:  # an identity autoencoder reconstructs exactly: nothing to measure
        held_out = [np.asarray(store[i]) for i in indices[: cfg.recon_num_clips]]
        pairs = list(reconstruct(ae, held_out, cfg.batch_size, device))
        out |= reconstruction_metrics([p[0] for p in pairs], [p[1] for p in pairs], extractor)
    return out


@torch.no_grad()
def validate_autoencoder(
    ae: VideoAutoencoder, clips: list[np.ndarray], cfg: AEValidationConfig
) -> tuple[dict[str, float], np.ndarray]:
    """The train_autoencoder stage's check: PSNR and LPIPS over up to `cfg.num_clips` held-out clips, and a grid
    video (originals on top, reconstructions below) (T, 2H, n*W, 3) uint8 for recon_grid.gif."""
    device = next(ae.parameters(), torch.empty(0)).device
    x = torch.stack([to_model_tensor(c) for c in clips[: cfg.num_clips]])
    rec = torch.cat([ae(x[i : i + 4].to(device)).cpu() for i in range(0, len(x), 4)]).clamp(-1, 1)
    frames = x.transpose(1, 2).flatten(0, 1)  # (n*T, 3, H, W)
    rec_frames = rec.transpose(1, 2).flatten(0, 1)
    lpips = load_lpips(cfg.lpips_net)
    scores = {"val_psnr": float(psnr(x, rec).mean()), "val_lpips": float(lpips(rec_frames, frames).mean())}
    top = np.concatenate([from_model_tensor(c) for c in x], axis=2)  # (T, H, n*W, 3)
    bottom = np.concatenate([from_model_tensor(c) for c in rec], axis=2)
    return scores, np.concatenate([top, bottom], axis=1)

"""The `evaluate` stage's measurements: FVD of generated videos, reconstruction quality, and sanity baselines.

Real clips are windows of the clip store's `real_split` videos, chosen by the StyleGAN-V rule with a seed
(pvdm.metrics.windows), for fvd_16 and, with longer windows, fvd_long; for class-conditional samples, in the generated
clips' class proportions. Reconstruction metrics always use held-out (test) clips. Two baselines and a floor frame
every FVD:
`motion_*` (mean absolute frame-to-frame difference, in [0, 1] units: a frozen video scores 0) and
`fvd_noise_latents` (FVD of the autoencoder's decoding of a prior sample of its family's latents: its
LatentSpec says what that is), and `fvd_real_halves`, the FVD between two disjoint halves of the real videos at the
same n, the best any model can score. Nothing here knows a family: the autoencoder is any VideoAutoencoder.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pvdm.config.autoencoder import AEValidationConfig
from pvdm.config.data import DataConfig
from pvdm.config.evaluate import EvaluateConfig
from pvdm.data.clips import ClipStore, from_model_tensor, to_model_tensor
from pvdm.data.eval_set import read_eval_set, set_sha256
from pvdm.data.layout import SAMPLE_FRAMES, SAMPLE_LABELS
from pvdm.data.video import read_video
from pvdm.errors import CheckpointError
from pvdm.families.roles import VideoAutoencoder
from pvdm.metrics.bootstrap import BootstrapSpec, fvd_interval
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.folders import list_videos
from pvdm.metrics.fvd import FVDProtocol, FVDResult, compute_fvd, protocols_from_config
from pvdm.metrics.lpips import load_lpips
from pvdm.metrics.recon import psnr, reconstruction_metrics
from pvdm.metrics.windows import WINDOW_RULE, Run, halves, store_runs, store_windows, window_plan


def check_clips_fit(store: ClipStore, data: DataConfig, autoencoder: str) -> None:
    """The clip store must hold the videos the autoencoder was built for (`data`, its checkpoint's record): an
    imported or older model beside clips cut at another size would fail deep in its reconstruction, after every
    FVD, and its samples would be scored against real videos of another size. One line names both and the fix."""
    if not len(store):
        return
    frames, height, width = store[0].shape[:3]
    if (frames, height, width) != (data.frames, data.resolution, data.resolution):
        raise CheckpointError(
            f"{autoencoder} makes {data.frames}-frame {data.resolution} x {data.resolution} videos (its recorded "
            f"data config) but the clip store holds {frames}-frame {height} x {width} clips: set data.resolution: "
            f"{data.resolution} and data.frames: {data.frames} in params.yaml and rerun preprocess, or use an "
            "autoencoder made for these clips"
        )


def real_split_indices(store: ClipStore, split: str) -> tuple[str, list[int]]:
    """(split used, clip indices): falls back to train when the requested split is empty (tiny datasets)."""
    indices = store.indices(split)
    return (split, indices) if indices else ("train", store.indices("train"))


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


@dataclass
class RealSet:
    """The real videos an FVD compares against (runs of a split), the window seed, and, for class-conditional
    samples, how many generated clips each class has (windows are then drawn per class in those proportions)."""

    store: ClipStore
    runs: list[Run]
    split: str
    seed: int
    class_counts: dict[int, int]

    def windows(self, frames: int, n: int, runs: list[Run] | None = None) -> Iterator[np.ndarray]:
        runs = self.runs if runs is None else runs
        if not self.class_counts:
            yield from store_windows(self.store, runs, frames, n, self.seed)
            return
        total = sum(self.class_counts.values())
        for label, count in sorted(self.class_counts.items()):
            of_class = [r for r in runs if r.label == label]
            yield from store_windows(
                self.store, of_class, frames, max(1, n * count // total), self.seed + label
            )

    def available(self, frames: int, n: int) -> int:
        """How many of `n` windows the rule finds (videos shorter than `frames` give none)."""
        return len(window_plan([r.frames for r in self.runs], frames, n, self.seed))

    def record(self) -> dict[str, Any]:
        matched = (
            {self.store.label_names[k]: c for k, c in self.class_counts.items()} if self.class_counts else {}
        )
        selection = (
            f"stratified by class to match the generated labels ({matched})" if matched else "all videos"
        )
        return {"real_split": self.split, "window_rule": WINDOW_RULE, "window_seed": self.seed,
                "real_videos": len(self.runs), "real_selection": selection}  # fmt: skip

    def key(self, data_key: str) -> str:
        """Everything about the real side that changes its statistics (the protocol adds frames, n, detector)."""
        parts = [
            data_key,
            self.split,
            WINDOW_RULE,
            str(self.seed),
            json.dumps(sorted(self.class_counts.items())),
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def real_set(store: ClipStore, split: str, samples: Path, seed: int) -> RealSet:
    """The split's videos; class counts from samples/labels.json when the samples are class-conditional."""
    path = samples / SAMPLE_LABELS
    record = json.loads(path.read_text()) if path.is_file() else {}
    names, fake = store.label_names, record.get("clips", [])
    counts = Counter(names.index(str(n)) for n in fake if str(n) in names) if names and fake else Counter()
    return RealSet(store, store_runs(store, store.indices(split)), split, seed, dict(counts))


FEATURES = (
    "fvd_16_features"  # evaluate_run's key for the fvd_16 features (not a metric: the stage logs them apart)
)
PROTOCOL_KEYS = ("protocol", "frames", "n_real", "n_fake", "resolution", "detector_sha256", "real_split",
                 "window_rule", "window_seed", "real_selection", "bootstrap")  # fmt: skip


def bootstrap_spec(cfg: EvaluateConfig) -> BootstrapSpec:
    return BootstrapSpec(cfg.bootstrap_resamples, cfg.bootstrap_confidence, cfg.bootstrap_seed)


def eval_set_record(store: ClipStore, split: str) -> dict[str, Any]:
    """Which videos the FVD's real side is: `eval_set_sha256` (the hash of their content hashes, as they are in
    the store today) and, when they are the recorded held-out set (pvdm.data.eval_set), its id."""
    hashes = set(store.manifest["content_hash"].iloc[store.indices(split)])
    record: dict[str, Any] = {"eval_set_sha256": set_sha256(hashes), "eval_set_videos": len(hashes)}
    recorded = read_eval_set(store.root) if split == "test" else None
    if recorded is not None and recorded.sha256 == record["eval_set_sha256"]:
        record["eval_set_id"] = recorded.id
    return record


def protocol_sha256(record: dict[str, Any]) -> str:
    """The hash of what makes two fvd_16 numbers comparable (counts, frames, detector, real windows, bootstrap),
    from a protocol_fvd_16 record; the score and where the fakes came from are left out."""
    kept = {k: record.get(k) for k in PROTOCOL_KEYS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class FVD16:
    """fvd_16 with its interval, its protocol record and the features it came from (real, generated)."""

    metrics: dict[str, Any]
    real_features: np.ndarray
    fake_features: np.ndarray
    reals: RealSet
    protocol: FVDProtocol


def score_fvd_16(
    cfg: EvaluateConfig, store: ClipStore, samples: Path, extractor: I3DFeatureExtractor, data_key: str
) -> FVD16:
    """fvd_16 of the generated clips in `samples` against the store's real windows, with its bootstrap interval:
    what evaluate_run reports and what promotion computes again for a champion on a challenger's set."""
    split, _ = real_split_indices(store, cfg.real_split)
    reals = real_set(store, split, samples, cfg.window_seed)
    n_fakes, fakes, source = generated_videos(samples / "clips")
    p16 = sized(
        protocols_from_config(cfg)["fvd_16"], reals.available(cfg.fvd_frames, cfg.fvd_num_real), n_fakes
    )
    real_key = reals.key(data_key) if cfg.cache_real_stats else None  # None: the statistics cache is not used
    r16 = compute_fvd(reals.windows(p16.frames, p16.n_real), fakes(), p16, extractor, real_key)
    spec = bootstrap_spec(cfg)
    ci = fvd_interval(r16.real_features, r16.fake_features, spec)
    record = fvd_record(r16) | reals.record() | {"generated_from": source, "bootstrap": spec.record()}
    sets = eval_set_record(store, split)
    metrics = {"real_split": split, "fvd_16": r16.fvd, "fvd_16_ci": ci.as_list(), "n_real": r16.n_real,
               "n_fake": r16.n_fake, "detector": r16.detector["detector"],
               "detector_sha256": r16.detector["detector_sha256"], "protocol_fvd_16": record | sets,
               "protocol_sha256": protocol_sha256(record), **sets}  # fmt: skip
    return FVD16(metrics, r16.real_features, r16.fake_features, reals, p16)


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
    reals: RealSet,
    long_dir: Path,
    extractor: I3DFeatureExtractor,
    real_key: str | None,
) -> dict[str, Any]:
    """fvd_long over the generated long videos, on as many frames as they have (up to the protocol's), against
    real windows of the same length by the same rule."""
    n_fakes, fakes, source = generated_videos(long_dir)
    if n_fakes < 2:
        return {}  # a covariance needs at least two clips a side
    frames = min(protocol.frames, next(fakes()).shape[0])
    n_real = reals.available(frames, protocol.n_real)
    if n_real < 2:
        return {}
    sized_protocol = FVDProtocol(
        "fvd_long", frames, n_real, min(protocol.n_fake, n_fakes), protocol.real_split
    )
    result = compute_fvd(reals.windows(frames, n_real), fakes(), sized_protocol, extractor, real_key)
    record = fvd_record(result) | reals.record() | {"generated_from": source}
    return {"fvd_long": result.fvd, "protocol_fvd_long": record}


def fvd_real_halves(
    protocol: FVDProtocol, reals: RealSet, extractor: I3DFeatureExtractor
) -> tuple[float | None, dict[str, Any]]:
    """The FVD between two disjoint halves of the real videos, n/2 windows each by the same rule: the floor."""
    first, second = halves(reals.runs, reals.seed)
    n = protocol.n_real // 2
    if n < 2 or not first:
        return None, {}
    half = FVDProtocol("fvd_real_halves", protocol.frames, n, n, protocol.real_split)
    result = compute_fvd(reals.windows(protocol.frames, n, first), reals.windows(protocol.frames, n, second),
                         half, extractor)  # fmt: skip
    return result.fvd, fvd_record(result) | reals.record() | {"halves": [len(first), len(second)]}


def evaluate_run(
    cfg: EvaluateConfig,
    store: ClipStore,
    samples: Path,
    ae: VideoAutoencoder,
    device: torch.device,
    data_key: str,
) -> dict[str, Any]:
    """Everything metrics/eval.json holds: fvd_16 (with fvd_16_ci, eval_set_sha256 and protocol_sha256) and fvd_long
    with their protocols, the fvd_real_halves and fvd_noise_latents baselines, motion and reconstruction metrics
    (README, "After `make demo`", reads them); and, under FEATURES, the fvd_16 features (real, generated) for the
    stage to log apart (promotion's paired bootstrap reads them)."""
    extractor = I3DFeatureExtractor(device=device, batch_size=cfg.batch_size, progress=True)
    protocols = protocols_from_config(cfg)
    scored = score_fvd_16(cfg, store, samples, extractor, data_key)
    reals, p16 = scored.reals, scored.protocol
    _, fakes, _ = generated_videos(samples / "clips")
    real_key = reals.key(data_key) if cfg.cache_real_stats else None
    out: dict[str, Any] = dict(scored.metrics)
    out[FEATURES] = {"real": scored.real_features, "fake": scored.fake_features}

    long_dir = samples / "long"
    if long_dir.is_dir() and any(long_dir.iterdir()):
        out |= fvd_long_record(protocols["fvd_long"], reals, long_dir, extractor, real_key)

    noise = compute_fvd(
        reals.windows(p16.frames, p16.n_real),
        decode_noise_latents(ae, p16.n_fake, cfg.batch_size, torch.Generator().manual_seed(0), device),
        p16, extractor, real_key,
    )  # fmt: skip
    out["fvd_noise_latents"] = noise.fvd
    floor, floor_record = fvd_real_halves(p16, reals, extractor)
    if floor is not None:
        out |= {"fvd_real_halves": floor, "protocol_fvd_real_halves": floor_record}
    out["motion_real"] = motion(reals.windows(p16.frames, p16.n_real), p16.n_fake)
    out["motion_fake"] = motion(fakes(), p16.n_fake)
    out["motion_ratio"] = (
        out["motion_fake"] / out["motion_real"]
    )  # ~1: samples move like the data; ~0: frozen
    out["fvd_ratio_to_noise"] = out["fvd_16"] / out["fvd_noise_latents"]  # << 1: far better than no model

    if ae.trainable:  # an identity autoencoder reconstructs exactly: nothing to measure
        recon_split, held = real_split_indices(store, "test")  # held-out clips, whatever the FVD's split
        held_out = [np.asarray(store[i]) for i in held[: cfg.recon_num_clips]]
        pairs = list(reconstruct(ae, held_out, cfg.batch_size, device))
        out |= reconstruction_metrics([p[0] for p in pairs], [p[1] for p in pairs], extractor)
        out["recon_split"] = recon_split
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

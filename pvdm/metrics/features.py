"""I3D features of video clips: input conventions, preprocessing (rescale, resize) and batching.

Clip conventions, everywhere in pvdm.metrics:
- numpy arrays are channels-last: one clip (T, H, W, 3) or a batch (B, T, H, W, 3), uint8 in [0, 255] or float;
- torch tensors are channels-first: one clip (3, T, H, W) or a batch (B, 3, T, H, W), float in [-1, 1] or uint8.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm

from pvdm.metrics.i3d import detector_sha256, load_i3d

ClipLike = np.ndarray | torch.Tensor

DETECTOR_NAME = "i3d_kinetics400_logits"  # TF-Hub Kinetics-400 I3D, 400 pre-softmax logits
DETECTOR_SIZE = 224


def as_clip_batch(clips: ClipLike) -> torch.Tensor:
    """One clip or a batch in either convention -> a CPU tensor (B, 3, T, H, W), dtype kept."""
    if isinstance(clips, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(clips))
        batch = batch[None] if batch.ndim == 4 else batch
        _check_shape(batch, channel_dim=-1)
        return rearrange(batch, "b t h w c -> b c t h w")
    if isinstance(clips, torch.Tensor):
        batch = clips[None] if clips.ndim == 4 else clips
        _check_shape(batch, channel_dim=1)
        return batch.cpu()
    raise TypeError(f"clips must be a numpy array or a torch tensor (got {type(clips).__name__})")


def _check_shape(batch: torch.Tensor, channel_dim: int) -> None:
    if batch.ndim != 5 or batch.shape[channel_dim] != 3:
        layout = "(T, H, W, 3) or (B, T, H, W, 3)" if channel_dim == -1 else "(3, T, H, W) or (B, 3, T, H, W)"
        raise ValueError(f"expected RGB clips shaped {layout}, got {tuple(batch.shape)}")


def rebatch(items: Iterable[ClipLike], batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
    """Regroup clips or batches into (B, 3, T, H, W) batches of up to `batch_size`, at most `limit` clips.

    Clips of another shape (videos of mixed resolutions) start a new batch instead of failing to stack.
    """
    pending: list[torch.Tensor] = []
    seen = 0
    for item in items:
        batch = as_clip_batch(item)[: None if limit is None else limit - seen]
        if pending and batch.shape[1:] != pending[0].shape[1:]:
            yield torch.cat(pending)
            pending = []
        pending.append(batch)
        seen += len(batch)
        while sum(len(b) for b in pending) >= batch_size:
            merged = torch.cat(pending)
            yield merged[:batch_size]
            pending = [merged[batch_size:]] if len(merged) > batch_size else []
        if limit is not None and seen >= limit:
            break
    if pending:
        yield torch.cat(pending)


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """No TF32 inside: cuDNN's default TF32 convolutions (and matmuls, where a caller enabled them) would move
    the features away from the reference values. Restores the caller's settings afterwards."""
    matmul_precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False):
            yield
    finally:
        torch.set_float32_matmul_precision(matmul_precision)


class I3DFeatureExtractor:
    """Kinetics-400 I3D logits (B, 400) for video clips, batched, on CPU or GPU.

    rescale: map [0, 255] to [-1, 1]; None (default) = only for uint8 input. Float input is otherwise taken
    as already in [-1, 1]. resize: bilinearly resize every frame to 224x224 (align_corners=False, no
    antialias), as the detector was trained on; off only for input already at 224x224.
    """

    name = DETECTOR_NAME

    def __init__(
        self,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        rescale: bool | None = None,
        resize: bool = True,
        progress: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.rescale, self.resize, self.progress = rescale, resize, progress
        self.model = load_i3d().to(self.device)
        self.sha256 = detector_sha256()

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) uint8 or float -> float32 on the device, in [-1, 1], 224x224 when resizing."""
        rescale = batch.dtype == torch.uint8 if self.rescale is None else self.rescale
        x = batch.to(self.device, non_blocking=True).float()
        if rescale:
            x = x / 127.5 - 1.0
        if self.resize and tuple(x.shape[-2:]) != (DETECTOR_SIZE, DETECTOR_SIZE):
            b = x.shape[0]
            frames = rearrange(x, "b c t h w -> (b t) c h w")
            frames = F.interpolate(
                frames, size=(DETECTOR_SIZE, DETECTOR_SIZE), mode="bilinear", align_corners=False
            )
            x = rearrange(frames, "(b t) c h w -> b c t h w", b=b)
        return x

    @torch.inference_mode()
    def features(self, clips: ClipLike) -> np.ndarray:
        """Logits of one batch (or one clip) as float64 (B, 400)."""
        x = self.preprocess(as_clip_batch(clips))
        with full_fp32():
            logits = self.model(x)
        return logits.double().cpu().numpy()

    def extract(
        self, clips: Iterable[ClipLike], limit: int | None = None, total: int | None = None
    ) -> np.ndarray:
        """Features (N, 400) float64 of all clips in an iterable of clips or batches (at most `limit`)."""
        total = total if total is not None else limit
        bar = tqdm(total=total, unit="clip", desc="I3D features", disable=not self.progress)
        chunks = []
        with bar:
            for batch in rebatch(clips, self.batch_size, limit):
                chunks.append(self.features(batch))
                bar.update(len(batch))
        return np.concatenate(chunks) if chunks else np.zeros((0, 400))

    def describe(self) -> dict[str, object]:
        """How features are made, for the record written with every FVD."""
        return {
            "detector": self.name,
            "detector_sha256": self.sha256,
            "detector_resize": DETECTOR_SIZE if self.resize else None,
            "detector_rescale": "auto" if self.rescale is None else self.rescale,
        }

"""Reconstruction metrics of the autoencoder (the paper's Table 4): PSNR, SSIM, LPIPS and R-FVD.

Clips here are float tensors (B, 3, T, H, W) in [-1, 1], originals and reconstructions paired batch by batch.
PSNR and SSIM are computed on [0, 1] (data range 1), per clip, and averaged over clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.metrics.fvd import FeatureStats, fvd_from_stats
from pvdm.metrics.lpips import load_lpips

if TYPE_CHECKING:  # I3D is loaded only where R-FVD is computed: training imports psnr from here
    from pvdm.metrics.features import I3DFeatureExtractor

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03  # Wang et al. 2004


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def psnr(original: torch.Tensor, recon: torch.Tensor, max_db: float = 100.0) -> torch.Tensor:
    """PSNR in dB per clip (B,), over all pixels, frames and channels; identical clips give `max_db`."""
    mse = (to_unit_range(original) - to_unit_range(recon)).pow(2).flatten(1).mean(dim=1).double()
    return (-10.0 * torch.log10(mse.clamp_min(10 ** (-max_db / 10)))).float()


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(original: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per clip (B,): Gaussian window 11 / sigma 1.5 on every frame and channel, valid region only."""
    b = original.shape[0]
    # float64: the variances are differences of near-equal terms (E[x^2] - E[x]^2), which float32 blurs.
    x = rearrange(to_unit_range(original).double(), "b c t h w -> (b t c) 1 h w")
    y = rearrange(to_unit_range(recon).double(), "b c t h w -> (b t c) 1 h w")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}"
        )
    window = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, x.device)[None, None]

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return rearrange(ssim_map.flatten(1).mean(dim=1), "(b tc) -> b tc", b=b).mean(dim=1).float()


@torch.no_grad()
def lpips_per_clip(
    model: nn.Module, original: torch.Tensor, recon: torch.Tensor, frames_per_call: int = 32
) -> torch.Tensor:
    """Mean LPIPS over the frames of each clip (B,); frames go through the network `frames_per_call` at a time."""
    b = original.shape[0]
    device = next(model.parameters()).device
    x = rearrange(original.float(), "b c t h w -> (b t) c h w")
    y = rearrange(recon.float(), "b c t h w -> (b t) c h w")
    scores = [
        model(x[i : i + frames_per_call].to(device), y[i : i + frames_per_call].to(device)).flatten().cpu()
        for i in range(0, len(x), frames_per_call)
    ]
    return rearrange(torch.cat(scores), "(b t) -> b t", b=b).mean(dim=1)


def _paired_batches(
    originals: torch.Tensor | Iterable[torch.Tensor], recons: torch.Tensor | Iterable[torch.Tensor]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(originals, torch.Tensor):
        originals, recons = [originals], [recons]
    for original, recon in zip(originals, recons, strict=True):
        if original.shape != recon.shape:
            raise ValueError(
                f"original {tuple(original.shape)} and reconstruction {tuple(recon.shape)} differ"
            )
        yield original, recon


def reconstruction_metrics(
    originals: torch.Tensor | Iterable[torch.Tensor],
    recons: torch.Tensor | Iterable[torch.Tensor],
    extractor: I3DFeatureExtractor | None = None,
    lpips_model: nn.Module | None = None,
) -> dict[str, float]:
    """recon_psnr, recon_ssim, recon_lpips (VGG) and recon_fvd between held-out clips and their reconstructions.

    `originals` and `recons` are float tensors (B, 3, T, H, W) in [-1, 1], or two iterables of such batches
    in the same order. R-FVD is the FVD (I3D, frames resized to 224) between the two sets; it needs >= 2 clips.
    """
    if extractor is None:
        from pvdm.metrics.features import I3DFeatureExtractor

        extractor = I3DFeatureExtractor()
    lpips_model = lpips_model or load_lpips("vgg")
    psnrs, ssims, lpipses, real_feats, fake_feats = [], [], [], [], []
    for original, recon in _paired_batches(originals, recons):
        psnrs.append(psnr(original, recon))
        ssims.append(ssim(original, recon))
        lpipses.append(lpips_per_clip(lpips_model, original, recon))
        real_feats.append(extractor.extract([original]))
        fake_feats.append(extractor.extract([recon]))
    real = FeatureStats.from_features(np.concatenate(real_feats))
    fake = FeatureStats.from_features(np.concatenate(fake_feats))
    return {
        "recon_psnr": _mean(psnrs),
        "recon_ssim": _mean(ssims),
        "recon_lpips": _mean(lpipses),
        "recon_fvd": fvd_from_stats(real, fake),
        "recon_n_clips": real.n,
    }


def _mean(values: list[torch.Tensor]) -> float:
    value = torch.cat(values).double().mean().item()
    return value if math.isfinite(value) else float("nan")

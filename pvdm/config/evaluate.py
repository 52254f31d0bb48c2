"""`evaluate`: FVD protocols (StyleGAN-V / PVDM) and the autoencoder's reconstruction metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pvdm.config.base import StrictModel


class EvaluateConfig(StrictModel):
    fvd_num_real: int = Field(2048, ge=2, description="real clips for fvd_16 (StyleGAN-V protocol: 2048)")
    fvd_num_fake: int = Field(
        2048, ge=2, description="generated clips for fvd_16 (StyleGAN-V protocol: 2048)"
    )
    fvd_frames: int = Field(16, ge=8, description="consecutive frames per clip for fvd_16")
    fvd_long_frames: int = Field(128, ge=8, description="frames per clip for fvd_long (the paper's FVD128)")
    fvd_long_num: int = Field(2048, ge=2, description="real and generated clips for fvd_long")
    real_split: Literal["train", "test"] = Field("test", description="split the real videos come from")
    window_seed: int = Field(
        0,
        ge=0,
        description="seed of the real-window rule (videos shuffled, one random window each; StyleGAN-V)",
    )
    recon_num_clips: int = Field(
        64,
        ge=2,
        description="held-out (test-split) clips for PSNR / SSIM / LPIPS / R-FVD, whatever real_split is",
    )
    lpips_net: Literal["vgg", "alex"] = "vgg"
    batch_size: int = Field(8, ge=1, description="clips per I3D forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cache_real_stats: bool = Field(
        True, description="reuse real-side I3D statistics keyed by data hash + protocol"
    )
    # How much fvd_16 moves by chance (pvdm.metrics.bootstrap): its interval, and the promotion rule's paired test.
    bootstrap_resamples: int = Field(
        1000,
        ge=10,
        le=100_000,
        description="bootstrap resamples of the fvd_16 features (fvd_16_ci, promotion)",
    )
    bootstrap_confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="confidence of the fvd_16_ci interval and of the promotion test"
    )
    bootstrap_seed: int = Field(0, ge=0, description="seed of the bootstrap resamples")
    promotion_margin: float = Field(
        0.0,
        ge=0.0,
        description="promotion: the challenger's fvd_16 must be lower than the champion's by more than this, at "
        "the whole paired-bootstrap interval of the difference (0: the interval must lie below zero)",
    )

"""PSNR, SSIM, LPIPS and R-FVD of reconstructions: closed forms, orderings, and the metrics record."""

from __future__ import annotations

import math

import pytest
import torch

from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.metrics.lpips import load_lpips
from pvdm.metrics.recon import lpips_per_clip, psnr, reconstruction_metrics, ssim

pytestmark = [
    pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning"),
    pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated:UserWarning"),
]


@pytest.fixture(scope="module")
def lpips_vgg():
    return load_lpips("vgg")


def clips(n: int = 2, frames: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, frames, size, size) * 1.6 - 0.8  # away from the clamp at +-1


def test_psnr_of_a_uniform_error_is_closed_form():
    x = clips()
    err = 0.1  # in [0, 1] units: 0.2 in [-1, 1] units
    assert psnr(x, x + 2 * err).tolist() == pytest.approx([-10 * math.log10(err**2)] * 2, rel=1e-5)
    assert psnr(x, x).tolist() == pytest.approx([100.0, 100.0])


def test_ssim_of_constant_frames_is_the_luminance_term():
    a, b = 0.3, 0.7  # [0, 1] values; zero variance leaves (2ab + C1) / (a^2 + b^2 + C1)
    x = torch.full((1, 3, 2, 16, 16), 2 * a - 1)
    y = torch.full((1, 3, 2, 16, 16), 2 * b - 1)
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_ssim_is_one_on_identical_clips_and_falls_with_noise():
    x = clips()
    scores = [
        ssim(x, (x + s * torch.randn_like(x)).clamp(-1, 1)).mean().item() for s in (0.0, 0.05, 0.2, 0.5)
    ]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores == sorted(scores, reverse=True) and scores[-1] < 0.8
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))


def test_lpips_per_clip_is_zero_on_identical_and_per_clip(lpips_vgg):
    x = clips(n=2)
    y = x.clone()
    y[1] = (y[1] + 0.4 * torch.randn_like(y[1])).clamp(-1, 1)  # only the second clip changes
    scores = lpips_per_clip(lpips_vgg, x, y, frames_per_call=3)
    assert scores.shape == (2,)
    assert scores[0].item() < 1e-6 < 0.05 < scores[1].item()


def test_reconstruction_metrics_record(lpips_vgg):
    extractor = I3DFeatureExtractor(batch_size=4, resize=False)
    originals = [clips(n=2, frames=8), clips(n=2, frames=8)]
    recons = [(x + 0.1 * torch.randn_like(x)).clamp(-1, 1) for x in originals]
    metrics = reconstruction_metrics(originals, recons, extractor=extractor, lpips_model=lpips_vgg)
    assert set(metrics) == {"recon_psnr", "recon_ssim", "recon_lpips", "recon_fvd", "recon_n_clips"}
    assert metrics["recon_n_clips"] == 4
    assert 15 < metrics["recon_psnr"] < 40
    assert 0 < metrics["recon_ssim"] < 1 and metrics["recon_lpips"] > 0 and metrics["recon_fvd"] > 0
    perfect = reconstruction_metrics(originals, originals, extractor=extractor, lpips_model=lpips_vgg)
    assert perfect["recon_fvd"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["recon_ssim"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="differ"):
        reconstruction_metrics(originals[0], originals[0][:1], extractor=extractor, lpips_model=lpips_vgg)

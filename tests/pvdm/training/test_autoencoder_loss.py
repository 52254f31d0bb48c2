"""The GAN losses score through `disc(...)` (one forward for real and fake); single-process numbers unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pvdm.models.discriminator import VideoDiscriminator
from pvdm.training.autoencoder_loss import (
    discriminator_hinge_loss,
    generator_adversarial_loss,
    pick_frames,
    random_frame_index,
)


def _separately(disc: VideoDiscriminator, video: torch.Tensor, index: torch.Tensor):
    """The explicit per-call computation: each critic called on its own, on one of real or fake."""
    frame_logits, frame_feats = disc.frame(pick_frames(video, index[:, :1]))
    clip_logits, clip_feats = disc.clip(video)
    return (frame_logits, clip_logits), frame_feats + clip_feats


def _seeded():
    torch.manual_seed(0)
    disc = VideoDiscriminator(channels=8, layers=2)
    x, x_rec = torch.rand(2, 2, 3, 4, 16, 16) * 2 - 1
    index = random_frame_index(2, 4, 1, torch.Generator().manual_seed(1))
    return disc, x, x_rec, index


def test_discriminator_hinge_loss_equals_scoring_real_and_fake_separately() -> None:
    disc, x, x_rec, index = _seeded()
    (real, _), (fake, _) = _separately(disc, x, index), _separately(disc, x_rec, index)
    expected = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True))
    got = discriminator_hinge_loss(disc, x, x_rec, index)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_generator_adversarial_loss_equals_the_per_call_computation() -> None:
    disc, x, x_rec, index = _seeded()
    (_, real_feats), (fake, fake_feats) = _separately(disc, x, index), _separately(disc, x_rec, index)
    expected_g = sum(-f.mean() for f in fake)
    expected_fm = sum(F.l1_loss(f, r) for f, r in zip(fake_feats, real_feats, strict=True))
    g_loss, fm = generator_adversarial_loss(disc, x, x_rec, index)
    torch.testing.assert_close(g_loss, expected_g, atol=1e-6, rtol=0)
    torch.testing.assert_close(fm, expected_fm, atol=1e-6, rtol=0)
    assert g_loss.requires_grad and fm.requires_grad  # the generator is trained through D

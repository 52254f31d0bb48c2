from __future__ import annotations

import torch

from pvdm.models.discriminator import DiscriminatorOutput, VideoDiscriminator


def test_forward_scores_the_frames_and_the_clip_in_one_call() -> None:
    torch.manual_seed(0)
    disc = VideoDiscriminator(channels=8, layers=2)
    frames, clip = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 8, 32, 32)
    out = disc(frames, clip)
    assert isinstance(out, DiscriminatorOutput)
    assert out.frame_logits.ndim == 4 and out.frame_logits.shape[:2] == (2, 1)
    assert out.clip_logits.ndim == 5 and out.clip_logits.shape[:2] == (2, 1)
    assert len(out.frame_features) == len(out.clip_features) == 3
    assert out.logits == (out.frame_logits, out.clip_logits)
    assert out.features == out.frame_features + out.clip_features
    frame_logits, frame_features = disc.frame(frames)  # the same numbers as the critics called alone
    torch.testing.assert_close(out.frame_logits, frame_logits)
    torch.testing.assert_close(out.clip_logits, disc.clip(clip)[0])

"""The factorised space-time 3D UNet (unet3d): shapes, what mixes frames and what does not, classes, errors."""

from __future__ import annotations

import pytest
import torch

from pvdm.config import ConfigError, parse_params
from pvdm.families.roles import LatentSpec
from pvdm.families.vdm.config import UNet3DConfig
from pvdm.models.unet3d import TemporalAttention, UNet3D

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides: object) -> UNet3DConfig:
    base = {"model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [1, 2],
            "num_heads": 2, "norm_groups": 4}  # fmt: skip
    return UNet3DConfig(**(base | overrides))


def pixels(frames: int = 4, size: int = 8, channels: int = 3) -> LatentSpec:
    return LatentSpec((channels, frames, size, size), bound=1.0)


def randomized(model: UNet3D) -> UNet3D:
    """Zero-initialised output layers make every block the identity at init; give them weights to test mixing."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize(("frames", "size", "channels"), [(4, 8, 3), (5, 7, 2), (1, 9, 4)])
def test_output_has_the_input_shape_for_odd_sizes(frames: int, size: int, channels: int) -> None:
    model = UNet3D(tiny(), pixels(frames, size, channels))
    z = torch.randn(2, channels, frames, size, size)
    out = model(z, torch.tensor([1, 900]), cond=torch.randn_like(z))
    assert out.shape == z.shape
    assert torch.equal(out, torch.zeros_like(out))  # zero-init output layer: eps = 0 before training


def frame_effect(model: UNet3D, frame: int) -> torch.Tensor:
    """How much each output frame moves when input frame `frame` is perturbed: (T,)."""
    z = torch.randn(1, 3, 4, 8, 8)
    bumped = z.clone()
    bumped[:, :, frame] += 1.0
    t = torch.tensor([500])
    with torch.no_grad():
        delta = (model(bumped, t) - model(z, t)).abs()
    return delta.amax(dim=(0, 1, 3, 4))


def test_only_temporal_attention_mixes_frames() -> None:
    per_frame = randomized(UNet3D(tiny(temporal_attention=False), pixels()))
    effect = frame_effect(per_frame, frame=2)
    assert effect[2] > 1e-3 and torch.all(effect[[0, 1, 3]] == 0)  # 1x3x3 convs and spatial attention only
    video = randomized(UNet3D(tiny(), pixels()))
    assert torch.all(frame_effect(video, frame=2) > 1e-5)


def test_temporal_bias_depends_on_the_relative_distance_only() -> None:
    attn = TemporalAttention(channels=8, heads=2, groups=4, frames=5)
    with torch.no_grad():
        attn.relative_bias.copy_(torch.randn_like(attn.relative_bias))
    bias = attn.relative_bias[:, attn.offsets]  # (heads, T, T)
    for i in range(4):
        for j in range(4):
            torch.testing.assert_close(bias[:, i, j], bias[:, i + 1, j + 1])
    assert not torch.allclose(bias[:, 0, 1], bias[:, 1, 0])  # before and after are different distances
    with pytest.raises(ValueError, match="built for 5 frames, got 4"):
        attn(torch.zeros(1, 8, 4, 2, 2))


def test_class_labels_steer_the_output_and_null_is_the_default() -> None:
    model = randomized(UNet3D(tiny(num_classes=3), pixels()))
    z, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([300, 300])
    with torch.no_grad():
        a, b = model(z, t, label=torch.tensor([0, 0])), model(z, t, label=torch.tensor([1, 1]))
        null, none = model(z, t, label=torch.tensor([-1, -1])), model(z, t)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(null, none)  # -1 and None are both the null class
    with pytest.raises(ValueError, match="class label 3 out of range"):
        model(z, t, label=torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="unconditional"):
        UNet3D(tiny(), pixels())(z, t, label=torch.tensor([0, 0]))


def test_latents_of_the_wrong_rank_and_the_triplane_autoencoder_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unet3d models \(C, T, H, W\) latents.*\(4, 48\)"):
        UNet3D(tiny(), LatentSpec((4, 48)))
    with pytest.raises(ConfigError, match="diffusion.denoiser.type: unet3d models"):
        parse_params({"diffusion": {"denoiser": {"type": "unet3d"}}})  # the default autoencoder is triplane
    ok = parse_params(
        {"autoencoder": {"model": {"type": "identity"}}, "diffusion": {"denoiser": {"type": "unet3d"}}}
    )
    assert ok.diffusion.denoiser.type == "unet3d"

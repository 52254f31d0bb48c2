from __future__ import annotations

import pytest
import torch

from pvdm.config.base import ConfigError
from pvdm.families.triplane.config import TriplaneAEConfig
from pvdm.models.autoencoder import TriplaneAutoencoder
from pvdm.models.discriminator import VideoDiscriminator
from pvdm.models.latent import pack_planes, unpack_planes

TINY = {"width": 16, "heads": 2, "encoder_depth": 1, "decoder_depth": 1, "projection_depth": 1}


@pytest.mark.parametrize(
    ("frames", "resolution", "patch", "channels"),
    [(4, 16, 4, 2), (8, 32, 8, 4), (5, 24, 4, 3), (16, 256, 8, 4)],
)
def test_planes_have_the_paper_layout(frames: int, resolution: int, patch: int, channels: int) -> None:
    cfg = TriplaneAEConfig(patch_size=patch, latent_channels=channels, **TINY)
    ae = TriplaneAutoencoder(cfg, frames=frames, resolution=resolution)
    x = torch.rand(2, 3, frames, resolution, resolution) * 2 - 1
    with torch.no_grad():
        z_s, z_h, z_w = ae.encode_planes(x)
        g = resolution // patch
        assert z_s.shape == (2, channels, g, g)
        assert z_h.shape == (2, channels, frames, g)
        assert z_w.shape == (2, channels, frames, g)
        assert all(z.abs().max() <= 1 for z in (z_s, z_h, z_w))  # tanh-bounded
        assert ae.decode_planes((z_s, z_h, z_w)).shape == x.shape


def test_paper_geometry_gives_2048_latent_positions() -> None:
    ae = TriplaneAutoencoder(TriplaneAEConfig(**TINY), frames=16, resolution=256)
    assert ae.latent_shape.plane_shapes == ((32, 32), (16, 32), (16, 32))
    assert ae.latent_shape.length == 2048


def test_pack_unpack_round_trip() -> None:
    ae = TriplaneAutoencoder(TriplaneAEConfig(patch_size=4, **TINY), frames=6, resolution=20)
    x = torch.rand(3, 3, 6, 20, 20) * 2 - 1
    with torch.no_grad():
        planes = ae.encode_planes(x)
        packed = ae.encode(x)  # the role's latent: the packed planes
    assert packed.shape == (3, 4, 25 + 30 + 30) == (3, *ae.latent_spec.shape)
    for a, b in zip(unpack_planes(packed, ae.latent_shape), planes, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(pack_planes(planes), packed)
    with pytest.raises(ValueError, match="expected"):
        unpack_planes(packed[..., :-1], ae.latent_shape)


def test_every_plane_depends_on_the_video_and_feeds_the_decoder() -> None:
    ae = TriplaneAutoencoder(TriplaneAEConfig(patch_size=4, **TINY), frames=4, resolution=16).eval()
    x = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    y = x.clone()
    y[:, :, 2, 0:4, :] = -y[:, :, 2, 0:4, :]  # first patch row of frame 2
    with torch.no_grad():
        zx, zy = ae.encode_planes(x), ae.encode_planes(y)
    # the encoder mixes frames and positions through attention, so all planes move; none may be ignored
    assert all((a - b).abs().max() > 1e-6 for a, b in zip(zx, zy, strict=True))
    with torch.no_grad():
        base = ae.decode_planes(zx)
        for i in range(3):
            planes = list(zx)
            planes[i] = torch.zeros_like(planes[i])
            assert (ae.decode_planes(tuple(planes)) - base).abs().max() > 1e-6


def test_wrong_input_shape_and_geometry_are_clear_errors() -> None:
    ae = TriplaneAutoencoder(TriplaneAEConfig(patch_size=4, **TINY), frames=4, resolution=16)
    with pytest.raises(ValueError, match=r"expects video \(B, 3, 4, 16, 16\)"):
        ae.encode(torch.zeros(1, 3, 5, 16, 16))
    with pytest.raises(ConfigError, match="patch_size"):
        TriplaneAutoencoder(TriplaneAEConfig(patch_size=5, **TINY), frames=4, resolution=16)


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    plain = TriplaneAutoencoder(TriplaneAEConfig(patch_size=4, **TINY), frames=4, resolution=16)
    ckpt = TriplaneAutoencoder(TriplaneAEConfig(patch_size=4, activation_checkpointing=True, **TINY), 4, 16)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    for m in (plain, ckpt):
        (m(x) - x).abs().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_discriminators_score_patches_and_return_features() -> None:
    disc = VideoDiscriminator(channels=8, layers=2)
    logits, feats = disc.frame(torch.zeros(2, 3, 32, 32))
    assert logits.shape[:2] == (2, 1) and logits.shape[-1] > 1 and len(feats) == 3
    logits, feats = disc.clip(torch.zeros(2, 3, 8, 32, 32))
    assert logits.ndim == 5 and logits.shape[:2] == (2, 1)

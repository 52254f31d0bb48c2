from __future__ import annotations

import pytest
import torch

from pvdm.config.base import ConfigError, validate_section
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.models.latent import LatentShape, pack_planes, unpack_planes
from pvdm.models.unet import PAPER_LATENT, JointAttention, TriplaneUNet, paper_unet
from tests.pvdm.models.helpers import randomized

SQUARE = LatentShape(channels=4, frames=6, height=6, width=6)  # three 6x6 planes, L = 108


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


def tiny(**overrides) -> TriplaneUNetConfig:
    base = dict(
        model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2], num_heads=2
    )
    return TriplaneUNetConfig(**(base | overrides))


def perturb_plane(z: torch.Tensor, shape: LatentShape, plane: int, sample: int = 0) -> torch.Tensor:
    planes = [p.clone() for p in unpack_planes(z, shape)]
    planes[plane][sample] += torch.randn_like(planes[plane][sample])
    return pack_planes(tuple(planes))


def plane_outputs(out: torch.Tensor, shape: LatentShape) -> tuple[torch.Tensor, ...]:
    return unpack_planes(out, shape)


@pytest.mark.parametrize(
    ("latent", "cfg"),
    [
        (SQUARE, tiny()),
        # odd sizes at every level: 7x9, 5x9, 5x7 -> 4x5, 3x5, 3x4 -> 2x3 ... -> 1x2
        (LatentShape(3, 5, 7, 9), tiny(channel_mult=[1, 1, 2, 2], attention_resolutions=[1, 8])),
        # S = 4 frames over 4 levels: 4 -> 2 -> 1 -> 1; a single-row plane too
        (
            LatentShape(2, 4, 1, 8),
            tiny(channel_mult=[1, 1, 1, 1], num_res_blocks=2, attention_resolutions=[4]),
        ),
    ],
)
def test_output_has_the_packed_shape_for_odd_and_tiny_planes(
    latent: LatentShape, cfg: TriplaneUNetConfig
) -> None:
    model = TriplaneUNet(cfg, latent)
    z = torch.randn(2, *latent.packed_shape)
    out = randomized(model)(z, torch.tensor([0, 999]), torch.randn_like(z))
    assert out.shape == z.shape
    assert torch.isfinite(out).all()


def test_paper_latent_layout_with_a_narrow_model() -> None:
    assert PAPER_LATENT.plane_shapes == ((32, 32), (16, 32), (16, 32))
    assert PAPER_LATENT.length == 2048
    model = paper_unet(model_channels=16)  # the official mult [1, 2, 4, 4], attention at [4, 2, 1], 8 heads
    z = torch.randn(1, 4, 2048)
    with torch.no_grad():
        out = model(z, torch.tensor([500]), None)
    assert out.shape == (1, 4, 2048)


def test_fresh_model_predicts_zero_because_the_output_conv_is_zero_initialised() -> None:
    model = TriplaneUNet(tiny(), SQUARE)
    z = torch.randn(2, *SQUARE.packed_shape)
    out = model(z, torch.tensor([10, 20]))
    assert torch.equal(out, torch.zeros_like(out))


def test_convolutions_never_mix_planes_or_samples_when_attention_is_off() -> None:
    latent = LatentShape(3, 4, 5, 6)
    model = randomized(TriplaneUNet(tiny(attention_resolutions=[], mid_attention=False), latent))
    z, cond, t = (
        torch.randn(2, *latent.packed_shape),
        torch.randn(2, *latent.packed_shape),
        torch.tensor([3, 700]),
    )
    with torch.no_grad():
        base = plane_outputs(model(z, t, cond), latent)
        moved_z = plane_outputs(model(perturb_plane(z, latent, 0), t, cond), latent)
        moved_cond = plane_outputs(model(z, t, perturb_plane(cond, latent, 0)), latent)
    for moved in (moved_z, moved_cond):
        assert not torch.allclose(moved[0][0], base[0][0])  # the perturbed plane itself responds
        torch.testing.assert_close(moved[1], base[1], rtol=0, atol=0)  # z_h: untouched
        torch.testing.assert_close(moved[2], base[2], rtol=0, atol=0)  # z_w: untouched
        torch.testing.assert_close(moved[0][1], base[0][1], rtol=0, atol=0)  # the other sample: untouched


def test_joint_attention_carries_information_between_planes() -> None:
    latent = LatentShape(3, 4, 5, 6)
    model = randomized(TriplaneUNet(tiny(attention_resolutions=[1], mid_attention=False), latent))
    with torch.no_grad():
        # Sharpen the attention: near-uniform attention averages each GroupNorm-ed plane to its (input-free)
        # mean, which would hide the mixing this test looks for.
        for m in model.modules():
            if isinstance(m, JointAttention):
                m.qkv.weight.mul_(5.0)
    z, t = torch.randn(1, *latent.packed_shape), torch.tensor([3])
    with torch.no_grad():
        base = plane_outputs(model(z, t), latent)
        moved = plane_outputs(model(perturb_plane(z, latent, 0), t), latent)
    assert (moved[1] - base[1]).abs().max() > 1e-3
    assert (moved[2] - base[2]).abs().max() > 1e-3


def test_joint_attention_block_equals_softmax_attention_over_the_concatenated_tokens() -> None:
    attn = randomized(JointAttention(channels=4, heads=2, groups=2))
    planes = [torch.randn(1, 4, 2, 3), torch.randn(1, 4, 1, 3), torch.randn(1, 4, 2, 2)]
    out = attn(planes)
    # reference: one attention over all 6 + 3 + 4 = 13 tokens, written out with an explicit softmax
    tokens = torch.cat([attn.norm(p).flatten(2).transpose(1, 2) for p in planes], dim=1)[0]  # (13, 4)
    q, k, v = attn.qkv(tokens).split(4, dim=-1)
    heads = []
    for h in range(2):
        sl = slice(2 * h, 2 * h + 2)
        weights = torch.softmax(
            q[:, sl] @ k[:, sl].T / 2**0.5, dim=-1
        )  # (13, 13): every token sees all planes
        heads.append(weights @ v[:, sl])
    ref = attn.proj(torch.cat(heads, dim=-1))
    got = torch.cat([(o - p).flatten(2).transpose(1, 2) for o, p in zip(out, planes, strict=True)], dim=1)[0]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_weights_are_shared_across_planes_and_the_plane_embedding_tells_them_apart() -> None:
    z_plane = torch.randn(1, 4, 6, 6)
    z = pack_planes((z_plane, z_plane, z_plane))  # the same image on all three (square) planes
    t = torch.tensor([100])
    shared = randomized(TriplaneUNet(tiny(attention_resolutions=[], plane_embedding=False), SQUARE))
    with torch.no_grad():
        s, h, w = plane_outputs(shared(z, t), SQUARE)
    torch.testing.assert_close(s, h, rtol=0, atol=0)
    torch.testing.assert_close(h, w, rtol=0, atol=0)
    tagged = randomized(TriplaneUNet(tiny(attention_resolutions=[]), SQUARE))
    with torch.no_grad():
        s, h, w = plane_outputs(tagged(z, t), SQUARE)
    assert (h - w).abs().max() > 1e-3


def test_timestep_and_condition_reach_the_output() -> None:
    model = randomized(TriplaneUNet(tiny(), SQUARE))
    z = torch.randn(1, *SQUARE.packed_shape)
    with torch.no_grad():
        out = model(z, torch.tensor([5]), None)
        assert torch.equal(
            out, model(z, torch.tensor([5]), torch.zeros_like(z))
        )  # None is the null condition
        assert torch.equal(out, model(z, torch.tensor(5.0), None))  # scalar and float t
        assert (out - model(z, torch.tensor([900]), None)).abs().max() > 1e-3
        assert (out - model(z, torch.tensor([5]), torch.randn_like(z))).abs().max() > 1e-3


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    z, t = torch.randn(2, *SQUARE.packed_shape), torch.tensor([1, 2])
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = randomized(TriplaneUNet(tiny(activation_checkpointing=ckpt), SQUARE)).train()
        model(z, t).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"model_channels": 12, "num_heads": 8}, "num_heads (8) must divide"),
        ({"attention_resolutions": [3]}, "attention_resolutions [3] are not downsample factors"),
        ({"channel_mult": [1, 0]}, "channel_mult entries must be >= 1"),
        ({"heads": 4}, "diffusion.denoiser.heads: unknown key"),
    ],
)
def test_bad_unet_configs_name_the_problem(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=".*") as info:
        validate_section(TriplaneUNetConfig, data, prefix="diffusion.denoiser")
    assert needle in str(info.value)


def test_the_official_attention_layout_attends_at_every_level_and_within_planes() -> None:
    from pvdm.models.unet import PlaneAttention, PlaneBlock

    compact = TriplaneUNet(tiny(), SQUARE)
    official = TriplaneUNet(tiny(attention_layout="official"), SQUARE)
    level_blocks = [m for m in [*official.down, *official.up] if isinstance(m, PlaneBlock)]
    assert level_blocks and all(b.attn is not None for b in level_blocks)  # joint attention after every block
    assert official.middle[1].attn is None
    # within-plane attention at factor 2: one block down, two up (num_res_blocks + 1), and the middle block
    assert sum(isinstance(m, PlaneAttention) for m in official.modules()) == 4
    assert sum(isinstance(m, PlaneAttention) for m in compact.modules()) == 0
    assert sum(p.numel() for p in official.parameters()) > sum(p.numel() for p in compact.parameters())
    z, t = torch.randn(2, *SQUARE.packed_shape), torch.tensor([3, 7])
    assert official(z, t).shape == z.shape


def test_attention_within_a_plane_never_mixes_planes() -> None:
    from pvdm.models.unet import PlaneAttention

    attn = randomized(PlaneAttention(channels=4, heads=2, groups=2))
    planes = [torch.randn(1, 4, 3, 5), torch.randn(1, 4, 2, 5), torch.randn(1, 4, 3, 2)]
    with torch.no_grad():
        base = attn(planes)
        moved = attn([planes[0] + 1.0, planes[1], planes[2]])
    assert (moved[0] - base[0]).abs().max() > 1e-3
    torch.testing.assert_close(moved[1], base[1])
    torch.testing.assert_close(moved[2], base[2])

"""The ADM-style frame UNet of VIDM's generators, with its ablation switches."""

from __future__ import annotations

import pytest
import torch

from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.families.vidm.frame_unet import FrameUNet, denoising_loss
from pvdm.families.vidm.parts import PosGN
from tests.pvdm.models.helpers import randomized

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = TriplaneUNetConfig(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2],
                         num_heads=2, norm_groups=4)  # fmt: skip


def test_a_fresh_frame_unet_predicts_zero_with_the_frame_shape() -> None:
    net = FrameUNet(CFG, in_channels=3, out_channels=3, size=(8, 8), truncation=True, posgn=True)
    x = torch.randn(2, 3, 8, 8)
    out = net(x, torch.tensor([5, 50]), torch.tensor([0, 3]))
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(out))
    assert sum(isinstance(m, PosGN) for m in net.modules()) == 8  # after every block: 2 down, 2 middle, 4 up


def test_the_frame_index_reaches_the_output_only_through_posgn() -> None:
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([20])
    for posgn in (False, True):
        net = randomized(FrameUNet(CFG, 3, 3, (8, 8), posgn=posgn))
        with torch.no_grad():
            moved = (net(x, t, torch.tensor([1])) - net(x, t, torch.tensor([9]))).abs().max()
        assert (moved > 1e-4) == posgn, (posgn, moved)


def test_the_content_generator_fits_a_few_frames_under_the_robustness_penalty() -> None:
    torch.manual_seed(0)
    net = FrameUNet(CFG, 3, 3, (8, 8), truncation=True)
    frames = torch.rand(4, 3, 8, 8) * 2 - 1
    betas = torch.linspace(1e-4, 0.02, 100)
    abar = torch.cumprod(1 - betas, 0)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(120):
        t = torch.randint(0, 100, (4,))
        noise = torch.randn_like(frames)
        a = abar[t].view(-1, 1, 1, 1)
        loss = denoising_loss(net(a.sqrt() * frames + (1 - a).sqrt() * noise, t), noise, robust=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    assert net.truncation.constant.grad is not None

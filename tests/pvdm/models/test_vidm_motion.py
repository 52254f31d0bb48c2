"""VIDM's motion generator (implicit condition, PosGN, feature residual as switches) and autoregressive sampling."""

from __future__ import annotations

import pytest
import torch

from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.families.vidm.frame_unet import FrameUNet, denoising_loss
from pvdm.families.vidm.motion import MotionGenerator
from pvdm.families.vidm.sampler import sample_video
from tests.pvdm.models.helpers import randomized

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = TriplaneUNetConfig(model_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[2],
                         num_heads=2, norm_groups=4)  # fmt: skip
SIZE = (8, 8)


def frames(batch: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.rand(batch, 3, *SIZE, generator=g) * 2 - 1 for _ in range(3))


def test_the_switches_remove_what_they_name() -> None:
    bare = MotionGenerator(CFG, 3, SIZE, implicit_condition=False, posgn=False, feature_residual=False)
    assert bare.flow is None and bare.base is None and bare.motion.posgn is None
    x, first, latest = frames()
    assert torch.equal(bare.condition(first, latest), torch.zeros(2, 2, *SIZE))
    full = MotionGenerator(CFG, 3, SIZE, flow_widths=[4, 8, 4])
    assert full.flow is not None and full.base is not None and full.motion.posgn is not None


def test_the_latest_frame_and_the_frame_index_reach_the_prediction() -> None:
    model = randomized(MotionGenerator(CFG, 3, SIZE, flow_widths=[4, 8, 4]))
    x, first, latest = frames()
    t, n = torch.tensor([10, 10]), torch.tensor([1, 1])
    base = model(x, t, n, first, latest)
    assert (model(x, t, n, first, latest.flip(-1)) - base).abs().max() > 1e-4
    assert (model(x, t, torch.tensor([5, 5]), first, latest) - base).abs().max() > 1e-4


def test_the_diffusion_loss_trains_spynet_jointly() -> None:
    model = MotionGenerator(CFG, 3, SIZE, flow_widths=[4, 8, 4])
    with torch.no_grad():  # fresh zero-initialised output layers would block every gradient on the first step
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x, first, latest = frames()
    loss = denoising_loss(
        model(x, torch.tensor([3, 40]), torch.tensor([1, 2]), first, latest), torch.randn_like(x), True
    )
    loss.backward()
    # 8x8 frames use SpyNet's two finest levels (a third would work at 2x2): each gets the diffusion gradient
    for level in model.flow.levels[:2]:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in level.parameters() if p.ndim > 1)


@pytest.mark.parametrize(("sampler", "length"), [("ddpm", 1), ("ddpm", 5), ("ddim", 3)])
def test_autoregressive_sampling_gives_videos_of_any_length(sampler: str, length: int) -> None:
    content = randomized(FrameUNet(CFG, 3, 3, SIZE, truncation=True))
    motion = randomized(MotionGenerator(CFG, 3, SIZE, flow_widths=[4, 8, 4]))
    schedule = NoiseSchedule.from_betas(torch.linspace(1e-4, 0.02, 50))
    video = sample_video(content, motion, schedule, (2, 3, *SIZE), length, steps=4,
                         generator=torch.Generator().manual_seed(0), sampler=sampler)  # fmt: skip
    assert video.shape == (2, 3, length, *SIZE) and video.abs().max() <= 1.0 + 1e-6
    again = sample_video(content, motion, schedule, (2, 3, *SIZE), length, steps=4,
                         generator=torch.Generator().manual_seed(0), sampler=sampler)  # fmt: skip
    torch.testing.assert_close(video, again)  # one seed, one video
    if length > 1:
        assert (video[:, :, 1:] - video[:, :, :1]).abs().max() > 1e-3  # later frames are sampled, not copies

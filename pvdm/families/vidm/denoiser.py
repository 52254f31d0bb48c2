"""The VIDM family (Mei and Patel, AAAI 2023): a content generator for frame 0 and a motion generator for each
next frame, in pixel space (the identity autoencoder).

The denoiser role holds both generators, so one checkpoint, one EMA and one optimizer cover them (and SpyNet,
inside the motion generator, which learns through the motion loss as the paper trains it). It owns its training
objective and draws its videos itself (Denoiser.training_loss, Denoiser.draws_videos):

    training_loss   content: the denoising loss of one random frame per clip;
                    motion: the denoising loss of frame n (random in 1..T-1) given frame 0 and frame n - 1;
                    each under the robustness penalty (Charbonnier) unless robust_loss is off
    draw_videos     frame 0 from the content generator, then frames 1, 2, ... autoregressively, any number

The latent store gives clips of `data.frames`; the (first, n - 1, n) triples are drawn inside those clips.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from pvdm.diffusion.objective import ObjectiveConfig, TrainingBatch, drop_labels, noised
from pvdm.diffusion.schedule import NoiseSchedule
from pvdm.families.errors import FamilyError
from pvdm.families.roles import Denoiser, LatentSpec, VideoDraw
from pvdm.families.vidm.config import VIDMConfig
from pvdm.families.vidm.frame_unet import FrameUNet, denoising_loss
from pvdm.families.vidm.motion import MotionGenerator
from pvdm.families.vidm.sampler import sample_video
from pvdm.hashing import sha256_file

log = logging.getLogger(__name__)


def _pick(count: int, low: int, high: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(low, high, (count,), generator=generator, device=generator.device).to(device)


class VIDMDenoiser(Denoiser):
    """Both VIDM generators behind the denoiser role. `forward` is one frame's eps: the content generator's when
    no first frame is given, the motion generator's otherwise."""

    draws_videos = True

    def __init__(self, cfg: VIDMConfig, spec: LatentSpec) -> None:
        super().__init__()
        if len(spec.shape) != 4 or not spec.layout.get("pixels"):
            raise FamilyError(
                f"vidm models pixel clips (3, T, H, W) from the identity autoencoder, not latents {spec.shape} "
                f"(layout {spec.layout})"
            )
        self.cfg, self._spec, self.num_classes = cfg, spec, cfg.num_classes
        channels, _, height, width = spec.shape
        unet = cfg.frame_unet()
        self.content = FrameUNet(unet, channels, channels, (height, width), truncation=cfg.truncation)
        self.motion = MotionGenerator(
            unet, channels, (height, width), implicit_condition=cfg.implicit_condition, posgn=cfg.posgn,
            feature_residual=cfg.feature_residual, flow_levels=cfg.flow.levels, flow_widths=cfg.flow.widths,
            flow_kernel=cfg.flow.kernel, max_frames=cfg.max_frames,
        )  # fmt: skip

    @property
    def latent_spec(self) -> LatentSpec:
        return self._spec

    def forward(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
        *,
        n: torch.Tensor | None = None,
        first: torch.Tensor | None = None,
        latest: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """eps of one frame z_t (B, C, H, W): frame 0 (first None) or frame n given `first` and `latest`."""
        del cond  # VIDM conditions on frames, not on a previous clip's latent
        if first is None:
            return self.content(z_t, t, None, label)
        if n is None or latest is None:
            raise ValueError("the motion generator needs n, first and latest")
        return self.motion(z_t, t, n, first, latest, None, label)

    def training_loss(
        self,
        batch: TrainingBatch,
        schedule: NoiseSchedule,
        cfg: ObjectiveConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        clips = batch.z  # (B, C, T, H, W) pixels in [-1, 1]
        b, frames = clips.shape[0], clips.shape[2]
        label = drop_labels(batch.label, cfg.label_drop_prob, generator)
        rows = torch.arange(b, device=clips.device)
        robust = self.cfg.robust_loss

        frame = clips[rows, :, _pick(b, 0, frames, generator, clips.device)]
        x_t, t, noise = noised(frame, schedule, generator)
        content = denoising_loss(self(x_t, t, label=label), noise, robust)

        n = _pick(b, 1, frames, generator, clips.device)
        x_t, t, noise = noised(clips[rows, :, n], schedule, generator)
        pred = self(x_t, t, label=label, n=n, first=clips[:, :, 0], latest=clips[rows, :, n - 1])
        motion = denoising_loss(pred, noise, robust)
        loss = content + self.cfg.motion_weight * motion
        return loss, {"content_loss": content.item(), "motion_loss": motion.item()}

    def draw_videos(self, n: int, frames: int, schedule: NoiseSchedule, draw: VideoDraw) -> torch.Tensor:
        channels, _, height, width = self._spec.shape
        return sample_video(
            self.content, self.motion, schedule, (n, channels, height, width), frames, steps=draw.steps,
            generator=draw.generator, sampler=draw.sampler, eta=draw.eta, label=draw.label,
            guidance=draw.guidance, x0_bound=draw.x0_bound, progress=draw.progress,
        )  # fmt: skip

    def prepare_training(self, root: Path) -> None:
        """Start SpyNet from `flow.weights` when the config names them (checked by SHA-256 first)."""
        path = self.cfg.flow.weights_path(root)
        if path is None:
            return
        if self.motion.flow is None:
            raise FamilyError(
                "diffusion.denoiser.flow.weights is set but implicit_condition is off: no SpyNet"
            )
        if not path.is_file():
            raise FamilyError(f"diffusion.denoiser.flow.weights: {path} does not exist")
        digest = sha256_file(path)
        if digest != self.cfg.flow.weights_sha256:
            raise FamilyError(
                f"diffusion.denoiser.flow.weights: {path} has SHA-256 {digest}, but flow.weights_sha256 is "
                f"{self.cfg.flow.weights_sha256}: not the file the params name"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.motion.flow.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise FamilyError(
                f"diffusion.denoiser.flow.weights: {path} is not a state dict of this SpyNet "
                f"(flow.levels {self.cfg.flow.levels}, widths {self.cfg.flow.widths}, kernel "
                f"{self.cfg.flow.kernel}): {str(err).splitlines()[0]}"
            ) from None
        log.info("SpyNet starts from %s (sha256 %s)", path, digest[:12])

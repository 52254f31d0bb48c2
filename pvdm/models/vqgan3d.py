"""A 3D-VQGAN (as in TATS, Ge et al. 2022): 3D convolutional encoder and decoder around an EMA vector quantizer.

encoder: video (B, 3, T, H, W) -> residual 3D conv levels, each ending in a stride-2 conv along the axes still to
         compress (time until T / temporal_downsample, space until H / spatial_downsample) -> z_e (B, D, T', H', W')
quantizer: each D-vector of z_e -> its nearest code of the codebook (K, D); the codebook follows the encoder
         outputs assigned to it by exponential moving averages (van den Oord et al. 2017, appendix), codes unused
         for a while are restarted on random encoder outputs (dead-code restart, as in TATS); the straight-through
         estimator passes the decoder's gradient to the encoder; commitment loss beta * |z_e - sg(z_q)|^2.
decoder: z_q -> mirrored levels with nearest upsampling -> video.

The diffusion model works on the continuous pre-quantisation latents z_e, normalised per channel by a running
mean and std kept in this model's buffers (so every consumer applies the same normalisation without plumbing);
`decode` undoes the normalisation and quantises to the nearest codes before decoding, so a sampled latent always
decodes as a code grid the decoder was trained on. Why continuous: the codes' indices have no metric a Gaussian
diffusion could use, and z_e is what the codebook was fitted to, so quantising a sample lands on valid codes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from pvdm.config.data import DataConfig
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.families.vqgan3d.config import VQGAN3DConfig


def norm3d(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock3D(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            norm3d(cin, groups), nn.SiLU(), nn.Conv3d(cin, cout, 3, padding=1),
            norm3d(cout, groups), nn.SiLU(), nn.Conv3d(cout, cout, 3, padding=1),
        )  # fmt: skip
        self.skip = nn.Identity() if cin == cout else nn.Conv3d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


def level_plan(cfg: VQGAN3DConfig) -> list[tuple[int, int, tuple[int, int, int]]]:
    """(channels in, channels out, stride) of each downsampling level: time is halved while it still has a
    factor of 2 to lose, space likewise."""
    t_levels, s_levels = int(math.log2(cfg.temporal_downsample)), int(math.log2(cfg.spatial_downsample))
    width = [
        cfg.channels * cfg.channel_mult[min(i, len(cfg.channel_mult) - 1)]
        for i in range(max(t_levels, s_levels) + 1)
    ]
    return [
        (
            width[i],
            width[i + 1],
            (2 if i < t_levels else 1, 2 if i < s_levels else 1, 2 if i < s_levels else 1),
        )
        for i in range(len(width) - 1)
    ]


class Encoder3D(nn.Module):
    def __init__(self, cfg: VQGAN3DConfig) -> None:
        super().__init__()
        plan, g = level_plan(cfg), cfg.norm_groups
        first = plan[0][0] if plan else cfg.channels
        layers: list[nn.Module] = [nn.Conv3d(3, first, 3, padding=1)]
        for cin, cout, stride in plan:
            layers += [ResBlock3D(cin, cin, g) for _ in range(cfg.num_res_blocks)]
            layers.append(nn.Conv3d(cin, cout, 3, stride=stride, padding=1))
        last = plan[-1][1] if plan else first
        layers += [
            ResBlock3D(last, last, g),
            norm3d(last, g),
            nn.SiLU(),
            nn.Conv3d(last, cfg.codebook_dim, 1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int, scale: tuple[int, int, int]) -> None:
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class Decoder3D(nn.Module):
    def __init__(self, cfg: VQGAN3DConfig) -> None:
        super().__init__()
        plan, g = level_plan(cfg), cfg.norm_groups
        last = plan[-1][1] if plan else cfg.channels
        layers: list[nn.Module] = [nn.Conv3d(cfg.codebook_dim, last, 3, padding=1), ResBlock3D(last, last, g)]
        for cin, cout, stride in reversed(plan):
            layers.append(Upsample(cout, cin, stride))
            layers += [ResBlock3D(cin, cin, g) for _ in range(cfg.num_res_blocks)]
        first = plan[0][0] if plan else last
        layers += [norm3d(first, g), nn.SiLU(), nn.Conv3d(first, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class EMAQuantizer(nn.Module):
    """Nearest-code quantisation with an EMA codebook and dead-code restart. All state is buffers, so a checkpoint
    resumes it exactly."""

    def __init__(self, codebook_size: int, dim: int, decay: float, dead_threshold: float, eps: float = 1e-5):
        super().__init__()
        self.size, self.dim, self.decay, self.dead_threshold, self.eps = (
            codebook_size,
            dim,
            decay,
            dead_threshold,
            eps,
        )
        self.register_buffer("codebook", torch.randn(codebook_size, dim))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("initialized", torch.tensor(False))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) index of the closest code (squared L2)."""
        dist = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(1)[None]
        )
        return dist.argmin(dim=1)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, T, H, W) -> the nearest codes, same shape (no gradient, no update): what `decode` uses."""
        flat = rearrange(z, "b d t h w -> (b t h w) d").float()
        q = self.codebook[self.nearest(flat)]
        b, _, t, h, w = z.shape
        return rearrange(q, "(b t h w) d -> b d t h w", b=b, t=t, h=h, w=w).to(z.dtype)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Training: (straight-through z_q, commitment MSE |z - sg(z_q)|^2, codebook statistics)."""
        b, _, t, h, w = z.shape
        flat = rearrange(z, "b d t h w -> (b t h w) d").float()
        if self.training and not bool(self.initialized):
            self._init_from(flat.detach())
        idx = self.nearest(flat.detach())
        counts = torch.bincount(idx, minlength=self.size).float()
        q = rearrange(self.codebook[idx], "(b t h w) d -> b d t h w", b=b, t=t, h=h, w=w)  # before the update
        if self.training:
            self._ema_update(flat.detach(), idx, counts)
        commitment = F.mse_loss(z.float(), q.detach())
        probs = counts / counts.sum()
        stats = {
            "perplexity": float(torch.exp(-(probs * torch.log(probs + 1e-10)).sum())),
            "codes_used": float((counts > 0).float().mean()),
        }
        return z + (q.to(z.dtype) - z).detach(), commitment, stats

    def _init_from(self, flat: torch.Tensor) -> None:
        """Codes start on random encoder outputs of the first batch (so none starts dead far from the data)."""
        rows = flat[torch.randint(0, flat.shape[0], (self.size,), device=flat.device)]
        self.codebook.copy_(rows)
        self.embed_sum.copy_(rows)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, flat)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n  # Laplace smoothing
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if bool(dead.any()):
            rows = flat[torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)]
            self.codebook[dead] = rows
            self.embed_sum[dead] = rows * self.dead_threshold
            self.cluster_size[dead] = self.dead_threshold


class VQGAN3D(VideoAutoencoder):
    """The autoencoder role of the 3D-VQGAN family: latents are the normalised pre-quantisation grid."""

    def __init__(self, cfg: VQGAN3DConfig, frames: int, resolution: int) -> None:
        super().__init__()
        cfg.check_data(resolution, frames)
        self.cfg, self.frames, self.resolution = cfg, frames, resolution
        self.encoder, self.decoder = Encoder3D(cfg), Decoder3D(cfg)
        self.quantizer = EMAQuantizer(
            cfg.codebook_size, cfg.codebook_dim, cfg.ema_decay, cfg.dead_code_threshold
        )
        self.register_buffer("latent_mean", torch.zeros(cfg.codebook_dim))
        self.register_buffer("latent_var", torch.ones(cfg.codebook_dim))
        self.register_buffer("stats_initialized", torch.tensor(False))

    @property
    def latent_spec(self) -> LatentSpec:
        return self.cfg.latent_spec(DataConfig(resolution=self.resolution, frames=self.frames))

    def _normalise(self, z_e: torch.Tensor) -> torch.Tensor:
        return (z_e - self.latent_mean[:, None, None, None]) / self.latent_var.add(1e-6).sqrt()[
            :, None, None, None
        ]

    def _denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return (
            z * self.latent_var.add(1e-6).sqrt()[:, None, None, None] + self.latent_mean[:, None, None, None]
        )

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> normalised pre-quantisation latents (B, D, T', H', W')."""
        return self._normalise(self.encoder(video))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation, snap to the nearest codes, decode."""
        return self.decoder(self.quantizer.quantize(self._denormalise(latent)))

    def forward(self, video: torch.Tensor, with_losses: bool = False):
        if with_losses:
            return self.reconstruct_for_training(video)
        return self.decoder(self.quantizer.quantize(self.encoder(video)))

    def reconstruct_for_training(
        self, video: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        z_e = self.encoder(video)
        if self.training:
            self._track_latent_stats(z_e.detach())
        z_q, commitment, stats = self.quantizer(z_e)
        losses = {"vq_commitment": self.cfg.commitment_weight * commitment}
        return self.decoder(z_q), losses, stats

    @torch.no_grad()
    def _track_latent_stats(self, z_e: torch.Tensor) -> None:
        flat = rearrange(z_e.float(), "b d t h w -> d (b t h w)")
        m = self.cfg.stats_momentum if bool(self.stats_initialized) else 1.0  # the first batch sets them
        self.stats_initialized.fill_(True)
        self.latent_mean.lerp_(flat.mean(dim=1), m)
        self.latent_var.lerp_(flat.var(dim=1, unbiased=False), m)

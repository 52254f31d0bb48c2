"""The `tats` layout of the vqgan3d family: TATS's 3D-VQGAN (Ge et al. 2022, github.com/songweige/TATS,
tats/tats_vqgan.py), written for pvdm with parameter and buffer names equal to the keys of TATS's state dict, so
`pvdm import --tats-vqgan` loads a released checkpoint strictly (pvdm.families.vqgan3d.importing).

What TATS computes, level by level (n levels = log2 of the most compressed axis's factor; h = `channels`):
  encoder: conv_first 3x3x3 (3 -> h); per level i a 4x4x4 conv `down` (h 2^i -> h 2^(i+1)), stride 2 along the axes
           that still have a factor of 2 to lose, else 1, then one residual block `res`; final_block norm + SiLU.
  pre_vq_conv 1x1x1 -> embedding_dim; codebook: nearest of n_codes embeddings (squared L2).
  post_vq_conv 1x1x1 -> h 2^n; decoder: final_block norm + SiLU first, per level a 4x4x4 transposed conv `up` with
           the same strides, two residual blocks `res1`, `res2`; conv_last 3x3x3 -> 3.
  Every conv pads its input "same" (total kernel - stride, the extra one before) with replicate padding, except
  the encoder's conv_first and `down` convs, which pad with `padding_type`. Residual blocks: norm, SiLU, conv, norm,
  SiLU, conv, plus the input. Norm: GroupNorm(32, eps 1e-6) or BatchNorm (TATS's SyncBatchNorm; eval statistics).

Value ranges: TATS works on videos in [-0.5, 0.5]; pvdm's clips are in [-1, 1]. `encode` halves its input and
`decode` doubles its output, so this module computes TATS's network on TATS's values inside pvdm's contract.

The diffusion latent is the quantised embedding grid z_q (what TATS's decoder reads: `decode(codes)` and the
reconstruction of `forward`), normalised per channel by the mean and variance of the code embeddings weighted by the
codebook's EMA usage counts `N` (what TATS's codebook tracked during training: how often each code was chosen).
Why z_q and not TATS's pre-quantisation output: the decoder was only ever trained on z_q, and its statistics come
exactly from the checkpoint (z_e's would need a pass over data the importer does not have). `decode` undoes the
normalisation and snaps to the nearest code, so a sampled latent decodes as a code grid, and an encoded latent
decodes to TATS's `decode(codes)`: the snap recovers each code, except where two codes lie closer together than the
latent store's float16 rounding (then it may pick the other, whose vector differs by less than that rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pvdm.config.data import DataConfig
from pvdm.families.roles import LatentSpec, VideoAutoencoder
from pvdm.families.vqgan3d.config import TATS_GROUPS, VQGAN3DConfig

TATS_SCALE = 2.0  # pvdm's [-1, 1] clips are TATS's [-0.5, 0.5] videos times 2
KERNEL = 4  # TATS's down / up convolutions


def silu(x: torch.Tensor) -> torch.Tensor:
    # TATS's own expression (not F.silu): the codes are an argmin, so the features should agree to the last bit.
    return x * torch.sigmoid(x)


def norm(channels: int, kind: str) -> nn.Module:
    if kind == "batch":  # SyncBatchNorm's keys and eval-mode arithmetic, without a process group
        return nn.BatchNorm3d(channels)
    return nn.GroupNorm(TATS_GROUPS, channels, eps=1e-6)


def same_padding(kernel: int, stride: tuple[int, int, int]) -> tuple[int, ...]:
    """F.pad's (last axis first) padding that keeps size / stride: kernel - stride per axis, the odd one before."""
    pads: tuple[int, ...] = ()
    for s in reversed(stride):
        total = kernel - s
        pads += (total // 2 + total % 2, total // 2)
    return pads


class PaddedConv3d(nn.Module):
    """A Conv3d on a "same"-padded input (TATS's SamePadConv3d: its weights live under `conv`)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: tuple[int, int, int] = (1, 1, 1),
        mode: str = "replicate",
    ) -> None:
        super().__init__()
        self.pad, self.mode = same_padding(kernel, stride), mode
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode=self.mode))


class PaddedConvTranspose3d(nn.Module):
    """A stride-s ConvTranspose3d (padding kernel - 1) on a replicate-padded input: s times the size (TATS's
    SamePadConvTranspose3d: its weights live under `convt`)."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.pad = same_padding(KERNEL, stride)
        self.convt = nn.ConvTranspose3d(cin, cout, KERNEL, stride=stride, padding=KERNEL - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convt(F.pad(x, self.pad, mode="replicate"))


class ResBlock(nn.Module):
    """norm, SiLU, 3x3x3 conv, norm, SiLU, 3x3x3 conv, plus the input (TATS's blocks keep their width)."""

    def __init__(self, channels: int, kind: str) -> None:
        super().__init__()
        self.norm1, self.norm2 = norm(channels, kind), norm(channels, kind)
        self.conv1, self.conv2 = PaddedConv3d(channels, channels, 3), PaddedConv3d(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(silu(self.norm1(x)))
        return x + self.conv2(silu(self.norm2(h)))


class NormSiLU(nn.Sequential):
    """TATS's `final_block`: Sequential(norm, SiLU); the norm's keys are `final_block.0.*`."""

    def __init__(self, channels: int, kind: str) -> None:
        super().__init__(norm(channels, kind), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return silu(self[0](x))


def strides(cfg: VQGAN3DConfig) -> list[tuple[int, int, int]]:
    """(time, height, width) stride of each level: 2 while the axis still has a factor of 2 to lose."""
    t, s = cfg.temporal_downsample.bit_length() - 1, cfg.spatial_downsample.bit_length() - 1
    return [(2 if i < t else 1, 2 if i < s else 1, 2 if i < s else 1) for i in range(cfg.levels)]


class EncoderLevel(nn.Module):
    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], cfg: VQGAN3DConfig) -> None:
        super().__init__()
        self.down = PaddedConv3d(cin, cout, KERNEL, stride, mode=cfg.tats.padding)
        self.res = ResBlock(cout, cfg.tats.norm)


class DecoderLevel(nn.Module):
    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], kind: str) -> None:
        super().__init__()
        self.up = PaddedConvTranspose3d(cin, cout, stride)
        self.res1, self.res2 = ResBlock(cout, kind), ResBlock(cout, kind)


class Encoder(nn.Module):
    def __init__(self, cfg: VQGAN3DConfig, image_channels: int = 3) -> None:
        super().__init__()
        h = cfg.channels
        self.conv_first = PaddedConv3d(image_channels, h, 3, mode=cfg.tats.padding)
        self.conv_blocks = nn.ModuleList(
            EncoderLevel(h * 2**i, h * 2 ** (i + 1), stride, cfg) for i, stride in enumerate(strides(cfg))
        )
        self.out_channels = h * 2**cfg.levels
        self.final_block = NormSiLU(self.out_channels, cfg.tats.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_first(x)
        for level in self.conv_blocks:
            h = level.res(level.down(h))
        return self.final_block(h)


class Decoder(nn.Module):
    def __init__(self, cfg: VQGAN3DConfig, image_channels: int = 3) -> None:
        super().__init__()
        h, n = cfg.channels, cfg.levels
        self.final_block = NormSiLU(h * 2**n, cfg.tats.norm)
        # Level i maps h 2^(n-i+1) (the first: h 2^n) to h 2^(n-i) channels.
        self.conv_blocks = nn.ModuleList(
            DecoderLevel(h * 2 ** min(n, n - i + 1), h * 2 ** (n - i), stride, cfg.tats.norm)
            for i, stride in enumerate(strides(cfg))
        )
        self.conv_last = PaddedConv3d(h * 2, image_channels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.final_block(z)
        for level in self.conv_blocks:
            h = level.res2(level.res1(level.up(h)))
        return self.conv_last(h)


class Codebook(nn.Module):
    """TATS's codebook state: `embeddings` (n_codes, dim), the EMA usage counts `N` and sums `z_avg` (kept so the
    checkpoint round-trips; only `embeddings` and `N` are read)."""

    def __init__(self, n_codes: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("embeddings", torch.randn(n_codes, dim))
        self.register_buffer("N", torch.zeros(n_codes))
        self.register_buffer("z_avg", torch.zeros(n_codes, dim))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, T, H, W) -> (B, T, H, W) index of the closest code, by TATS's expansion of the squared L2."""
        flat = z.movedim(1, -1).flatten(end_dim=-2)
        distances = (
            (flat**2).sum(dim=1, keepdim=True)
            - 2 * flat @ self.embeddings.t()
            + (self.embeddings.t() ** 2).sum(dim=0, keepdim=True)
        )
        return distances.argmin(dim=1).view(z.shape[0], *z.shape[2:])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) codes -> (B, D, T, H, W) embeddings."""
        return F.embedding(codes, self.embeddings).movedim(-1, 1).contiguous()  # the convs' usual layout

    def usage_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and variance of the embeddings, each code weighted by its EMA usage count (uniformly
        when the counts are all zero: a codebook that never trained)."""
        counts = self.N.clamp(min=0).float()
        weights = counts / counts.sum() if counts.sum() > 0 else torch.full_like(counts, 1 / counts.numel())
        mean = weights @ self.embeddings
        var = weights @ (self.embeddings - mean) ** 2
        return mean, var


class TATSVQGAN(VideoAutoencoder):
    """The vqgan3d autoencoder role with TATS's network (`layout: tats`); latents: normalised code embeddings."""

    def __init__(self, cfg: VQGAN3DConfig, frames: int, resolution: int) -> None:
        super().__init__()
        cfg.check_data(resolution, frames)
        self.cfg, self.frames, self.resolution = cfg, frames, resolution
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.pre_vq_conv = PaddedConv3d(self.encoder.out_channels, cfg.codebook_dim, 1, mode=cfg.tats.padding)
        self.post_vq_conv = PaddedConv3d(cfg.codebook_dim, self.encoder.out_channels, 1)
        self.codebook = Codebook(cfg.codebook_size, cfg.codebook_dim)

    @property
    def latent_spec(self) -> LatentSpec:
        return self.cfg.latent_spec(DataConfig(resolution=self.resolution, frames=self.frames))

    # --- TATS's computations (pvdm's value range at the boundary) -----------------------------------------------

    def pre_quantisation(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> TATS's z_e = pre_vq_conv(encoder(video / 2))."""
        return self.pre_vq_conv(self.encoder(video / TATS_SCALE))

    def codes(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, T', H', W') code indices: TATS's `encode(video / 2)`."""
        return self.codebook.nearest(self.pre_quantisation(video))

    def tats_encode(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """TATS's `encode(video / 2, include_embeddings=True)`: (embeddings (B, D, T', H', W'), codes). Its
        embeddings are the straight-through value z_e + (z_q - z_e), equal to the codes' vectors up to one rounding
        of z_e's size (what `encode`, the diffusion latent, uses)."""
        z_e = self.pre_quantisation(video)
        codes = self.codebook.nearest(z_e)
        return (self.codebook.lookup(codes) - z_e) + z_e, codes

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, T', H', W') codes -> (B, 3, T, H, W) about [-1, 1]: 2 x TATS's `decode(codes)`."""
        return self.decoder(self.post_vq_conv(self.codebook.lookup(codes))) * TATS_SCALE

    # --- the autoencoder role ---------------------------------------------------------------------------------------

    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.codebook.usage_statistics()
        return mean[:, None, None, None], var.add(1e-6).sqrt()[:, None, None, None]

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> the normalised embeddings of TATS's codes (B, D, T', H', W')."""
        mean, std = self._statistics()
        return (self.codebook.lookup(self.codes(video)) - mean) / std

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation, snap to the nearest codes, decode them as TATS does."""
        mean, std = self._statistics()
        return self.decode_codes(self.codebook.nearest(latent.float() * std + mean))

    def forward(self, video: torch.Tensor, with_losses: bool = False):
        """TATS's reconstruction (its `forward`), doubled; with_losses: reconstruct_for_training's triple."""
        if with_losses:
            return self.reconstruct_for_training(video)
        return self._straight_through(self.pre_quantisation(video))[0]

    def _straight_through(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, codes, z_q). The decoder reads z_e + (z_q - z_e) with the difference detached, as TATS's
        forward does: the gradient reaches the encoder, and the value is TATS's to the last bit (z_q itself can
        differ from it by a rounding, which the decoder amplifies)."""
        codes = self.codebook.nearest(z_e.detach())
        z_q = self.codebook.lookup(codes)
        recon = self.decoder(self.post_vq_conv((z_q - z_e).detach() + z_e)) * TATS_SCALE
        return recon, codes, z_q

    def reconstruct_for_training(
        self, video: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        """Fine-tuning: TATS's straight-through reconstruction and commitment loss; the imported codebook stays
        fixed (TATS's EMA update and code restarts are not reproduced)."""
        z_e = self.pre_quantisation(video)
        recon, codes, z_q = self._straight_through(z_e)
        losses = {"vq_commitment": self.cfg.commitment_weight * F.mse_loss(z_e, z_q)}
        counts = torch.bincount(codes.flatten(), minlength=self.cfg.codebook_size).float()
        probs = counts / counts.sum()
        stats = {
            "perplexity": float(torch.exp(-(probs * torch.log(probs + 1e-10)).sum())),
            "codes_used": float((counts > 0).float().mean()),
        }
        return recon, losses, stats

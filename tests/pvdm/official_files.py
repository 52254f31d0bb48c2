"""Files as the official PVDM trainer writes them, for tests that import through `pvdm import`.

The committed UNet fixture runs on the official code's hard-coded 32 x 32 planes (its `zeros` condition buffer
holds 2,048 positions), which no committed autoencoder fixture makes (they are 24 x 24 and 16 x 16 videos, to stay
small); so a pair that samples end to end pairs the official autoencoder fixture with a seeded official-layout
UNet at that autoencoder's latent size, saved under the official key names."""

from __future__ import annotations

from pathlib import Path

import torch

from pvdm.config.diffusion import DiffusionConfig
from pvdm.families.registry import build_denoiser
from pvdm.families.triplane.config import TriplaneUNetConfig
from pvdm.models.latent import LatentShape, triplane_spec

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official"
# pvdm_ae_small.pt: 24 x 24 x 16 videos at patch 8 -> 3 x 3 and 16 x 3 planes (one UNet level: 3 is odd)
PAIR_LATENT = LatentShape(4, 16, 3, 3)
PAIR_UNET = TriplaneUNetConfig(layout="official", model_channels=32, channel_mult=[1], num_res_blocks=1)


def official_file(folder: Path, state: dict, name: str = "ema_model_10000.pth") -> Path:
    """The state dict as the official trainer saves it (DiffusionWrapper's: keys `diffusion_model.*`)."""
    path = folder / name
    torch.save(state, path)
    return path


def as_official(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A pvdm official-layout UNet's tensors under the official names (the inverse of the import's renaming)."""
    names = {"embed.time.": "time_embed."}
    out = {}
    for key, value in model.state_dict().items():
        for new, old in names.items():
            key = old + key[len(new) :] if key.startswith(new) else key
        out["diffusion_model." + key] = value
    return out


def official_denoiser(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The official file of `model`, its float tensors nudged off their zero initialisation (so outputs vary)."""
    return {
        k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in as_official(model).items()
    }


def official_pair(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """model_last.pth (the official autoencoder fixture's weights) and ema_model_10000.pth (a seeded official UNet
    whose latents are that autoencoder's), written in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ae = torch.load(FIXTURES / "pvdm_ae_small.pt", weights_only=True)["state_dict"]
    ae_file = official_file(folder, {k: v.float() for k, v in ae.items()}, "model_last.pth")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    unet = build_denoiser(DiffusionConfig(denoiser=PAIR_UNET), triplane_spec(PAIR_LATENT))
    unet_file = official_file(folder, official_denoiser(unet))
    torch.random.set_rng_state(generator_state)
    return ae_file, unet_file

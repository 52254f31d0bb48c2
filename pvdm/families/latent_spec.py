"""`LatentSpec`: what one latent of a family is (see pvdm.families.roles, which re-exports it).

No torch at import: params validation reads latent specs (each family's config section computes the latents its
autoencoder makes), and the preprocess stage validates params without loading torch (seconds per stage process).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LatentSpec:
    """What one latent of a family is: enough to store it, clip it while sampling and draw a prior sample.

    shape: one latent without the batch axis, e.g. (C, L) packed triplanes or (3, T, H, W) pixels.
    bound: every value lies in [-bound, bound] (tanh latents, pixels: 1.0); None: unbounded.
    prior: what a latent drawn without any model looks like: 'uniform' in [-bound, bound] or 'normal' N(0, 1).
    codebook_size: for quantised latents (VQ), the number of codes; None otherwise.
    dtype: how the latent store keeps it ('float16' or 'float32').
    layout: family-specific facts a denoiser needs (the triplane's channels, frames, height, width).
    """

    shape: tuple[int, ...]
    bound: float | None = 1.0
    prior: Literal["uniform", "normal"] = "uniform"
    codebook_size: int | None = None
    dtype: str = "float16"
    layout: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prior == "uniform" and self.bound is None:
            raise ValueError("a uniform prior needs a bound")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    def prior_sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n latents (n, *shape) from the prior, on the generator's device: 'no model at all'."""
        import torch  # here, not at the top: see the module docstring

        size = (n, *self.shape)
        if self.prior == "normal":
            return torch.randn(size, generator=generator, device=generator.device)
        u = torch.rand(size, generator=generator, device=generator.device)
        return (u * 2 - 1) * self.bound

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentSpec:
        return cls(**{**data, "shape": tuple(data["shape"])})

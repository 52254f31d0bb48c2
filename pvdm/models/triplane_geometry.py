"""The triplane geometry: plane sizes of a clip's latents and their LatentSpec (see pvdm.models.latent).

No torch here: the PVDM family's config section computes the latents its autoencoder makes while params are
validated, which the preprocess stage does without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvdm.families.latent_spec import LatentSpec


@dataclass(frozen=True)
class LatentShape:
    channels: int
    frames: int
    height: int
    width: int

    @property
    def plane_shapes(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(rows, cols) of z_s, z_h, z_w."""
        return (self.height, self.width), (self.frames, self.width), (self.frames, self.height)

    @property
    def plane_sizes(self) -> tuple[int, int, int]:
        return tuple(r * c for r, c in self.plane_shapes)  # type: ignore[return-value]

    @property
    def length(self) -> int:
        """Number of latent positions (2,048 at the paper's 256x256x16, patch 8)."""
        return sum(self.plane_sizes)

    @property
    def packed_shape(self) -> tuple[int, int]:
        return self.channels, self.length


def triplane_spec(shape: LatentShape) -> LatentSpec:
    """The LatentSpec of packed triplanes: tanh-bounded, uniform prior, the plane geometry in `layout`."""
    layout = {
        "channels": shape.channels,
        "frames": shape.frames,
        "height": shape.height,
        "width": shape.width,
    }
    return LatentSpec(shape=shape.packed_shape, bound=1.0, prior="uniform", dtype="float16", layout=layout)


TRIPLANE_KEYS = ("channels", "frames", "height", "width")


def is_triplane(spec: LatentSpec) -> bool:
    """Whether a LatentSpec is packed triplanes whose layout matches its shape."""
    if not all(k in spec.layout for k in TRIPLANE_KEYS):
        return False
    return LatentShape(*(int(spec.layout[k]) for k in TRIPLANE_KEYS)).packed_shape == spec.shape


def triplane_shape(spec: LatentSpec) -> LatentShape:
    """The plane geometry of a triplane LatentSpec; a clear error for any other family's latents."""
    keys = TRIPLANE_KEYS
    if not all(k in spec.layout for k in keys):
        raise ValueError(
            f"expected triplane latents (layout with {', '.join(keys)}), got latents of shape {spec.shape} "
            f"with layout {spec.layout}: this denoiser belongs to the PVDM family"
        )
    shape = LatentShape(*(int(spec.layout[k]) for k in keys))
    if shape.packed_shape != spec.shape:
        raise ValueError(f"triplane layout {shape} does not match the latent shape {spec.shape}")
    return shape

"""The triplane latent layout and its packed form.

The autoencoder produces three planes for a clip of S frames at H x W pixels with patch size d:
    z_s: (B, C, H', W')   content plane, time projected out
    z_h: (B, C, S, W')    height projected out
    z_w: (B, C, S, H')    width projected out
with H' = H / d, W' = W / d. Storage and the diffusion process use one packed tensor
(B, C, L), L = H'W' + SW' + SH': noise is elementwise, so the process needs no plane structure.

The geometry (LatentShape, the LatentSpec of triplanes) is in pvdm.models.triplane_geometry, without torch, for
params validation; it is re-exported here.
"""

from __future__ import annotations

import torch
from einops import rearrange

from pvdm.models.triplane_geometry import (
    TRIPLANE_KEYS,
    LatentShape,
    is_triplane,
    triplane_shape,
    triplane_spec,
)

__all__ = [
    "TRIPLANE_KEYS",
    "LatentShape",
    "Planes",
    "is_triplane",
    "pack_planes",
    "triplane_shape",
    "triplane_spec",
    "unpack_planes",
]

Planes = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def pack_planes(planes: Planes) -> torch.Tensor:
    """(z_s, z_h, z_w) -> (B, C, L), planes flattened row-major and concatenated."""
    return torch.cat([rearrange(z, "b c r k -> b c (r k)") for z in planes], dim=-1)


def unpack_planes(z: torch.Tensor, shape: LatentShape) -> Planes:
    """(B, C, L) -> (z_s, z_h, z_w); inverse of pack_planes."""
    if z.shape[-2:] != shape.packed_shape:
        raise ValueError(
            f"packed latent has shape {tuple(z.shape)}, expected (B, {shape.channels}, {shape.length})"
        )
    flat = torch.split(z, list(shape.plane_sizes), dim=-1)
    return tuple(  # type: ignore[return-value]
        rearrange(f, "b c (r k) -> b c r k", r=r, k=k)
        for f, (r, k) in zip(flat, shape.plane_shapes, strict=True)
    )

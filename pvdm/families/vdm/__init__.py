"""The video diffusion model family (Ho et al. 2022): the factorised space-time 3D UNet denoiser `unet3d`.

With the identity autoencoder it is the pixel-space VDM baseline of the PVDM paper's Table 5 ("pixel VDM"); it also
models any (C, T, H, W) latent grid (the 3D-VQGAN family). Config section: `config.py`; network:
pvdm.models.unet3d (shared with the 3D-VQGAN family).
"""

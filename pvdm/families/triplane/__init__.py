"""The PVDM family (paper sections 3.1-3.2): the triplane autoencoder and the triplane UNet denoiser.

Config sections: `config.py`. Networks: the shared pvdm.models.autoencoder, .unet and .latent (VIDM's frame
UNets reuse the UNet's blocks). Samples with the shared samplers and Algorithm 1 (pvdm.diffusion).
"""

"""The 3D-VQGAN + VDM family: the 3D-VQGAN autoencoder (`vqgan3d`, TATS-style, EMA codebook) and the 3D UNet
denoiser (`unet3d`, pvdm.families.vdm), class-conditional with classifier-free guidance. Config section:
`config.py`; network: pvdm.models.vqgan3d.
"""

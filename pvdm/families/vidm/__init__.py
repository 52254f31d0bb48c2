"""The VIDM family (Mei and Patel, AAAI 2023), all in this folder: the config section (`config.py`), the denoiser
role holding both generators (`denoiser.py`), their networks (`frame_unet.py`: the content generator and the frame
UNet; `motion.py`: the motion generator; `parts.py`: PosGN, SpyNet, the truncation constant, the Charbonnier
penalty) and its frame-by-frame sampler (`sampler.py`). Pixel space: it pairs with the identity autoencoder.
"""

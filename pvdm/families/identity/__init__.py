"""The identity autoencoder: latent = the clip itself. The pixel-space families (pixel VDM, VIDM) use it.

Nothing to train, and nothing to cache: the latent store of an identity family points at the clip store.
"""

"""Model families: a video autoencoder and a denoiser behind two small interfaces (pvdm.families.roles).

`registry` builds and loads them from config and checkpoints; `triplane` (PVDM) and `identity` (pixel space) are
the families that ship. This package imports nothing heavy on its own: the registry loads the built-in families
the first time it is asked for one.
"""

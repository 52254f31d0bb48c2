"""The diffusion process on latents of any shape: `schedule`, `objective` (the training draw and PVDM's joint
cond/uncond loss), `samplers` (DDPM and DDIM with one signature, classifier-free guidance, a step callback) and
`long_video` (Algorithm 1). Nothing here imports a family's networks: a family that samples its own way keeps its
sampler in its folder (VIDM: pvdm/families/vidm/sampler.py). The package imports nothing itself, so a module
that needs the schedule alone does not load the samplers.
"""

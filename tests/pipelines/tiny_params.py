"""A params.yaml small enough to run the whole pipeline in a test on 2 CPU cores."""

from __future__ import annotations

TINY_PARAMS = {
    "data": {"resolution": 16, "frames": 16},
    "runtime": {"seed": 0, "device": "cpu", "precision": "fp32", "num_workers": 1},
    "preprocess": {"test_fraction": 0.2},
    "autoencoder": {
        "model": {"width": 16, "heads": 2, "patch_size": 4, "latent_channels": 2, "encoder_depth": 1,
                  "decoder_depth": 1, "projection_depth": 1},
        "loss": {"lpips_weight": 0.1},
        "train": {"steps": 12, "batch_size": 4, "lr": 0.001, "checkpoint_every": 6, "log_every": 3},
    },
    "diffusion": {
        "denoiser": {"model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [2],
                 "num_heads": 2, "norm_groups": 4},
        "process": {"timesteps": 100},
        "train": {"steps": 12, "batch_size": 8, "lr": 0.001, "checkpoint_every": 6, "log_every": 3, "ema_decay": 0.9,
                  "jitter_windows": 0},
    },
    "sample": {"steps": 4, "num_videos": 3, "num_long_videos": 2, "long_clips": 2, "batch_size": 3},
    "evaluate": {"real_split": "train", "fvd_num_real": 6, "fvd_num_fake": 3, "fvd_long_frames": 32,
                 "fvd_long_num": 2, "recon_num_clips": 3, "batch_size": 4},
}  # fmt: skip

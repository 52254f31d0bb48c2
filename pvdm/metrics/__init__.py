"""Evaluation metrics: FVD with the Kinetics-400 I3D, and PSNR / SSIM / LPIPS / R-FVD for the autoencoder."""

"""Video data: decoding, the synthetic dataset, preprocessing into a clip store, and reading it for training."""

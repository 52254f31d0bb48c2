"""Import a fixture written by bench/official_fixture_tats.py through `pvdm import --tats-vqgan` and print how far
pvdm's outputs are from the official ones (the check of other sizes than the test's, docs/official-weights.md).

    python -m bench.official_fixture_tats --official /path/to/TATS --out /tmp/tats_a --n-hiddens 16 ...
    python -m bench.check_tats_import /tmp/tats_a
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from click.testing import CliRunner

from pvdm.checkpoint import load_checkpoint
from pvdm.cli import main as pvdm_main
from pvdm.families.registry import load_autoencoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("fixture", type=Path, help="path without suffix: <fixture>.ckpt and <fixture>.pt")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as out:
        cli = ["import", "--tats-vqgan", str(args.fixture.with_suffix(".ckpt")), "--out", out]
        result = CliRunner().invoke(pvdm_main, cli)
        print(result.output.rstrip())
        if result.exit_code:
            raise SystemExit(result.exit_code)
        ae = load_autoencoder(load_checkpoint(Path(out) / "autoencoder.pt"))
    fx = torch.load(args.fixture.with_suffix(".pt"), weights_only=True)
    video = fx["input"].float() * 2  # TATS's [-0.5, 0.5] as pvdm's [-1, 1]
    with torch.no_grad():
        embeddings, codes = ae.tats_encode(video)  # TATS's encode(video / 2, include_embeddings=True)
        lookup = ae.codebook.lookup(codes)  # the codes' vectors: what the diffusion latent normalises
        recon = ae(video) / 2
        decoded = ae.decode_codes(fx["codes"]) / 2
        latent = ae.encode(video)
    equal = int((codes == fx["codes"]).sum())
    print(f"config {fx['config']}")
    print(
        f"codes equal {equal}/{codes.numel()} ({fx['codes'].unique().numel()} distinct); max |pvdm - official|: "
        f"embeddings {(embeddings - fx['embeddings']).abs().max().item():.3g} (the code vectors "
        f"{(lookup - fx['embeddings']).abs().max().item():.3g}), reconstruction (forward) "
        f"{(recon - fx['reconstruction']).abs().max().item():.3g}, decode(codes) "
        f"{(decoded - fx['decoded']).abs().max().item():.3g}; latent {tuple(latent.shape)} "
        f"mean {latent.mean().item():.3f} std {latent.std().item():.3f}"
    )


if __name__ == "__main__":
    main()

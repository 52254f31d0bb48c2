"""Peak memory of preprocessing a folder that holds one hostile video: does decoding stay bounded?

    uv run --frozen python -m bench.decode_bounds [--frames 4000] [--resolution 256]

The hostile file is the one of the hardening issue: a tiny mp4 (tens of KB) of thousands of solid frames with a
torn tail, which decord refuses mid-file and PyAV decodes. Beside it go five ordinary embedded-dataset videos.
The folder is preprocessed in a fresh process (`pvdm preprocess`'s code path, with its worker processes), and the
whole process tree's resident memory is sampled every 20 ms; the same is done for the five ordinary videos alone.
Printed: both peaks, their difference, and the file's size and fate in the report.

Memory held for one video is about one clip's span of decoded frames on either decoder (decord reads clip by
clip; the PyAV fallback decodes twice, first for timestamps, then streaming the frames the clips need), so the
hostile file must add little over the ordinary folder's peak; before streaming it added gigabytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import psutil

from pvdm.data.synthetic import generate_videos


def write_torn_solid_video(path: Path, frames: int = 4000, size: tuple[int, int] = (320, 240)) -> Path:
    """`frames` solid-colour frames (slowly changing hue) as h264 with the index first, the last fifth cut off."""
    import av

    whole = path.with_suffix(".whole.mp4")
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            level = 64 + (i // 50) % 128
            image = np.full((size[1], size[0], 3), (level, 255 - level, 128), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) * 4 // 5])
    return path


PREPROCESS = """
import json, sys
from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.preprocess import run_preprocess
report = run_preprocess(sys.argv[1], sys.argv[2], DataConfig(resolution=int(sys.argv[3]), frames=16),
                        PreprocessConfig(test_fraction=0.0, max_rejected_fraction=1.0), progress=False)
print(json.dumps({"processed": [v.source for v in report.processed], "rejected": report.rejected}))
"""


def peak_tree_rss(argv: list[str]) -> tuple[float, str]:
    """Run argv; (peak resident memory of its process tree in MB, its stdout)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.02)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"preprocess failed (exit {proc.returncode})")
    return peak / 2**20, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=4000, help="frames of the hostile video")
    parser.add_argument("--resolution", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ordinary, hostile = root / "ordinary", root / "hostile"
        generate_videos(ordinary, 5, size=64, frames=64, seed=0)
        generate_videos(hostile, 5, size=64, frames=64, seed=0)
        attack = write_torn_solid_video(hostile / "torn solid.mp4", args.frames)
        attack_bytes = attack.stat().st_size
        rows = {}
        for name, folder in (("ordinary", ordinary), ("with hostile", hostile)):
            argv = [
                sys.executable,
                "-c",
                PREPROCESS,
                str(folder),
                str(root / f"clips-{name}"),
                str(args.resolution),
            ]
            rows[name], out = peak_tree_rss(argv)
            print(f"{name:>13}: peak RSS of the process tree {rows[name]:7.0f} MB")
        fate = json.loads(out.strip().splitlines()[-1])
        reason = next((r["reason"] for r in fate["rejected"] if r["source"] == attack.name), "processed")
    print(f"hostile file: {attack_bytes} bytes, {args.frames} frames: {reason}")
    print(f"added by the hostile file: {rows['with hostile'] - rows['ordinary']:.0f} MB")


if __name__ == "__main__":
    main()

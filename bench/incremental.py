"""What a retrain with 10% new videos costs against a full run, for `preprocess` and `cache_latents`.

    uv run --frozen python -m bench.incremental --from-videos ../shared/data/videos   # 300 + 30 real-footage videos
    uv run --frozen python -m bench.incremental                      # 300 + 30 synthetic videos (cheap to decode)
    uv run --frozen python -m bench.incremental --videos 40 --size 64 --frames 128   # the old quick setting

Writes `--videos` + 10% videos, then times the stages on them. With `--from-videos DIR`, each is a distinct
UCF-101-sized excerpt (320x240, up to `--frames` frames, mp4) of the real videos under DIR: a random window, start
and mirroring, so decoding costs what real footage costs. Without it, synthetic videos (`--size` pixels square;
flat shapes, far cheaper to decode than footage). Videos are kept in `--videos-dir` when given. Then:

1. runs the `preprocess` stage script (`python -m pipelines.stages.preprocess`, what `dvc repro` runs) on the first
   `--videos` in a scratch project: the full cost;
2. adds the 10% and runs the stage again into the same clip store, as `dvc repro` does (data/clips is
   `persist: true`);
3. caches the latents of the first store with the demo autoencoder (params.yaml's, random weights), then of the
   second into the same latent store (data/latents is `persist: true`: rows of the same checkpoint are copied).

Every step runs in a fresh Python process, timed from outside, so the figures include what a DVC stage pays
besides the work itself (the interpreter, imports, MLflow's run and artifacts for the stage, great-expectations,
worker start-up). DVC's own bookkeeping is not included. Prints a table (wall and CPU seconds) and the two ratios
(incremental / full).

Figures (bench/README.md has the table): at 300 videos the preprocess stage takes 9.5 s full and 4.5 s with 30
new (0.48); at 1,000 videos 24.2 s and 6.3 s (0.26). About 3.3 s of a stage run is fixed, whatever the data:
importing great-expectations in the validation process (3 s of a core, needed to validate the new rows) and
MLflow with its SQLite store in the stage (2 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import yaml

from pvdm.data.synthetic import generate_videos
from pvdm.data.video import read_video, write_video

REPO = Path(__file__).resolve().parents[1]

CACHE = """
import hashlib, json, sys
import torch
from pvdm.config import DataConfig, load_params
from pvdm.data.latents import cache_latents
from pvdm.families.registry import build_autoencoder
clips, out, resolution, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
ae = build_autoencoder(load_params("params.yaml").autoencoder, DataConfig(resolution=resolution, frames=frames)).eval()
encoded = []
encode = ae.encode
ae.encode = lambda x: encoded.append(len(x)) or encode(x)
store = cache_latents(ae, clips, out, autoencoder_sha256=hashlib.sha256(b"bench").hexdigest(), progress=False,
                      device=torch.device("cpu"))
print(json.dumps({"rows": len(store), "encoded": sum(encoded)}))
"""


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of a fresh Python process running `command` from the repository, and its stdout.

    CPU: user + system time of the process (its rusage) and of its other descendants, sampled every 50 ms (the
    decode workers and the validation process are children of a forkserver, which rusage never sees; what they
    spend in their last 50 ms is missed, when they are idle, waiting to be shut down). Other loads of a shared
    machine disturb it less than the wall time."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *command], cwd=REPO, env=env, stdout=out, stderr=err, text=True
        )
        root, descendants, ended = psutil.Process(proc.pid), {}, []

        def wait() -> None:  # blocks until the process ends, so the wall time is not rounded to the sampling
            status, usage = os.wait4(proc.pid, 0)[1:]
            ended.append((time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage))

        waiter = threading.Thread(target=wait)
        waiter.start()
        while waiter.is_alive():
            with contextlib.suppress(psutil.Error):  # a process may exit between the listing and the read
                for p in root.children(recursive=True):
                    t = p.cpu_times()
                    descendants[(p.pid, p.create_time())] = t.user + t.system
            waiter.join(0.05)
        seconds, proc.returncode, usage = ended[0]
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise SystemExit(f"a timed step failed:\n{err.read()[-3000:]}")
        return seconds, usage.ru_utime + usage.ru_stime + sum(descendants.values()), out.read()


def scratch_project(root: Path, resolution: int, frames: int) -> dict[str, str]:
    """A project folder for the stage script (params.yaml with the clip size, data/raw, an MLflow store made
    beforehand so the first run does not pay for creating it); returns the stage's environment."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] |= {"resolution": resolution, "frames": frames}
    (root / "data" / "raw").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PVDM_ROOT": str(root), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    timed(["-c", "import mlflow; mlflow.search_experiments()"], env)
    return env


def preprocess(env: dict[str, str], clips: Path) -> tuple[float, float, dict]:
    seconds, cpu, _ = timed(["-m", "pipelines.stages.preprocess"], env)
    report = json.loads((clips / "report.json").read_text())
    return seconds, cpu, {"decoded": report["decoded"], "reused": report["reused"], **report["timings"]}


def cache(clips: Path, latents: Path, resolution: int, frames: int) -> tuple[float, float, dict]:
    seconds, cpu, out = timed(["-c", CACHE, str(clips), str(latents), str(resolution), str(frames)])
    return seconds, cpu, json.loads(out.strip().splitlines()[-1])


def videos(folder: Path, count: int, size: int, frames: int, footage: Path | None) -> list[Path]:
    """`count` distinct videos in `folder` (excerpts of `footage`, else synthetic), made only if the folder does
    not hold them yet."""
    found = sorted(folder.glob("*.mp4"))
    if len(found) != count:
        shutil.rmtree(folder, ignore_errors=True)
        if footage is None:
            found = generate_videos(folder, count, size=size, frames=frames, seed=0)
        else:
            found = excerpts(footage, folder, count, frames)
    return sorted(found)


def excerpts(
    footage: Path, folder: Path, count: int, frames: int, height: int = 240, width: int = 320
) -> list[Path]:
    """`count` distinct 320x240 excerpts of the videos under `footage`: random window, start and mirroring."""
    sources = [
        read_video(p) for p in sorted(footage.rglob("*")) if p.suffix.lower() in {".mp4", ".mkv", ".webm"}
    ]
    sources = [v for v in sources if v.shape[1] >= height and v.shape[2] >= width]
    if not sources:
        raise SystemExit(f"no video of at least {width}x{height} under {footage}")
    rng, paths = np.random.default_rng(0), []
    for k in range(count):
        video = sources[k % len(sources)]
        t = int(rng.integers(0, max(1, len(video) - frames // 2)))
        y, x = (int(rng.integers(0, video.shape[d] - n + 1)) for d, n in ((1, height), (2, width)))
        clip = video[t : t + frames, y : y + height, x : x + width]
        paths.append(
            write_video(folder / f"excerpt_{k:04d}.mp4", clip[:, :, ::-1] if k % 2 else clip, fps=30)
        )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=300, help="videos of the full run")
    parser.add_argument("--new", type=float, default=0.1, help="new videos, as a fraction of --videos")
    parser.add_argument("--size", type=int, default=160, help="video width = height (pixels)")
    parser.add_argument("--frames", type=int, default=150, help="frames per video")
    parser.add_argument("--resolution", type=int, default=32, help="data.resolution of the clips")
    parser.add_argument("--clip-frames", type=int, default=16, help="data.frames of the clips")
    parser.add_argument("--videos-dir", type=Path, help="keep the generated videos here (reused next time)")
    parser.add_argument(
        "--from-videos", type=Path, help="cut the videos from the real videos under this folder"
    )
    args = parser.parse_args()
    extra = max(1, round(args.videos * args.new))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = args.videos_dir or work / "all"
        kind = f"excerpts of {args.from_videos}" if args.from_videos else f"synthetic videos at {args.size}px"
        print(f"writing {args.videos + extra} {kind}, up to {args.frames} frames, into {source} ...")
        paths = videos(source, args.videos + extra, args.size, args.frames, args.from_videos)
        project = work / "project"
        env = scratch_project(project, args.resolution, args.clip_frames)
        raw, clips, latents = (project / "data" / name for name in ("raw", "clips", "latents"))
        for path in paths[: args.videos]:
            shutil.copy(path, raw / path.name)
        shape = (args.resolution, args.clip_frames)
        rows = [("preprocess, full", *preprocess(env, clips))]
        rows.append(("cache_latents, full", *cache(clips, latents, *shape)))
        for path in paths[args.videos :]:
            shutil.copy(path, raw / path.name)
        rows.append(("preprocess, +new", *preprocess(env, clips)))
        rows.append(("cache_latents, +new", *cache(clips, latents, *shape)))
    print(
        f"\n{args.videos} videos + {extra} new ({extra / args.videos:.0%}): {kind}, up to {args.frames} frames"
    )
    print("| step | wall s | CPU s | detail |\n|---|---|---|---|")
    for name, seconds, cpu, detail in rows:
        shown = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in detail.items())
        print(f"| {name} | {seconds:.1f} | {cpu:.1f} | {shown} |")
    for stage, full, more in (("preprocess", rows[0], rows[2]), ("cache_latents", rows[1], rows[3])):
        print(f"{stage}: incremental / full = {more[1] / full[1]:.2f} wall, {more[2] / full[2]:.2f} CPU")


if __name__ == "__main__":
    main()

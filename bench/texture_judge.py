"""A judge of the embedded dataset's two classes (striped or checkered objects) that never saw the clips it judges.

The I3D nearest-centroid judge separates the demo's classes poorly at 32 x 32 (0.71 on real held-out clips), and a
small CNN trained on the demo's own 27 train videos learnt their scenes, not the textures (0.36). The class is a
texture, and the embedded dataset has a generator, so this judge learns the texture from many freshly rendered
videos instead: 1,024 videos of `pvdm.data.synthetic` with a seed the demo never uses, written to mp4 and cut by the
real preprocess stage (the same codec and scaler as the demo's clips), then a small frame CNN trained on every 4th
frame (about 4 minutes on 2 CPU cores). It is not the generator under test, and it shares nothing with it but the
data's definition. Measured with `python -m bench.texture_judge data/compare/clips`: 0.98 on 128 held-out rendered
clips and 0.97 on the 128 clips of the demo's real store, none of which it saw (with 256 training videos and a
mean-pooled head it scored 0.58 and 0.54: it learnt scenes).

Only for clip stores whose classes are the embedded dataset's (`stripes`, `checkers`); any other labelled dataset
uses the I3D judge of `bench.guidance`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pvdm.config.data import DataConfig
from pvdm.config.preprocess import PreprocessConfig
from pvdm.data.clips import ClipStore
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import CLASS_FOLDERS, generate_videos

CLASSES = frozenset(CLASS_FOLDERS.values())  # the label names preprocess records: stripes, checkers
JUDGE_SEED = 7_000_003  # far from the demo's seed 0 and any test's, so no judge video is a demo video
HELD_OUT_SEED = 99_991  # rendered videos the judge is scored on, not trained on


def render_training_clips(
    videos: int, resolution: int, frames: int, workdir: Path, seed: int = JUDGE_SEED
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Clips (N, T, H, W, 3) uint8 and labels of `videos` fresh embedded-dataset videos, through the real
    preprocess stage at the judged store's geometry. Each video yields two clips."""
    generate_videos(workdir / "raw", videos, size=64, frames=2 * frames, seed=seed, classes=True)
    run_preprocess(
        workdir / "raw",
        workdir / "clips",
        DataConfig(resolution=resolution, frames=frames),
        PreprocessConfig(labels="folder", test_fraction=0.0, workers=1),
        progress=False,
    )
    store = ClipStore(workdir / "clips")
    clips = np.stack([np.asarray(store[i]) for i in range(len(store))])
    return clips, store.labels(), store.label_names


class FrameTextureNet(nn.Module):
    """Frames (B, 3, H, W) in [-1, 1] -> class logits; global pooling, so any resolution works."""

    def __init__(self, classes: int, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())

        self.features = nn.Sequential(
            block(3, width, 1),
            block(width, width, 1),
            block(width, 2 * width, 2),
            block(2 * width, 4 * width, 2),
        )
        self.head = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Max over positions: a texture is present where an object is, however small; a mean would be mostly
        # background, which says nothing about the class.
        return self.head(self.features(x).amax(dim=(2, 3)))


def _frames_tensor(clips: np.ndarray) -> torch.Tensor:
    """(N, T, H, W, 3) uint8 -> (N * T, 3, H, W) float in [-1, 1]."""
    x = torch.from_numpy(clips.reshape(-1, *clips.shape[2:])).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips, quarter turns and colour-channel orders: none of them changes stripes into checks or back."""
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
    x = torch.rot90(x, int(torch.randint(4, (), generator=gen)), dims=(-2, -1))
    return x[:, torch.randperm(3, generator=gen)]


class TextureJudge:
    def __init__(self, net: FrameTextureNet) -> None:
        self.net = net.eval()

    @torch.no_grad()
    def predict(self, clips: Iterable[np.ndarray]) -> np.ndarray:
        """Class per clip: the argmax of its frames' mean logits."""
        out = []
        for clip in clips:
            logits = self.net(_frames_tensor(np.asarray(clip)[None]))
            out.append(int(logits.mean(0).argmax()))
        return np.array(out)


def train_judge(
    resolution: int,
    frames: int,
    *,
    videos: int = 1024,
    frame_step: int = 4,
    steps: int = 1500,
    batch: int = 128,
    seed: int = 0,
) -> tuple[TextureJudge, list[str]]:
    """Render `videos` fresh videos, cut them like the demo's, and train the frame CNN on every `frame_step`-th
    frame. Many scenes matter more than many frames of a scene: with 256 videos the CNN learnt their scenes."""
    with tempfile.TemporaryDirectory(prefix="pvdm-judge-") as tmp:
        clips, labels, names = render_training_clips(videos, resolution, frames, Path(tmp))
    clips = np.ascontiguousarray(clips[:, ::frame_step])
    if set(names) != CLASSES:
        raise RuntimeError(
            f"expected the embedded dataset's classes {CLASSES}, the rendered store has {names}"
        )
    x = _frames_tensor(clips)
    y = torch.from_numpy(np.repeat(labels, clips.shape[1])).long()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = FrameTextureNet(len(names))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        loss = nn.functional.cross_entropy(net(_augment(x[idx], gen)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return TextureJudge(net), names


def main() -> None:
    """Train the judge, then score it on rendered videos it did not see and on a real clip store:
    `python -m bench.texture_judge [CLIPS]` (default data/clips)."""
    import sys
    import time

    store = ClipStore(sys.argv[1] if len(sys.argv) > 1 else "data/clips")
    resolution = int(store[0].shape[1])
    start = time.perf_counter()
    judge, names = train_judge(resolution, store.frames)
    print(f"trained in {time.perf_counter() - start:.0f} s on fresh videos; classes {names}")
    with tempfile.TemporaryDirectory(prefix="pvdm-judge-") as tmp:
        held, held_labels, _ = render_training_clips(64, resolution, store.frames, Path(tmp), HELD_OUT_SEED)
    print(
        f"accuracy on {len(held)} held-out rendered clips: {(judge.predict(held) == held_labels).mean():.3f}"
    )
    pred = judge.predict(store[i] for i in range(len(store)))
    truth = store.labels()
    print(f"accuracy on all {len(store)} real clips (none seen in training): {(pred == truth).mean():.3f}")
    for k, name in enumerate(names):
        print(f"  {name}: {(pred[truth == k] == k).mean():.3f} of {(truth == k).sum()}")


if __name__ == "__main__":
    main()

"""Does class guidance work? Sample each class with `--class`-style labels and judge the samples with a classifier
that is not the generator.

    uv run --frozen python -m bench.guidance --models data/compare/3D-VQGAN___VDM-<key> --clips data/compare/clips \
        --judge texture
    uv run --frozen python -m bench.guidance --autoencoder data/models/autoencoder.pt --diffusion data/models/diffusion.pt

`--models` is a folder with autoencoder/ and diffusion/ checkpoint folders (what `pvdm compare` keeps per family).
Two judges:
- `i3d` (any labelled dataset): nearest class centroid of I3D (Kinetics-400) features of the store's train clips,
  scored on the held-out clips (test split, or train when there is none). Weak on the demo's 32 x 32 clips (0.71).
- `texture` (the embedded dataset's stripes/checkers only): a frame CNN trained on freshly rendered videos of the
  dataset's generator, cut by the real preprocess stage (bench.texture_judge), scored on every real clip.
The judge's accuracy on real clips is printed first, then on the autoencoder's reconstructions of the same
clips (samples can show a class no better than the decoder does), so the samples' accuracy can be read against both. Then, for each
guidance weight, the share of samples classified as the class they were sampled for (chance: 1 / classes).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config.sample import SampleConfig
from pvdm.data.clips import ClipStore, from_model_tensor
from pvdm.evaluation import reconstruct
from pvdm.families.registry import check_pair, load_autoencoder, load_diffusion
from pvdm.metrics.features import I3DFeatureExtractor
from pvdm.sampling import VideoModel, make_generator, sample_clips


def load_model(args: argparse.Namespace) -> VideoModel:
    ae_path = args.autoencoder or latest_checkpoint(args.models / "autoencoder")
    diff_path = args.diffusion or latest_checkpoint(args.models / "diffusion")
    ae = load_autoencoder(load_checkpoint(ae_path)) if ae_path else None
    if ae is None:  # an identity autoencoder has no checkpoint folder in a comparison
        raise SystemExit("no autoencoder checkpoint found: give --autoencoder")
    diffusion = load_diffusion(load_checkpoint(diff_path))
    check_pair(ae, diffusion, (str(ae_path), str(diff_path)))
    return VideoModel(ae, diffusion, torch.device("cpu"))


def reconstructions(model: VideoModel, store: ClipStore, indices: list[int]) -> Iterator[np.ndarray]:
    """Real clips through the autoencoder and back: what its decoder keeps of a class bounds what samples show."""
    clips = [np.asarray(store[i]) for i in indices]
    for _, batch in reconstruct(model.autoencoder, clips, batch_size=8, device=model.device):
        yield from (from_model_tensor(video) for video in batch)


def centroids(features: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    return np.stack([features[labels == k].mean(axis=0) for k in range(classes)])


def classify(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return np.argmin(((features[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)


class I3DCentroidJudge:
    """Nearest class centroid of I3D features; centroids from the store's train clips, scored on the held-out ones."""

    def __init__(self, store: ClipStore, classes: int) -> None:
        self.extractor = I3DFeatureExtractor(batch_size=8)
        train = store.indices("train")
        held = store.indices("test") or train
        real = self.extractor.extract(np.asarray(store[i]) for i in train)
        self.centers = centroids(real, store.labels()[train], classes)
        self.scored = held
        self.real_accuracy = float((self.predict(store[i] for i in held) == store.labels()[held]).mean())
        self.description = f"I3D nearest centroid, scored on {len(held)} real held-out clips"

    def predict(self, clips: Iterable[np.ndarray]) -> np.ndarray:
        return classify(self.extractor.extract(np.asarray(c) for c in clips), self.centers)


class RenderedTextureJudge:
    """bench.texture_judge: a frame CNN trained on freshly rendered embedded-dataset videos, scored on every real
    clip of the store (it saw none of them)."""

    def __init__(self, store: ClipStore, names: list[str]) -> None:
        from bench.texture_judge import CLASSES, train_judge

        if set(names) != CLASSES:
            raise SystemExit(
                f"--judge texture needs the embedded dataset's classes {sorted(CLASSES)}; the model has {names}"
            )
        self.judge, judge_names = train_judge(int(store[0].shape[1]), store.frames)
        self.to_model_label = np.array([names.index(n) for n in judge_names])  # judge's class id -> model's
        self.scored = list(range(len(store)))
        self.real_accuracy = float((self.predict(store[i] for i in self.scored) == store.labels()).mean())
        self.description = f"texture CNN on rendered videos, scored on all {len(store)} real clips"

    def predict(self, clips: Iterable[np.ndarray]) -> np.ndarray:
        return self.to_model_label[self.judge.predict(clips)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, help="a folder with autoencoder/ and diffusion/ checkpoints")
    parser.add_argument("--autoencoder", type=Path)
    parser.add_argument("--diffusion", type=Path)
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--per-class", type=int, default=16, help="samples per class and guidance weight")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--judge",
        choices=["i3d", "texture"],
        default="i3d",
        help="i3d: nearest centroid of I3D features of the store's train clips (any labelled data); texture: a frame "
        "CNN trained on freshly rendered videos of the embedded dataset (bench.texture_judge; its two classes only)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = load_model(args)
    names, classes = model.diffusion.label_names, model.diffusion.model.num_classes
    if not classes:
        raise SystemExit("the model is unconditional: nothing to guide")
    store = ClipStore(args.clips)
    if args.judge == "texture":
        judge = RenderedTextureJudge(store, names)
    else:
        judge = I3DCentroidJudge(store, classes)
    print(f"classes: {names}; judge: {judge.description}: accuracy {judge.real_accuracy:.2f}")
    recon = judge.predict(reconstructions(model, store, judge.scored)) == store.labels()[judge.scored]
    print(
        f"judge on the autoencoder's reconstructions of the same clips (the samples' ceiling): {recon.mean():.2f}"
    )

    results = {
        "classes": names,
        "judge": judge.description,
        "classifier_accuracy_real": judge.real_accuracy,
        "classifier_accuracy_reconstructions": float(recon.mean()),
        "chance": 1 / classes,
        "by_guidance": {},
    }
    print(f"{'guidance':>8} {'accuracy':>9}   per class")
    for w in args.guidance:
        cfg = SampleConfig(steps=args.steps, guidance=w, batch_size=args.per_class, seed=0)
        labels = torch.arange(classes).repeat_interleave(args.per_class)
        videos = sample_clips(model, len(labels), cfg, make_generator(model.device, 0), labels)
        pred = judge.predict(from_model_tensor(v) for v in videos)
        hits = pred == labels.numpy()
        per_class = {
            names[k] if names else k: float(hits[labels.numpy() == k].mean()) for k in range(classes)
        }
        results["by_guidance"][str(w)] = {"accuracy": float(hits.mean()), "per_class": per_class}
        print(f"{w:>8g} {hits.mean():>9.2f}   {per_class}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

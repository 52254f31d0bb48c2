"""Does class guidance work? Sample each class with `--class`-style labels and judge the samples with a classifier
that is not the generator: nearest class centroid of I3D (Kinetics-400) features of real clips.

    uv run --frozen python -m bench.guidance --models data/compare/3D-VQGAN_+_VDM-<key> --clips data/compare/clips
    uv run --frozen python -m bench.guidance --autoencoder data/models/autoencoder.pt --diffusion data/models/diffusion.pt

`--models` is a folder with autoencoder/ and diffusion/ checkpoint folders (what `pvdm compare` keeps per family).
The classifier's centroids come from the clip store's train clips; its accuracy on the held-out clips (test split,
or train when there is none) is printed first, so the samples' accuracy can be read against it. Then, for each
guidance weight, the share of samples classified as the class they were sampled for (chance: 1 / classes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pvdm.checkpoint import latest_checkpoint, load_checkpoint
from pvdm.config.sample import SampleConfig
from pvdm.data.clips import ClipStore, from_model_tensor
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


def centroids(features: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    return np.stack([features[labels == k].mean(axis=0) for k in range(classes)])


def classify(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return np.argmin(((features[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)


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
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = load_model(args)
    names, classes = model.diffusion.label_names, model.diffusion.model.num_classes
    if not classes:
        raise SystemExit("the model is unconditional: nothing to guide")
    store = ClipStore(args.clips)
    extractor = I3DFeatureExtractor(batch_size=8)
    train = store.indices("train")
    held = store.indices("test") or train
    real = extractor.extract(np.asarray(store[i]) for i in train)
    centers = centroids(real, store.labels()[train], classes)
    held_pred = classify(extractor.extract(np.asarray(store[i]) for i in held), centers)
    held_acc = float((held_pred == store.labels()[held]).mean())
    print(f"classes: {names}; nearest-centroid accuracy on {len(held)} real held-out clips: {held_acc:.2f}")

    results = {
        "classes": names,
        "classifier_accuracy_real": held_acc,
        "chance": 1 / classes,
        "by_guidance": {},
    }
    print(f"{'guidance':>8} {'accuracy':>9}   per class")
    for w in args.guidance:
        cfg = SampleConfig(steps=args.steps, guidance=w, batch_size=args.per_class, seed=0)
        labels = torch.arange(classes).repeat_interleave(args.per_class)
        videos = sample_clips(model, len(labels), cfg, make_generator(model.device, 0), labels)
        pred = classify(extractor.extract(from_model_tensor(v) for v in videos), centers)
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

"""Class labels from folders or a class-index file, through preprocess into the clip store."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data.clips import ClipStore
from pvdm.data.labels import LabelError, assign_labels, class_folder, read_class_index
from pvdm.data.preprocess import run_preprocess
from pvdm.data.synthetic import generate_videos


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup"),
        ("train/Biking/a.mp4", "Biking"),
        ("Biking/test/a.mp4", "Biking"),  # split folders are never classes
        ("val/a.mp4", None),
        ("a.mp4", None),
    ],
)
def test_the_class_is_the_nearest_folder_that_is_not_a_split(source: str, expected: str | None) -> None:
    assert class_folder(source) == expected


def test_folder_labels_are_sorted_names_and_videos_outside_a_class_are_unlabelled(tmp_path: Path) -> None:
    names, labels = assign_labels(["b/x.mp4", "a/y.mp4", "train/b/z.mp4", "loose.mp4"], "folder", tmp_path)
    assert names == ["a", "b"]
    assert labels == {"b/x.mp4": 1, "a/y.mp4": 0, "train/b/z.mp4": 1, "loose.mp4": -1}
    assert assign_labels(["a/y.mp4"], "none", tmp_path) == ([], {"a/y.mp4": -1})


def test_class_index_file_like_ucf101(tmp_path: Path) -> None:
    (tmp_path / "classInd.txt").write_text("1 Biking\n2 ApplyEyeMakeup\n\n")
    names, labels = assign_labels(["ApplyEyeMakeup/a.avi", "Diving/b.avi"], "file", tmp_path, "classInd.txt")
    assert names == ["Biking", "ApplyEyeMakeup"]  # the file's order, not sorted
    assert labels == {"ApplyEyeMakeup/a.avi": 1, "Diving/b.avi": -1}  # a class the file does not name
    (tmp_path / "bad.txt").write_text("1 Biking\n2 Apply Eye\n")
    with pytest.raises(LabelError, match=r"bad.txt:2: expected '<index> <name>'"):
        read_class_index(tmp_path / "bad.txt")
    with pytest.raises(LabelError, match="outside the raw folder"):
        assign_labels(["a/b.avi"], "file", tmp_path / "raw", "../classInd.txt")
    with pytest.raises(LabelError, match="class_file is not set"):
        assign_labels(["a/b.avi"], "file", tmp_path)


def test_preprocess_writes_labels_into_the_clip_store(tmp_path: Path) -> None:
    generate_videos(tmp_path / "raw", 4, size=16, frames=16, fps=8, seed=0, classes=True)
    cfg = PreprocessConfig(labels="folder", test_fraction=0.0, workers=1)
    run_preprocess(
        tmp_path / "raw", tmp_path / "clips", DataConfig(resolution=16, frames=8), cfg, progress=False
    )
    store = ClipStore(tmp_path / "clips")
    assert store.label_names == ["checkers", "stripes"]
    by_source = dict(zip(store.manifest["source"], store.labels(), strict=True))
    assert by_source == {"checkers/synth_0001.mp4": 0, "checkers/synth_0003.mp4": 0,
                         "stripes/synth_0000.mp4": 1, "stripes/synth_0002.mp4": 1}  # fmt: skip


def test_the_datasets_own_train_and_test_folders_decide_the_split(tmp_path: Path) -> None:
    """SkyTimelapse / StyleGAN-V layout: raw/train/<class>/... and raw/val/<class>/...; both classes and splits."""
    generate_videos(tmp_path / "gen", 4, size=16, frames=16, fps=8, seed=0, classes=True)
    for path in sorted((tmp_path / "gen").rglob("*.mp4")):
        split = "val" if path.stem.endswith(("2", "3")) else "train"
        target = tmp_path / "raw" / split / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    cfg = PreprocessConfig(labels="folder", workers=1, test_fraction=0.5)
    report = run_preprocess(tmp_path / "raw", tmp_path / "clips", DataConfig(resolution=16, frames=8), cfg,
                            progress=False)  # fmt: skip
    store = ClipStore(tmp_path / "clips")
    split_of = dict(zip(store.manifest["source"], store.manifest["split"], strict=True))
    assert split_of == {"train/checkers/synth_0001.mp4": "train", "train/stripes/synth_0000.mp4": "train",
                        "val/checkers/synth_0003.mp4": "test", "val/stripes/synth_0002.mp4": "test"}  # fmt: skip
    (source,) = set(store.manifest["split_source"])  # the rule, then the evaluation set it recorded
    assert source.startswith("folders (train/ and val|test/); evaluation set 1 (")
    assert "Split from: folders" in report.summary() and store.label_names == ["checkers", "stripes"]


def test_a_split_list_outside_the_raw_folder_needs_the_explicit_flag(tmp_path: Path) -> None:
    generate_videos(tmp_path / "raw", 2, size=16, frames=16, fps=8, seed=0)
    outside = tmp_path / "testlist.txt"
    outside.write_text("synth_0000.mp4\n")
    data = DataConfig(resolution=16, frames=8)
    for name in (str(outside), "../testlist.txt", "/proc/self/environ"):
        with pytest.raises(FileNotFoundError, match="outside the raw folder"):
            run_preprocess(tmp_path / "raw", tmp_path / "clips", data, PreprocessConfig(test_list=name, workers=1),
                           progress=False)  # fmt: skip
    cfg = PreprocessConfig(test_list=str(outside), allow_outside_paths=True, workers=1)
    run_preprocess(tmp_path / "raw", tmp_path / "clips", data, cfg, progress=False)
    assert ClipStore(tmp_path / "clips").indices("test")

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
    run_preprocess(tmp_path / "raw", tmp_path / "clips", DataConfig(resolution=16, frames=8), cfg, progress=False)
    store = ClipStore(tmp_path / "clips")
    assert store.label_names == ["checkers", "stripes"]
    by_source = dict(zip(store.manifest["source"], store.labels(), strict=True))
    assert by_source == {"checkers/synth_0001.mp4": 0, "checkers/synth_0003.mp4": 0,
                         "stripes/synth_0000.mp4": 1, "stripes/synth_0002.mp4": 1}  # fmt: skip

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pvdm.config import DataConfig, PreprocessConfig
from pvdm.data import preprocess as pp
from pvdm.data.clips import ClipStore
from pvdm.data.preprocess import PreprocessError, run_preprocess
from pvdm.data.report import PreprocessReport
from pvdm.data.sources import listed_split, seeded_split
from pvdm.data.validation import ValidationResult, validate_store
from tests.pvdm.data import corpus
from tests.pvdm.data.conftest import TINY

LENIENT = PreprocessConfig(max_rejected_fraction=0.6, workers=2)


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, PreprocessReport]:
    raw = corpus.build(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("corpus_store")
    return raw, out, run_preprocess(raw, out, TINY, LENIENT, progress=False)


def test_every_junk_file_is_rejected_with_its_reason(bad_corpus: tuple[Path, Path, PreprocessReport]) -> None:
    _, out, report = bad_corpus
    reasons = {r["source"]: r["reason"] for r in report.rejected}
    assert set(reasons) == set(corpus.JUNK)
    for name, phrase in corpus.JUNK.items():
        assert phrase in reasons[name], (name, reasons[name])
    summary = (out / "report.md").read_text()
    assert all(f"`{name}`: {reasons[name]}" in summary for name in corpus.JUNK)
    assert [i["source"] for i in report.ignored] == corpus.IGNORED


def test_every_good_file_gives_its_clips_and_adjustments_are_noted(
    bad_corpus: tuple[Path, Path, PreprocessReport],
) -> None:
    _, out, report = bad_corpus
    processed = {v.source: v for v in report.processed}
    pair = {"plain.mp4", "copy of plain.mp4"}
    (dup,) = report.duplicates
    assert {dup["source"], dup["duplicate_of"]} == pair and dup["duplicate_of"] in processed
    assert set(processed) == (set(corpus.GOOD) - pair) | {dup["duplicate_of"]}
    for name, v in processed.items():
        note = corpus.GOOD.get(name, "")
        expected = {"truncated.mp4": v.decoded_frames // 8, "fade to black.mp4": 2}.get(name, 5)
        assert v.clips == expected, name
        if note:
            assert any(note in n for n in v.notes), (name, v.notes)
        elif name not in ("vp8.webm", "vp9.webm"):  # webm has no frame count: nothing to adjust either way
            assert v.notes == [], (name, v.notes)
    assert 8 <= processed["truncated.mp4"].decoded_frames < corpus.FRAMES
    store = ClipStore(out)
    assert len(store) == report.clips() and set(store.manifest["source"]) == set(processed)
    fade = store.manifest.index[store.manifest["source"] == "fade to black.mp4"]
    assert store.manifest.loc[fade, "start_frame"].tolist() == [0, 8] and all(
        store[i].std() > 10 for i in fade
    )
    gray = store[store.manifest.index[store.manifest["source"] == "gray.mkv"][0]]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert json.loads((out / "report.json").read_text())["counts"]["rejected"] == len(corpus.JUNK)
    assert json.loads((out / "validation.json").read_text())["manifest"]["success"] is True


def test_too_many_rejections_fail_the_stage_after_writing_the_report(
    bad_corpus: tuple[Path, Path, PreprocessReport],
) -> None:
    raw, out, _ = bad_corpus
    with pytest.raises(
        PreprocessError, match=r"12 of 25 video files rejected \(48% > preprocess.max_rejected"
    ):
        run_preprocess(raw, out, TINY, PreprocessConfig(max_rejected_fraction=0.2), progress=False)
    report = json.loads((out / "report.json").read_text())
    assert report["status"].startswith("failed: 12 of 25") and report["decoded"] == 0  # all reused


def _copy_videos(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)
    return dst


def _split_of_each_source(out: Path) -> dict[str, str]:
    manifest = ClipStore(out).manifest
    return dict(zip(manifest["source"], manifest["split"], strict=True))


def test_reruns_decode_only_new_videos_and_drop_removed_ones(synthetic_raw: Path, tmp_path: Path) -> None:
    raw = _copy_videos(
        synthetic_raw, tmp_path / "raw", ["synth_0000.mp4", "synth_0001.mp4", "synth_0002.mp4"]
    )
    out, cfg = tmp_path / "clips", PreprocessConfig(test_fraction=0.3, workers=1)
    first = run_preprocess(raw, out, TINY, cfg, progress=False)
    assert (first.decoded, first.reused, len(ClipStore(out))) == (3, 0, 15)
    again = run_preprocess(raw, out, TINY, cfg, progress=False)
    assert (again.decoded, again.reused) == (0, 3)
    # Which videos the seeded rule holds out depends on their encoded bytes (the encoder differs between
    # machines), so the test removes a train video and renames another: the frozen test set stays whole.
    split = _split_of_each_source(out)
    train = sorted(s for s, part in split.items() if part == "train")
    assert train and len(train) < 3
    removed, renamed = train[0], sorted(set(split) - {train[0]})[0]
    (raw / removed).unlink()
    (raw / renamed).rename(raw / "renamed.mp4")  # same content: its shard is reused, its split kept
    shutil.copyfile(synthetic_raw / "synth_0003.mp4", raw / "synth_0003.mp4")
    third = run_preprocess(raw, out, TINY, cfg, progress=False)
    assert (third.decoded, third.reused) == (1, 2)
    kept = sorted(set(split) - {removed, renamed})
    assert sorted(set(ClipStore(out).manifest["source"])) == sorted(["renamed.mp4", "synth_0003.mp4", *kept])
    assert len(list((out / "shards").glob("*.npy"))) == 3
    after = _split_of_each_source(out)
    assert after["renamed.mp4"] == split[renamed] and after["synth_0003.mp4"] == "train"  # the set is frozen


def test_an_evaluation_set_whose_videos_are_all_gone_fails_and_says_how_to_draw_a_new_one(
    synthetic_raw: Path, tmp_path: Path
) -> None:
    raw = _copy_videos(
        synthetic_raw, tmp_path / "raw", ["synth_0000.mp4", "synth_0001.mp4", "synth_0002.mp4"]
    )
    out, cfg = tmp_path / "clips", PreprocessConfig(test_fraction=0.3, workers=1)
    run_preprocess(raw, out, TINY, cfg, progress=False)
    for source, part in _split_of_each_source(out).items():
        if part == "test":
            (raw / source).unlink()
    with pytest.raises(PreprocessError, match="test split is empty; raise preprocess.eval_set_version"):
        run_preprocess(raw, out, TINY, cfg, progress=False)
    redrawn = run_preprocess(raw, out, TINY, cfg.model_copy(update={"eval_set_version": 2}), progress=False)
    assert "test" in set(ClipStore(out).manifest["split"]) and redrawn.status == "ok"


def test_new_cutting_rules_recut_every_video(synthetic_raw: Path, tmp_path: Path) -> None:
    raw = _copy_videos(synthetic_raw, tmp_path / "raw", ["synth_0004.mp4", "synth_0005.mp4"])
    out, cfg = tmp_path / "clips", PreprocessConfig(workers=1)
    run_preprocess(raw, out, TINY, cfg, progress=False)
    report = run_preprocess(
        raw, out, DataConfig(resolution=16, frames=8), cfg.model_copy(update={"frame_stride": 2})
    )
    assert (report.decoded, report.reused) == (2, 0)
    store = ClipStore(out)
    assert store[0].shape == (8, 16, 16, 3) and len(store) == 2 * 2  # span 15: starts 0 and 16 in 40 frames
    assert store.previous_clip(1) == 0 and len(list((out / "shards").iterdir())) == 4  # old shards deleted


def test_split_lists_are_honoured_like_ucf101(synthetic_raw: Path, tmp_path: Path) -> None:
    raw = _copy_videos(
        synthetic_raw, tmp_path / "raw", ["synth_0000.mp4", "synth_0001.mp4", "synth_0002.mp4"]
    )
    (raw / "testlist01.txt").write_text(
        "SYNTH_0001.mp4\n./missing.avi\n"
    )  # case differs, as in UCF-101's lists
    cfg = PreprocessConfig(test_list="testlist01.txt", workers=1)
    report = run_preprocess(raw, tmp_path / "clips", TINY, cfg, progress=False)
    assert {v.source: v.split for v in report.processed} == {
        "synth_0000.mp4": "train",
        "synth_0001.mp4": "test",
        "synth_0002.mp4": "train",
    }
    assert "missing.avi" in report.warnings[0]


def test_split_rules() -> None:
    hashes = [f"{i:064x}" for i in range(200)]
    split = seeded_split(hashes, 0.25, seed=1)
    assert split == seeded_split(hashes, 0.25, seed=1) and split != seeded_split(hashes, 0.25, seed=2)
    assert 0.15 < sum(s == "test" for s in split.values()) / 200 < 0.35
    assert {h: split[h] for h in hashes[:50]} == seeded_split(
        hashes[:50], 0.25, seed=1
    )  # stable when others come
    assert sorted(seeded_split(hashes[:2], 0.01, seed=0).values()) == ["test", "train"]
    assert set(seeded_split(hashes[:5], 0.0, seed=0).values()) == {"train"}
    both, excluded = listed_split(
        ["a.mp4", "b.mp4", "c.mp4", "d.mp4"], {"a.mp4", "d.mp4"}, {"b.mp4", "d.mp4"}
    )
    assert both == {"a.mp4": "test", "b.mp4": "train"}
    assert [(e.source, e.reason) for e in excluded] == [
        ("c.mp4", "in neither the train nor the test list"),
        ("d.mp4", "listed in both the train and the test list"),
    ]
    only_train, _ = listed_split(["a.mp4", "b.mp4"], None, {"a.mp4"})
    assert only_train == {"a.mp4": "train", "b.mp4": "test"}


def test_validation_names_what_is_wrong() -> None:
    manifest = pd.DataFrame({
        "clip_id": ["a", "a"], "source": ["x.mp4", "x.mp4"], "content_hash": ["h", "h"], "clip_index": [0, 1],
        "start_frame": [0, 8], "fps": [24.0, 24.0], "duration": [0.3, 0.3], "split": ["train", "test"],
        "shard": ["s", "s"],
    })  # fmt: skip
    stats = pd.DataFrame({
        "clip_id": ["a", "b"], "frames": [8, 8], "height": [32, 32], "width": [32, 30], "channels": [3, 3],
        "dtype": ["uint8", "uint8"], "min": [0, 7], "max": [255, 7], "mean": [100.0, 7.0], "std": [30.0, 0.0],
    })  # fmt: skip
    result = validate_store(
        manifest, stats, frames=8, resolution=32, min_clip_std=1.0, expect_test_split=True
    )
    assert not result.success
    failed = "\n".join(result.failed)
    assert "manifest: expect_column_values_to_be_unique {'column': 'clip_id'}: 2 of 2 rows fail" in failed
    assert "clips: expect_column_values_to_be_between {'column': 'width'" in failed
    assert "clips: expect_column_values_to_be_between {'column': 'std'" in failed
    assert (
        "sources: expect_column_values_to_be_between {'column': 'splits'" in failed
    )  # one video in both splits
    assert len(result.failed) == 4 and result.result["clips"]["success"] is False


def test_failed_validation_fails_the_stage(synthetic_raw: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    raw = _copy_videos(synthetic_raw, tmp_path / "raw", ["synth_0000.mp4"])

    def failing(*args: object, **kwargs: object) -> ValidationResult:
        return ValidationResult(
            success=False, failed=["clips: something"], result={"clips": {"success": False}}
        )

    @contextlib.contextmanager
    def in_this_process() -> Iterator[ThreadPoolExecutor]:  # a validator that sees the patched validate_store
        with ThreadPoolExecutor(1) as pool:
            yield pool

    monkeypatch.setattr(pp, "validate_store", failing)
    monkeypatch.setattr(pp, "validation_process", in_this_process)
    with pytest.raises(PreprocessError, match="validation failed: 1 expectations not met"):
        run_preprocess(raw, tmp_path / "clips", TINY, PreprocessConfig(workers=1), progress=False)
    assert "clips: something" in (tmp_path / "clips" / "report.md").read_text()


def test_a_crashing_decoder_rejects_only_its_file(synthetic_raw: Path, tmp_path: Path) -> None:
    from tests.pvdm.data.crashy import work

    raw = _copy_videos(synthetic_raw, tmp_path / "raw", ["synth_0000.mp4", "synth_0001.mp4"])
    shutil.copyfile(synthetic_raw / "synth_0002.mp4", raw / "crash.mp4")
    spec = pp.cut_spec(TINY, PreprocessConfig())
    jobs = [
        pp.Job(str(raw / n), n, n, str(tmp_path / n), "fp", spec)
        for n in ("crash.mp4", "synth_0000.mp4", "synth_0001.mp4")
    ]
    records = pp._decode_in_parallel(jobs, workers=2, progress=False, work=work)
    assert "decoder crashed" in records[str(tmp_path / "crash.mp4")].rejected
    assert [len(records[str(tmp_path / n)].starts) for n in ("synth_0000.mp4", "synth_0001.mp4")] == [5, 5]

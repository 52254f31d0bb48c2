"""`preprocess`: a folder of real-world videos -> a validated, sharded clip store (see pvdm.data.clips for the layout).

    run_preprocess(raw_dir, out_dir, data, cfg) -> PreprocessReport

Steps: list the folder and reject what is not a usable file; hash the rest (sha256, cached by size and mtime) and set
duplicates aside; split by source video; decode the videos that have no committed shard yet, one process per core;
write the manifest; delete the shards of videos that are gone; validate; write the report; fail when too much was
rejected or validation failed.

Incremental and atomic: a shard is named by its video's content hash and the cutting rules (a fingerprint), and is
committed by its record file, written after its .npy. A rerun reuses every committed shard, so a killed run loses at
most the videos being decoded, and new videos are the only ones decoded. The manifest is replaced in one rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pvdm.atomic import atomic_path, write_text_atomic
from pvdm.config.data import DataConfig
from pvdm.config.preprocess import PreprocessConfig
from pvdm.data.cutting import CutSpec, Job, SourceRecord, read_record, within_deadline
from pvdm.data.eval_set import SetDecision, frozen_split, read_eval_set
from pvdm.data.labels import assign_labels
from pvdm.data.layout import LABELS, MANIFEST, MANIFEST_COLUMNS, SHARD_DIR
from pvdm.data.report import PreprocessReport, ProcessedVideo
from pvdm.data.sources import (
    Candidate,
    HashCache,
    confined,
    folder_split,
    list_raw,
    listed_split,
    read_video_list,
    seeded_split,
)
from pvdm.data.validation import validate_store
from pvdm.data.video import DecodeLimits, OverLimit
from pvdm.data.workers import clean_pool, main_hidden_from_workers, validation_process
from pvdm.errors import PreprocessError

log = logging.getLogger(__name__)

VALIDATION_JSON = "validation.json"
HASH_CACHE = ".hashes.json"
FORMAT_VERSION = 1  # bump when the way clips are cut changes, so old shards are not reused


def run_preprocess(
    raw_dir: str | Path,
    out_dir: str | Path,
    data: DataConfig,
    cfg: PreprocessConfig,
    *,
    progress: bool = True,
    validator: Executor | None = None,
) -> PreprocessReport:
    """Build or update the clip store in `out_dir` from the videos under `raw_dir`; see the module docstring.

    validator: a `validation_process()` the caller started earlier (the stage does, before MLflow's setup), else
    one is started here."""
    start = time.perf_counter()
    raw, out = Path(raw_dir), Path(out_dir)
    if not raw.is_dir():
        raise FileNotFoundError(f"raw video folder {raw} does not exist")
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    report = PreprocessReport(raw_dir=str(raw), out_dir=str(out))
    with contextlib.ExitStack() as stack:
        validator = validator or stack.enter_context(validation_process())
        eval_set = _build(raw, out, data, cfg, progress, report, validator)
    report.seconds = time.perf_counter() - start
    failure = _failure(report, cfg)
    report.status = f"failed: {failure}" if failure else "ok"
    if eval_set.new and not failure:  # recorded once the store that uses it is valid
        eval_set.eval_set.write(out)
    report.write(out)
    if failure:
        raise PreprocessError(f"preprocess failed: {failure} (see {out / 'report.md'})", report)
    return report


def _build(
    raw: Path,
    out: Path,
    data: DataConfig,
    cfg: PreprocessConfig,
    progress: bool,
    report: PreprocessReport,
    validator: Executor,
) -> SetDecision:
    """Plan, decode what is new, write the manifest and labels, drop stale shards, validate. Returns the evaluation
    set the splits follow (recorded by the caller once the store is known to be valid)."""
    start = time.perf_counter()
    spec = cut_spec(data, cfg)
    jobs, listed = _plan(raw, out, spec, cfg, report)
    report.timings["plan"] = time.perf_counter() - start
    records = _reuse_or_decode(jobs, cfg.workers, progress, report)
    splits, report.split_source = _splits(jobs, records, listed, cfg)
    splits, eval_set = _frozen_splits(out, jobs, records, splits, report.split_source, cfg, report)
    names, labels = assign_labels(
        [j.source for j in jobs], cfg.labels, raw, cfg.class_file, cfg.allow_outside_paths
    )
    manifest, stats = _collect(jobs, records, splits, labels, spec, report)
    _write_manifest(out, manifest)
    write_text_atomic(out / LABELS, json.dumps({"names": names}))
    _remove_unreferenced_shards(out / SHARD_DIR, {Path(j.shard).name for j in jobs})
    started = time.perf_counter()
    _validate(out, manifest, stats, spec, _expects_test_split(cfg, report), report, validator)
    report.timings["validate"] = time.perf_counter() - started
    return eval_set


def cut_spec(data: DataConfig, cfg: PreprocessConfig) -> CutSpec:
    return CutSpec(
        resolution=data.resolution,
        frames=data.frames,
        frame_stride=cfg.frame_stride,
        step=cfg.step(data.frames),
        max_clips=cfg.max_clips_per_video,
        min_size=cfg.min_size,
        max_aspect_ratio=cfg.max_aspect_ratio,
        min_clip_std=cfg.min_clip_std,
    )


def decode_limits(cfg: PreprocessConfig) -> DecodeLimits:
    return DecodeLimits(
        max_file_bytes=cfg.max_file_bytes,
        max_frames=cfg.max_frames,
        max_pixels=cfg.max_pixels,
        max_duration_s=cfg.max_duration_s,
        timeout_s=cfg.decode_timeout_s,
    )


def fingerprint(spec: CutSpec) -> str:
    """Hash of everything that changes a video's shard: a shard cut under other rules is never reused."""
    text = json.dumps({"version": FORMAT_VERSION, **asdict(spec)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _plan(
    raw: Path, out: Path, spec: CutSpec, cfg: PreprocessConfig, report: PreprocessReport
) -> tuple[list[Job], dict[str, str] | None]:
    """Sort the folder into jobs (one per distinct video), rejections, duplicates and, with split lists, exclusions.

    Returns the jobs and the listed splits (None without lists: the seeded split is drawn after decoding, among
    the videos that gave clips, so a rejected video cannot leave a split empty)."""
    listing = list_raw(raw, cfg.extensions)
    report.ignored = [asdict(r) for r in listing.ignored]
    report.rejected += [asdict(r) for r in listing.rejected]
    limits = decode_limits(cfg)
    unique = _hash_and_dedupe(_within_size(listing.candidates, limits, report), out / HASH_CACHE, report)
    listed = _listed_splits(raw, [c.source for c, _ in unique], cfg, report)
    fp = fingerprint(spec)
    shard_dir = out / SHARD_DIR
    jobs = [
        Job(
            str(c.path),
            c.source,
            h,
            str(shard_dir / f"{h[:32]}-{fp[:8]}"),
            fp,
            spec,
            limits,
            cfg.frame_folder_fps,
        )
        for c, h in unique
        if listed is None or c.source in listed
    ]
    return jobs, listed


def _within_size(
    candidates: list[Candidate], limits: DecodeLimits, report: PreprocessReport
) -> list[Candidate]:
    """Files over preprocess.max_file_bytes are rejected before they are hashed (hashing reads every byte)."""
    kept = []
    for c in candidates:
        try:
            limits.check_file_size(c.size)
        except OverLimit as err:
            report.rejected.append({"source": c.source, "reason": str(err)})
            continue
        kept.append(c)
    return kept


def _hash_and_dedupe(
    candidates: list[Candidate], cache_path: Path, report: PreprocessReport
) -> list[tuple[Candidate, str]]:
    """(candidate, sha256) of the first file of each content, in path order; the others are reported duplicates."""
    cache = HashCache(cache_path)
    first: dict[str, str] = {}
    unique = []
    for c in candidates:
        try:
            digest = cache.digest(c)
        except OSError as err:
            report.rejected.append({"source": c.source, "reason": f"cannot be read: {err.strerror or err}"})
            continue
        if digest in first:
            report.duplicates.append({"source": c.source, "duplicate_of": first[digest]})
            continue
        first[digest] = c.source
        unique.append((c, digest))
    cache.save({c.source for c in candidates})
    return unique


def _splits(
    jobs: list[Job], records: dict[str, SourceRecord], listed: dict[str, str] | None, cfg: PreprocessConfig
) -> tuple[dict[str, str], str]:
    """(split of every source, where the splits came from): the lists when given; the dataset's own train/ and
    val|test/ folders when every video lies in one (preprocess.split_from: auto or folders); else a seeded fraction."""
    if listed is not None:
        return listed, "lists (preprocess.test_list / train_list)"
    by_folder = {j.source: folder_split(j.source) for j in jobs}
    if cfg.split_from == "folders" or (
        cfg.split_from == "auto" and by_folder and None not in by_folder.values()
    ):
        missing = [s for s, split in by_folder.items() if split is None]
        if missing:
            raise FileNotFoundError(
                f"preprocess.split_from is 'folders' but {missing[0]} is in no train/ or test/ folder"
            )
        return by_folder, "folders (train/ and val|test/)"
    rule = f"fraction (test_fraction {cfg.test_fraction}, seed {cfg.seed})"
    return _seeded_splits(jobs, records, cfg), rule


def _frozen_splits(
    out: Path,
    jobs: list[Job],
    records: dict[str, SourceRecord],
    splits: dict[str, str],
    rule: str,
    cfg: PreprocessConfig,
    report: PreprocessReport,
) -> tuple[dict[str, str], SetDecision]:
    """The splits with the test split frozen to the recorded evaluation set (pvdm.data.eval_set): a new video
    joins train unless the set is drawn again (preprocess.eval_set_version) or an explicit split puts it in test."""
    accepted = [j for j in jobs if not records[j.shard].rejected and j.source in splits]
    drawn = {j.content_hash: splits[j.source] for j in accepted}
    explicit = not rule.startswith("fraction")
    by_hash, decision = frozen_split(
        list(drawn), drawn, read_eval_set(out), cfg.eval_set_version, rule, explicit
    )
    report.warnings += decision.warnings
    s = decision.eval_set
    report.split_source = (
        f"{rule}; evaluation set {s.id} ({len(s.content_hashes)} videos, sha256 {s.sha256[:12]})"
    )
    return {j.source: by_hash[j.content_hash] for j in accepted}, decision


def _seeded_splits(
    jobs: list[Job], records: dict[str, SourceRecord], cfg: PreprocessConfig
) -> dict[str, str]:
    accepted = [j for j in jobs if not records[j.shard].rejected]
    by_hash = seeded_split([j.content_hash for j in accepted], cfg.test_fraction, cfg.seed)
    return {j.source: by_hash[j.content_hash] for j in accepted}


def _listed_splits(
    raw: Path, sources: list[str], cfg: PreprocessConfig, report: PreprocessReport
) -> dict[str, str] | None:
    """Split of each source path from the explicit lists, or None when no list is given."""
    if cfg.test_list is None and cfg.train_list is None:
        return None
    lists = {}
    for name, path in (("test", cfg.test_list), ("train", cfg.train_list)):
        if path is not None:
            file = confined(raw, path, f"preprocess.{name}_list", cfg.allow_outside_paths)
            lists[name] = read_video_list(file)
    split, excluded = listed_split(sources, lists.get("test"), lists.get("train"))
    report.excluded = [asdict(r) for r in excluded]
    present = {s.lower() for s in sources} | {d["source"].lower() for d in report.duplicates}
    missing = sorted(n for names in lists.values() for n in names if n not in present)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        report.warnings.append(
            f"{len(missing)} videos named in the split lists are not usable videos here: {shown}"
        )
    return split


def _reuse_or_decode(
    jobs: list[Job], workers: int, progress: bool, report: PreprocessReport
) -> dict[str, SourceRecord]:
    records, todo = {}, []
    for job in jobs:
        record = committed_record(job)
        if record is not None:
            records[job.shard] = record
        else:
            todo.append(job)
    report.reused = len(records)
    started = time.perf_counter()
    records.update(_decode_in_parallel(todo, workers, progress))
    report.decode_seconds = report.timings["decode"] = time.perf_counter() - started
    report.decoded = len(todo)
    report.decoded_frames = sum(records[j.shard].decoded_frames for j in todo)
    return records


def committed_record(job: Job) -> SourceRecord | None:
    """The record this job already committed, if it still holds: same video, same cutting rules, and for a
    rejection the same decode limits (raised limits give a rejected video another try)."""
    record = read_record(Path(job.shard))
    if record is None or record.fingerprint != job.fingerprint or record.content_hash != job.content_hash:
        return None
    if record.rejected and record.limits != job.limits.key():
        return None
    return record


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


Work = Callable[[Job], SourceRecord]


def _decode_in_parallel(
    jobs: list[Job], workers: int, progress: bool, work: Work = within_deadline
) -> dict[str, SourceRecord]:
    """One process per core, largest files first (they bound the wall time). A worker that dies (a decoder crash,
    or a decode past preprocess.decode_timeout_s, which commits its rejection first) breaks the pool: the videos
    without a committed record are then retried one by one, so only the culprit is rejected."""
    if not jobs:
        return {}
    jobs = sorted(jobs, key=lambda j: -_size(j.path))
    n = min(workers or available_cores(), len(jobs))
    records, unfinished = {}, []
    bar = tqdm(total=len(jobs), desc="decoding videos", unit="video", disable=not progress)
    with clean_pool(n) as pool:
        with main_hidden_from_workers():  # the workers start at the first submit
            futures = {pool.submit(work, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                records[job.shard] = future.result()
            except BrokenProcessPool:
                unfinished.append(job)
            bar.update()
    bar.close()
    for job in unfinished:
        records[job.shard] = committed_record(job) or _decode_alone(job, work)
    return records


def _decode_alone(job: Job, work: Work) -> SourceRecord:
    with clean_pool(1) as pool:
        try:
            with main_hidden_from_workers():
                future = pool.submit(work, job)
            return future.result()
        except BrokenProcessPool:
            if committed := committed_record(job):  # the worker timed out and said so before it ended
                return committed
            reason = "the decoder crashed on this file (its worker process died)"
            return SourceRecord(job.content_hash, job.fingerprint, job.source, rejected=reason)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _collect(
    jobs: list[Job],
    records: dict[str, SourceRecord],
    splits: dict[str, str],
    labels: dict[str, int],
    spec: CutSpec,
    report: PreprocessReport,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest and the per-clip statistics, in store order (by source path, then clip)."""
    rows, stats = [], []
    for job in sorted(jobs, key=lambda j: j.source):
        record = records[job.shard]
        if record.rejected:
            report.rejected.append({"source": job.source, "reason": record.rejected})
            continue
        split = splits[job.source]
        report.processed.append(_processed(job, record, split))
        shard = Path(job.shard).with_suffix(".npy")
        shape, dtype = _shard_header(shard)
        for row, (index, start) in enumerate(zip(record.clip_indices, record.starts, strict=True)):
            clip_id = f"{job.content_hash[:16]}-{index:05d}"
            fps = record.fps / spec.frame_stride
            rows.append([
                clip_id, job.source, job.content_hash, index, start, spec.frame_stride, spec.frames, fps,
                spec.frames / fps, split, f"{SHARD_DIR}/{shard.name}", row, labels[job.source], report.split_source,
            ])  # fmt: skip
            lo, hi, mean, std = record.stats[row]
            stats.append([clip_id, *shape[1:], str(dtype), lo, hi, mean, std])
    report.rejected.sort(key=lambda r: r["source"])
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    columns = ["clip_id", "frames", "height", "width", "channels", "dtype", "min", "max", "mean", "std"]
    return manifest, pd.DataFrame(stats, columns=columns)


def _processed(job: Job, record: SourceRecord, split: str) -> ProcessedVideo:
    return ProcessedVideo(
        source=job.source,
        content_hash=job.content_hash,
        split=split,
        clips=len(record.starts),
        fps=round(record.fps, 3),
        width=record.width,
        height=record.height,
        codec=record.codec,
        backend=record.backend,
        decoded_frames=record.decoded_frames,
        notes=record.notes,
    )


def _shard_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype as stored in the .npy header (the file, not what the worker claimed)."""
    array = np.load(path, mmap_mode="r")
    return array.shape, array.dtype


def _write_manifest(out: Path, manifest: pd.DataFrame) -> None:
    with atomic_path(out / MANIFEST) as tmp:
        manifest.to_parquet(tmp, index=False)


def _remove_unreferenced_shards(shard_dir: Path, keep: set[str]) -> None:
    """Shards of videos that were removed (or cut under other rules), and leftovers of killed runs."""
    for path in shard_dir.iterdir():
        if path.name.split(".")[0] not in keep or path.name.startswith("."):
            path.unlink(missing_ok=True)


def _expects_test_split(cfg: PreprocessConfig, report: PreprocessReport) -> bool:
    """A test split must exist when one was asked for: by a list, or by a test fraction with two videos or more."""
    if cfg.test_list is not None or cfg.train_list is not None:
        return cfg.test_list is not None or any(v.split == "test" for v in report.processed)
    return cfg.test_fraction > 0 and len(report.processed) >= 2


def _validate(
    out: Path,
    manifest: pd.DataFrame,
    stats: pd.DataFrame,
    spec: CutSpec,
    expect_test: bool,
    report: PreprocessReport,
    validator: Executor,
) -> None:
    checks = {"frames": spec.frames, "resolution": spec.resolution, "min_clip_std": spec.min_clip_std,
              "expect_test_split": expect_test}  # fmt: skip
    try:
        result = validator.submit(validate_store, manifest, stats, **checks).result()
    except BrokenProcessPool:  # the validation process died (killed, out of memory): validate here instead
        result = validate_store(manifest, stats, **checks)
    write_text_atomic(out / VALIDATION_JSON, json.dumps(result.result, indent=2, default=str))
    report.validation = result.summary()


def _failure(report: PreprocessReport, cfg: PreprocessConfig) -> str:
    if not report.processed:
        return "no usable video: every file was rejected, excluded or a duplicate"
    if report.rejected_fraction > cfg.max_rejected_fraction:
        return (
            f"{len(report.rejected)} of {report.video_files} video files rejected "
            f"({report.rejected_fraction:.0%} > preprocess.max_rejected_fraction {cfg.max_rejected_fraction:.0%})"
        )
    if not report.validation.get("success", False):
        failed = report.validation.get("failed", [])
        # The report's warnings often say why (an evaluation set whose videos are all gone empties the test split).
        why = [w for w in report.warnings if "test split is empty" in w]
        return f"validation failed: {len(failed)} expectations not met: " + "; ".join(failed[:3] + why)
    return ""

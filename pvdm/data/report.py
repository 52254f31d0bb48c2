"""The data report of `preprocess`: every file of the raw folder, what became of it, and why (JSON + Markdown)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pvdm.atomic import write_text_atomic

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass
class ProcessedVideo:
    source: str
    content_hash: str
    split: str
    clips: int
    fps: float
    width: int
    height: int
    codec: str
    backend: str
    decoded_frames: int
    notes: list[str] = field(default_factory=list)  # what was adjusted (grayscale, VFR, truncation, ...)


@dataclass
class PreprocessReport:
    raw_dir: str
    out_dir: str
    processed: list[ProcessedVideo] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)  # {source, reason}
    duplicates: list[dict[str, str]] = field(default_factory=list)  # {source, duplicate_of}
    excluded: list[dict[str, str]] = field(default_factory=list)  # valid videos left out by the split lists
    ignored: list[dict[str, str]] = field(default_factory=list)  # files without a video extension
    warnings: list[str] = field(default_factory=list)
    reused: int = 0  # videos whose shard from an earlier run was kept
    decoded: int = 0  # videos decoded in this run
    decoded_frames: int = 0  # source frames decoded in this run
    seconds: float = 0.0  # wall time of the whole stage
    decode_seconds: float = 0.0  # wall time of the parallel decoding phase
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase: plan, decode, validate
    validation: dict[str, Any] = field(default_factory=dict)  # {success, failed: [...]}
    status: str = "ok"  # "ok" or "failed: <why>"
    split_source: str = ""  # where the train/test split came from

    @property
    def video_files(self) -> int:
        """Files that were candidates for decoding, or named like videos: the base of the rejection rate."""
        return len(self.processed) + len(self.rejected) + len(self.duplicates) + len(self.excluded)

    @property
    def rejected_fraction(self) -> float:
        return len(self.rejected) / self.video_files if self.video_files else 0.0

    def clips(self, split: str | None = None) -> int:
        return sum(v.clips for v in self.processed if split is None or v.split == split)

    def counts(self) -> dict[str, int | float]:
        return {
            "video_files": self.video_files,
            "processed": len(self.processed),
            "rejected": len(self.rejected),
            "duplicates": len(self.duplicates),
            "excluded": len(self.excluded),
            "ignored": len(self.ignored),
            "adjusted": sum(bool(v.notes) for v in self.processed),
            "videos_train": sum(v.split == "train" for v in self.processed),
            "videos_test": sum(v.split == "test" for v in self.processed),
            "clips": self.clips(),
            "clips_train": self.clips("train"),
            "clips_test": self.clips("test"),
            "reused": self.reused,
            "decoded": self.decoded,
            "decoded_frames": self.decoded_frames,
            "decode_frames_per_second": round(self.decoded_frames / self.decode_seconds, 1)
            if self.decode_seconds
            else 0.0,
            "seconds": round(self.seconds, 2),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts()
        return data

    def write(self, out_dir: Path) -> None:
        write_text_atomic(out_dir / REPORT_JSON, json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        write_text_atomic(out_dir / REPORT_MD, self.summary())

    def summary(self) -> str:
        """A page a person reads: the counts, then every rejected, duplicate, excluded and adjusted file."""
        c = self.counts()
        lines = [
            f"# Preprocess report: {self.status}",
            "",
            f"{c['processed']} videos processed ({c['videos_train']} train, {c['videos_test']} test) into "
            f"{c['clips']} clips ({c['clips_train']} train, {c['clips_test']} test); {c['rejected']} rejected, "
            f"{c['duplicates']} duplicates, {c['excluded']} excluded, {c['ignored']} other files ignored.",
            f"Decoded {c['decoded']} videos this run ({c['decoded_frames']} frames, "
            f"{c['decode_frames_per_second']} frames/s), reused {c['reused']}; {c['seconds']} s in all.",
            f"Split from: {self.split_source or 'not decided'}.",
        ]
        lines += _section("Rejected", [f"`{r['source']}`: {r['reason']}" for r in self.rejected])
        lines += _section(
            "Duplicates (same content, not processed)",
            [f"`{d['source']}`: same content as `{d['duplicate_of']}`" for d in self.duplicates],
        )
        lines += _section(
            "Excluded by the split lists", [f"`{e['source']}`: {e['reason']}" for e in self.excluded]
        )
        lines += _section(
            "Adjusted", [f"`{v.source}`: {'; '.join(v.notes)}" for v in self.processed if v.notes]
        )
        lines += _section("Warnings", self.warnings)
        lines += _section("Validation failures", [str(f) for f in self.validation.get("failed", [])])
        lines += _section("Ignored (not videos)", [f"`{i['source']}`: {i['reason']}" for i in self.ignored])
        return "\n".join(lines) + "\n"


def _section(title: str, items: list[str]) -> list[str]:
    return ["", f"## {title} ({len(items)})", "", *[f"- {item}" for item in items]] if items else []

"""`preprocess`: how raw videos become clips (where they come from, `ingest`, is pipelines/config.py's).

The clip geometry (resolution, frames per clip) is the shared `data` section (pvdm.config.data.DataConfig).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pvdm.config.base import StrictModel

DEFAULT_EXTENSIONS = [
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".gif",
]


class PreprocessConfig(StrictModel):
    frame_stride: int = Field(1, ge=1, description="a clip takes every frame_stride-th source frame")
    clip_step: int = Field(
        0,
        ge=0,
        description="source frames between the starts of consecutive clips; 0: frames * frame_stride (back to back)",
    )
    max_clips_per_video: int = Field(0, ge=0, description="keep the first N clips of each video; 0: all")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of source videos in the test split")
    seed: int = Field(0, description="seed of the train/test split (by source video)")
    eval_set_version: int = Field(
        1,
        ge=1,
        description="the held-out evaluation set is recorded once (data/clips/eval_set.json) and new videos never "
        "join it; raise this to draw a new set over today's videos (a new eval_set_sha256: champion scores are "
        "computed again on it)",
    )
    test_list: str | None = Field(
        None,
        description="text file of test videos, one path relative to the raw folder per line (extra words ignored: "
        "UCF-101's testlist01.txt works as is); when set it replaces test_fraction",
    )
    train_list: str | None = Field(
        None,
        description="text file of train videos, same format; with both lists, unlisted videos are excluded",
    )
    labels: Literal["none", "folder", "file"] = Field(
        "none",
        description="class labels: none; folder (each video's class folder, split folders skipped); file (those "
        "folders numbered by class_file)",
    )
    class_file: str | None = Field(
        None, description="class-index file inside the raw folder for labels: file (UCF-101's classInd.txt)"
    )
    split_from: Literal["auto", "folders", "lists", "fraction"] = Field(
        "auto",
        description="where the train/test split comes from: auto = the lists when given, else the dataset's own "
        "train/ and val|test/ folders when every video is in one, else test_fraction",
    )
    allow_outside_paths: bool = Field(
        False, description="let test_list, train_list and class_file name files outside the raw folder"
    )
    min_size: int = Field(8, ge=1, description="reject videos whose width or height is below this (pixels)")
    max_aspect_ratio: float = Field(
        3.0, ge=1.0, description="reject videos with long side / short side above this"
    )
    min_clip_std: float = Field(
        1.0, ge=0.0, description="drop clips whose pixel std is below this (constant clips)"
    )
    max_rejected_fraction: float = Field(
        0.2, ge=0.0, le=1.0, description="fail the stage when more than this share of video files is rejected"
    )
    workers: int = Field(0, ge=0, le=1024, description="decoding processes; 0: one per available core")
    frame_folder_fps: float = Field(
        25.0,
        gt=0,
        le=1000,
        description="frame rate of videos stored as folders of numbered images (image files carry none)",
    )
    # Bounds on one untrusted video. A file over any of them is reported (which bound, by how much) and skipped;
    # within them, decoding holds about one clip of frames in memory whichever decoder reads the file.
    max_file_bytes: int = Field(
        4 * 2**30,
        ge=1,
        description="skip video files larger than this (bytes; default 4 GiB), before hashing them",
    )
    max_frames: int = Field(
        200_000,
        ge=1,
        le=100_000_000,
        description="skip videos with more frames than this (announced or decoded)",
    )
    max_pixels: int = Field(
        8192 * 8192,
        ge=64,
        le=2**31,
        description="skip videos whose frames have more pixels than this (width x height)",
    )
    max_duration_s: float = Field(
        4 * 3600.0, gt=0, le=10**7, description="skip videos longer than this (seconds, announced or decoded)"
    )
    decode_timeout_s: float = Field(
        1800.0,
        gt=0,
        le=10**6,
        description="abandon a video whose decoding takes longer than this (seconds): it is reported and skipped",
    )
    extensions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXTENSIONS),
        description="file extensions read as videos (case-insensitive); other files are listed as ignored",
    )

    @field_validator("extensions")
    @classmethod
    def _dotted_lower_case(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one extension is needed")
        return [e.lower() if e.startswith(".") else f".{e.lower()}" for e in value]

    def step(self, frames: int) -> int:
        """Source frames between consecutive clip starts."""
        return self.clip_step or frames * self.frame_stride

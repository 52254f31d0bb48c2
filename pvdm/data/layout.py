"""File names and manifest columns of a clip store, shared by the writer (preprocess) and the readers (clips)."""

from __future__ import annotations

MANIFEST = "manifest.parquet"
SHARD_DIR = "shards"
MANIFEST_COLUMNS = [
    "clip_id",  # "<content_hash[:16]>-<clip_index:05d>": unique, stable across renames of the source
    "source",  # path of the source video relative to the raw folder (POSIX separators)
    "content_hash",  # sha256 of the source file's bytes
    "clip_index",  # 0, 1, ... within the source
    "start_frame",  # index of the clip's first frame in the decoded (constant-rate) source
    "frame_stride",  # the clip takes every frame_stride-th source frame
    "frames",  # frames per clip (T)
    "fps",  # frame rate of the stored clip: source fps / frame_stride
    "duration",  # seconds covered by the clip: frames / fps
    "split",  # "train" or "test"
    "shard",  # shard file relative to the store root
    "shard_row",  # the clip's row in its shard
    "label",  # class id (index into labels.json's names), -1 = unlabelled
    "split_source",  # where the split came from: lists, the dataset's folders, or a seeded fraction
]
LABELS = "labels.json"  # {"names": [...]}: the class names, label i = names[i]; [] for unlabelled data
UNLABELLED = -1

# A folder of generated videos (the sample stage's clips/ and long/): mp4 files to watch, plus these two.
SAMPLE_FRAMES = "frames.npy"  # uint8 (N, T, H, W, 3): the videos exactly as the sampler made them (what FVD scores)
SAMPLE_LABELS = "labels.json"  # beside clips/ and long/: {"names": [...], "clips": [class of video i], "long": [...]}

"""Ingest: copy new raw videos from `s3://bucket/prefix` (boto3) or a local folder into the raw data folder.

Incremental: a file already copied, unchanged at the source, is not copied again (a state file in the raw folder,
`.ingest-state.json`, remembers each source object's ETag or size and mtime). Each copy goes to a temporary file,
is verified (size, then the ETag: the MD5 of the content, or for a multipart upload the MD5 of its parts' MD5s;
the SHA-256 of a local source), and is renamed into place only when it matches.

Credentials come from boto3's standard chain (environment, ~/.aws, instance role) and are never read, logged or
stored here; `ingest.endpoint_url` is refused when it carries userinfo (see pipelines.config.IngestConfig).

    uv run --frozen python -m pipelines.ingest --source s3://bucket/videos --raw data/raw [--endpoint-url URL]
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import click

from pipelines.config import IngestConfig, load_pipeline_params
from pvdm.atomic import atomic_path, write_text_atomic
from pvdm.hashing import file_digest, sha256_file

log = logging.getLogger("pvdm.ingest")
STATE = ".ingest-state.json"


@dataclass
class IngestReport:
    source: str
    copied: list[str] = field(default_factory=list)  # paths relative to the raw folder
    unchanged: int = 0  # already present and identical: not copied
    skipped: list[dict[str, str]] = field(
        default_factory=list
    )  # {key, reason}: objects that cannot be copied
    bytes_copied: int = 0
    verified_by: dict[str, str] = field(
        default_factory=dict
    )  # copied path -> "md5", "sha256", "crc32" or "size"

    def summary(self) -> str:
        text = f"ingest from {self.source}: copied {len(self.copied)} files ({self.bytes_copied} bytes), "
        text += f"{self.unchanged} unchanged, {len(self.skipped)} skipped"
        return "\n".join([text, *[f"  + {p} ({self.verified_by[p]})" for p in self.copied]] + [
            f"  ! {s['key']}: {s['reason']}" for s in self.skipped
        ])  # fmt: skip


class IngestError(RuntimeError):
    pass


def ingest(
    cfg: IngestConfig, raw_dir: str | Path, *, client: Any = None, project: Path | None = None
) -> IngestReport:
    """Copy what is new at `cfg.source` into `raw_dir`; an empty source copies nothing.

    A folder source must lie inside `project` (default: the project of `raw_dir`, two levels up from
    data/raw) unless ingest.allow_outside_paths is set."""
    raw = Path(raw_dir)
    raw.mkdir(parents=True, exist_ok=True)
    if not cfg.source:
        return IngestReport(source="")
    if cfg.source.startswith("s3://"):
        return ingest_s3(cfg, raw, client=client)
    source = Path(cfg.source)
    inside = (project or raw.resolve().parents[1]).resolve()
    if not cfg.allow_outside_paths and not source.resolve().is_relative_to(inside):
        raise IngestError(
            f"ingest.source: the folder {source} is outside the project {inside}; move the videos there, or set "
            "ingest.allow_outside_paths: true to read it anyway"
        )
    return ingest_folder(source, raw)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix is a folder, so it ends with "/"."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise IngestError(f"ingest.source: {uri!r} has no bucket (expected s3://bucket/prefix)")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_client(cfg: IngestConfig) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region)


def ingest_s3(cfg: IngestConfig, raw: Path, *, client: Any = None) -> IngestReport:
    bucket, prefix = parse_s3_uri(cfg.source)
    client = client or s3_client(cfg)
    report = IngestReport(source=f"s3://{bucket}/{prefix}")
    state = _load_state(raw)
    log.info(
        "ingest: listing s3://%s/%s%s", bucket, prefix, f" at {cfg.endpoint_url}" if cfg.endpoint_url else ""
    )
    for obj in _list_objects(client, bucket, prefix):
        key, size, etag = obj["Key"], int(obj["Size"]), obj["ETag"].strip('"')
        target, reason = destination(raw, key[len(prefix) :])
        if target is None:
            report.skipped.append({"key": key, "reason": reason})
            log.warning("ingest: skipped %r: %s", key, reason)
            continue
        rel = target.relative_to(raw).as_posix()
        if _same_as_recorded(state.get(rel), target, {"etag": etag, "size": size}):
            report.unchanged += 1
            continue
        method = _download_verified(client, bucket, key, target, size, etag)
        state[rel] = {"etag": etag, "size": size}
        _record_copy(report, rel, size, method)
    _save_state(raw, state)
    return report


def _list_objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):  # "folder" marker objects
                yield obj


def destination(raw: Path, name: str) -> tuple[Path | None, str]:
    """Where the object or file called `name` (relative to the source) goes in `raw`, or (None, why not).

    Refused: absolute names, '..', empty or '.' parts (`videos/.`), hidden parts (they would collide with the
    ingest state file or hide from preprocess), control characters, and names under a folder of `raw` that is a
    symbolic link leading out of it (the copy would land outside the project)."""
    if not name or any(ord(c) < 32 or c == "\x7f" for c in name):
        return None, "an empty name or one with control characters"
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        return None, "an absolute path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None, "not a plain relative path (an empty, '.' or '..' part)"
    if any(part.startswith(".") for part in parts):
        return None, "a hidden name (starting with '.'): reserved for the ingest state and tools' files"
    target = raw / Path(*parts)
    root = raw.resolve()
    if not target.parent.resolve().is_relative_to(root):
        return None, f"its folder leads outside {raw} (a symbolic link)"
    if target.is_dir() and not target.is_symlink():
        return None, f"{target.relative_to(raw)} is a folder in {raw}"
    return target, ""


def _same_as_recorded(recorded: dict[str, Any] | None, target: Path, current: dict[str, Any]) -> bool:
    if recorded != current or not target.is_file():
        return False
    return target.stat().st_size == current["size"]


def _download_verified(client: Any, bucket: str, key: str, target: Path, size: int, etag: str) -> str:
    with atomic_path(target) as tmp:  # renamed into place only when verified
        client.download_file(bucket, key, str(tmp))
        return _verify_s3_copy(client, bucket, key, tmp, size, etag)


def _verify_s3_copy(client: Any, bucket: str, key: str, path: Path, size: int, etag: str) -> str:
    """Raise IngestError unless the copy has the object's size and ETag; return how it was checked.

    A single-part ETag is the MD5 of the content; a multipart one ("<hex>-<N>") is the MD5 of the N parts' MD5s,
    checked with the part sizes S3 reports (HEAD with PartNumber)."""
    name = f"s3://{bucket}/{key}"
    if path.stat().st_size != size:
        raise IngestError(f"{name}: copied {path.stat().st_size} bytes, the object has {size}")
    if "-" not in etag:
        return _check(name, "md5", file_digest(path, "md5"), etag)
    parts = int(etag.rsplit("-", 1)[1])
    try:
        sizes = [
            client.head_object(Bucket=bucket, Key=key, PartNumber=i)["ContentLength"]
            for i in range(1, parts + 1)
        ]
    except Exception:  # an S3 implementation without part HEADs: the size is all there is to compare
        log.warning("ingest: %s: cannot read its part sizes; verified by size only", name)
        return "size"
    return _check(name, "md5 of parts", f"{_md5_of_parts(path, sizes)}-{parts}", etag)


def _md5_of_parts(path: Path, sizes: list[int]) -> str:
    md5s = b""
    with path.open("rb") as f:
        for size in sizes:
            md5s += hashlib.md5(f.read(size)).digest()
    return hashlib.md5(md5s).hexdigest()


def _check(name: str, method: str, actual: str, expected: str) -> str:
    if actual != expected:
        raise IngestError(f"{name}: {method} of the copy is {actual}, the source says {expected}")
    return method


def ingest_folder(source: Path, raw: Path) -> IngestReport:
    """Copy new or changed files from a local (or mounted) folder, verified by SHA-256."""
    if not source.is_dir():
        raise IngestError(f"ingest.source: {source} is not a folder (nor s3://bucket/prefix)")
    report = IngestReport(source=str(source))
    state = _load_state(raw)
    inside = source.resolve()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
        name = path.relative_to(source).as_posix()
        target, reason = destination(raw, name)
        if target is not None and not path.resolve().is_relative_to(inside):
            target, reason = None, f"a symbolic link to {path.resolve()}, outside the source folder"
        if target is None:
            report.skipped.append({"key": name, "reason": reason})
            log.warning("ingest: skipped %r: %s", name, reason)
            continue
        rel = target.relative_to(raw).as_posix()
        st = path.stat()
        current = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if _same_as_recorded(state.get(rel), raw / rel, current):
            report.unchanged += 1
            continue
        _copy_verified(path, raw / rel)
        state[rel] = current
        _record_copy(report, rel, st.st_size, "sha256")
    _save_state(raw, state)
    return report


def _copy_verified(src: Path, target: Path) -> None:
    with atomic_path(target) as tmp:  # renamed into place only when verified
        shutil.copyfile(src, tmp)
        _check(str(src), "sha256", sha256_file(tmp), sha256_file(src))


def _record_copy(report: IngestReport, rel: str, size: int, method: str) -> None:
    report.copied.append(rel)
    report.bytes_copied += size
    report.verified_by[rel] = method
    log.info("ingest: copied %s (%d bytes, verified by %s)", rel, size, method)


def _load_state(raw: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((raw / STATE).read_text())
    except (OSError, ValueError):
        return {}


def _save_state(raw: Path, state: dict[str, dict[str, Any]]) -> None:
    write_text_atomic(raw / STATE, json.dumps(state, indent=1, sort_keys=True))


@click.command()
@click.option("--source", help="s3://bucket/prefix or a folder (default: ingest.source of params.yaml)")
@click.option("--raw", "raw_dir", default="data/raw", show_default=True, type=click.Path(path_type=Path))
@click.option("--endpoint-url", help="S3-compatible endpoint (default: ingest.endpoint_url of params.yaml)")
@click.option("--params", default="params.yaml", show_default=True, type=click.Path(path_type=Path))
def main(source: str | None, raw_dir: Path, endpoint_url: str | None, params: Path) -> None:
    """Copy new raw videos into the raw folder and say what was copied."""

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_pipeline_params(params).ingest if params.is_file() else IngestConfig()
    update = {k: v for k, v in (("source", source), ("endpoint_url", endpoint_url)) if v}
    cfg = IngestConfig.model_validate({**cfg.model_dump(), **update})
    click.echo(ingest(cfg, raw_dir).summary())


if __name__ == "__main__":
    main()

"""Ingest from S3 (moto's S3 server on loopback, through boto3) and from a folder."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from pipelines.config import IngestConfig
from pipelines.ingest import STATE, IngestError, ingest, parse_s3_uri
from pvdm.data.synthetic import generate_videos

MB = 1 << 20
KEY_ID, SECRET = "AKIAPVDMINGESTTEST01", "pvdm-ingest-secret-never-logged"  # moto accepts any key pair


@pytest.fixture
def aws_env(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The standard credential chain (environment variables) is how ingest gets credentials."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


@pytest.mark.services
def test_s3_ingest_copies_new_objects_once_and_verifies_them(
    s3_server,
    aws_env,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.INFO)
    client = s3_server.client()
    bucket = s3_server.new_bucket("raw")
    videos = generate_videos(tmp_path / "src", 2, size=32, frames=12, seed=0)
    client.upload_file(str(videos[0]), bucket, "videos/a.mp4")
    client.upload_file(str(videos[1]), bucket, "videos/sub dir/b é.mp4")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (7 * MB // 256))  # 7 MiB in two parts (5 + 2): a multipart ETag
    parts = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    client.upload_file(str(big), bucket, "videos/big.mkv", Config=parts)
    client.put_object(Bucket=bucket, Key="videos/folder/", Body=b"")  # a "folder" marker, not a file
    client.put_object(Bucket=bucket, Key="videos/../escape.mp4", Body=b"x")
    client.put_object(Bucket=bucket, Key="other/c.mp4", Body=b"not under the prefix")
    cfg = IngestConfig(source=f"s3://{bucket}/videos", endpoint_url=s3_server.endpoint_url)
    raw = tmp_path / "raw"

    first = ingest(cfg, raw)
    assert sorted(first.copied) == ["a.mp4", "big.mkv", "sub dir/b é.mp4"]
    assert first.verified_by["a.mp4"] == "md5" and first.verified_by["sub dir/b é.mp4"] == "md5"
    assert first.verified_by["big.mkv"] == "md5 of parts"
    assert [s["key"] for s in first.skipped] == ["videos/../escape.mp4"]
    assert (raw / "a.mp4").read_bytes() == videos[0].read_bytes()
    assert (
        hashlib.sha256((raw / "big.mkv").read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    )
    assert first.bytes_copied == sum(p.stat().st_size for p in (videos[0], videos[1], big))

    second = ingest(cfg, raw)
    assert second.copied == [] and second.unchanged == 3

    client.put_object(Bucket=bucket, Key="videos/a.mp4", Body=videos[1].read_bytes())  # changed at the source
    client.upload_file(str(videos[0]), bucket, "videos/new.mp4")
    third = ingest(cfg, raw)
    assert sorted(third.copied) == ["a.mp4", "new.mp4"] and third.unchanged == 2
    assert (raw / "a.mp4").read_bytes() == videos[1].read_bytes()

    assert "copied a.mp4" in caplog.text
    for text in (caplog.text, third.summary(), json.dumps(cfg.model_dump()), (raw / STATE).read_text()):
        assert SECRET not in text and KEY_ID not in text


class _CorruptingClient:
    """A real client whose downloads lose their last byte, as a broken transfer would."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self._client = client

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._client, name)

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        self._client.download_file(bucket, key, filename)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, different content


@pytest.mark.services
def test_a_copy_that_does_not_match_is_refused_and_not_kept(s3_server, aws_env, tmp_path: Path) -> None:  # noqa: ANN001
    client = s3_server.client()
    bucket = s3_server.new_bucket("corrupt")
    client.put_object(Bucket=bucket, Key="v/a.mp4", Body=b"video bytes" * 100)
    cfg = IngestConfig(source=f"s3://{bucket}/v", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(IngestError, match="md5 of the copy is"):
        ingest(cfg, tmp_path / "raw", client=_CorruptingClient(client))
    assert list((tmp_path / "raw").iterdir()) == []  # neither the file nor a temporary is left
    assert ingest(cfg, tmp_path / "raw").copied == ["a.mp4"]  # the next run copies it


def test_folder_ingest_is_incremental_and_verified(tmp_path: Path) -> None:
    src = tmp_path / "incoming"
    (src / "sub").mkdir(parents=True)
    (src / "a.mp4").write_bytes(b"a" * 100)
    (src / "sub" / "b.MKV").write_bytes(b"b" * 50)
    raw = tmp_path / "raw"
    first = ingest(IngestConfig(source=str(src)), raw)
    assert sorted(first.copied) == ["a.mp4", "sub/b.MKV"] and first.verified_by["a.mp4"] == "sha256"
    assert ingest(IngestConfig(source=str(src)), raw).copied == []
    (src / "c.mp4").write_bytes(b"c")
    assert ingest(IngestConfig(source=str(src)), raw).copied == ["c.mp4"]
    assert ingest(IngestConfig(), raw).copied == []  # no source: nothing to do


def test_config_and_uri_rules() -> None:
    assert parse_s3_uri("s3://bucket/some/prefix/") == ("bucket", "some/prefix/")
    assert parse_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(IngestError, match="no bucket"):
        parse_s3_uri("s3:///x")
    with pytest.raises(ValueError, match="credentials do not belong in a URL") as refused:
        IngestConfig(endpoint_url="http://AKIA:secret@127.0.0.1:9000")
    assert "secret" not in str(refused.value)

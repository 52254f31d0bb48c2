"""Hostile object keys and links in an ingest source: each is refused with a line in the report, the rest copied."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.config import IngestConfig
from pipelines.ingest import STATE, ingest


@pytest.fixture
def aws_env(s3_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPVDMSECURITYTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "pvdm-security-test")


HOSTILE = {
    "videos/.": "'.'",
    "videos/./x.mp4": "'.'",
    "videos/a//b.mp4": "empty",
    "videos/../x.mp4": "'..'",
    f"videos/{STATE}": "hidden",
    f"videos/{STATE}.partial": "hidden",
    "videos/sub/.dvcignore": "hidden",
    "videos/tab\there.mp4": "control characters",
    "videos/outside/stolen.mp4": "leads outside",
    "videos/taken": "is a folder",
}


@pytest.mark.services
def test_hostile_keys_are_each_refused_and_the_good_objects_copied(
    s3_server,
    aws_env,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    client, bucket = s3_server.client(), s3_server.new_bucket("hostile")
    for key in [*HOSTILE, "videos/good.mp4", "videos/sub/good too.mp4"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"video bytes of " + key.encode())
    raw, elsewhere = tmp_path / "raw", tmp_path / "elsewhere"
    raw.mkdir(), elsewhere.mkdir()
    (raw / "outside").symlink_to(elsewhere, target_is_directory=True)  # a link in raw leading out of it
    (raw / "taken").mkdir()

    report = ingest(IngestConfig(source=f"s3://{bucket}/videos", endpoint_url=s3_server.endpoint_url), raw)

    assert sorted(report.copied) == ["good.mp4", "sub/good too.mp4"]
    reasons = {s["key"]: s["reason"] for s in report.skipped}
    assert set(reasons) == set(HOSTILE)
    for key, why in HOSTILE.items():
        assert why in reasons[key], (key, reasons[key])
    assert not list(elsewhere.iterdir())  # nothing written through the link
    assert set(json.loads((raw / STATE).read_text())) == {"good.mp4", "sub/good too.mp4"}
    assert not [p for p in raw.rglob("*.partial")]
    assert "! videos/../x.mp4" in report.summary()


def test_a_folder_source_does_not_follow_links_out_of_it(tmp_path: Path) -> None:
    source, raw, secret = tmp_path / "incoming", tmp_path / "raw", tmp_path / "secret.txt"
    source.mkdir()
    secret.write_text("not for the dataset")
    (source / "good.mp4").write_bytes(b"video")
    os.symlink(secret, source / "link.mp4")
    report = ingest(IngestConfig(source=str(source)), raw)
    assert report.copied == ["good.mp4"] and not (raw / "link.mp4").exists()
    [skipped] = report.skipped
    assert skipped["key"] == "link.mp4" and "outside the source folder" in skipped["reason"]

"""Paths a flow parameter or the raw folder can name stay inside the project; a flow's `source` is validated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.config import PipelineParams
from pipelines.flows import ingest_config
from pipelines.project import ALLOWED_PROJECTS_ENV, CODE_ROOT, ProjectNotAllowed, flow_project
from pipelines.raw_links import BEGIN, hide_broken_links, ignore_pattern
from tests.pipelines.projects import make_project, project_env


def test_a_flow_runs_only_in_its_own_project_unless_another_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv(ALLOWED_PROJECTS_ENV, raising=False)
    assert flow_project(CODE_ROOT) == CODE_ROOT
    with pytest.raises(ProjectNotAllowed, match=f"{other}.*{ALLOWED_PROJECTS_ENV}"):
        flow_project(str(other))
    monkeypatch.setenv(ALLOWED_PROJECTS_ENV, f"/nowhere:{other}")
    assert flow_project(str(other)) == other.resolve()


@pytest.mark.parametrize(
    ("source", "message"),
    [("s3://AKIAKEY:hunter2pass@bucket/videos", "credentials"), ("ftp://host/videos", "s3://")],
)
def test_a_flow_source_is_validated_like_the_cli_one(source: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        ingest_config(PipelineParams(), source)
    assert message in str(err.value) and "hunter2pass" not in str(err.value)


def test_ignore_patterns_match_only_the_named_file(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw"
    assert ignore_pattern(tmp_path, raw / "a*b?[c].mp4") == "/data/raw/a\\*b\\?\\[c\\].mp4"
    assert ignore_pattern(tmp_path, raw / "trailing .mp4 ") == "/data/raw/trailing .mp4\\ "
    with pytest.raises(ValueError, match="line break"):
        ignore_pattern(tmp_path, raw / "two\nlines.mp4")


@pytest.mark.slow
def test_a_broken_link_in_raw_is_reported_by_preprocess_under_dvc_and_the_others_processed(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "project", videos=5)
    raw = project / "data" / "raw"
    (raw / "gone [1].mp4").symlink_to(tmp_path / "deleted.mp4")
    dvc = [sys.executable, "-m", "dvc", "repro", "--single-item", "preprocess"]
    stopped = subprocess.run(dvc, cwd=project, env=project_env(), capture_output=True, text=True, timeout=600)
    assert (
        stopped.returncode != 0 and "No such file or directory" in stopped.stdout + stopped.stderr
    )  # DVC alone

    assert hide_broken_links(project) == ["gone [1].mp4"]
    ran = subprocess.run(dvc, cwd=project, env=project_env(), capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    report = json.loads((project / "data" / "clips" / "report.json").read_text())
    rejected = {r["source"]: r["reason"] for r in report["rejected"]}
    assert "broken symbolic link" in rejected["gone [1].mp4"] and len(report["processed"]) == 5

    (tmp_path / "deleted.mp4").write_bytes((raw / "synth_0000.mp4").read_bytes())  # the link works again
    assert hide_broken_links(project) == []
    assert BEGIN not in (project / ".dvcignore").read_text()


def test_a_folder_source_outside_the_project_needs_the_explicit_flag(tmp_path: Path) -> None:
    from pipelines.ingest import IngestError, ingest

    project, outside = tmp_path / "project", tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd.mp4").write_text("root:x:0:0")
    with pytest.raises(IngestError, match="outside the project.*ingest.allow_outside_paths"):
        ingest(ingest_config(PipelineParams(), str(outside)), project / "data" / "raw")
    assert not list((project / "data" / "raw").iterdir())
    allowed = ingest_config(PipelineParams(), str(outside)).model_copy(update={"allow_outside_paths": True})
    assert ingest(allowed, project / "data" / "raw").copied == ["passwd.mp4"]

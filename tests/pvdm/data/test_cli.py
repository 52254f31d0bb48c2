from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pvdm.cli import main


def test_synth_preprocess_inspect(tmp_path: Path) -> None:
    runner = CliRunner()
    raw, out = tmp_path / "raw", tmp_path / "clips"
    result = runner.invoke(main, ["synth", str(raw), "--videos", "3", "--size", "32", "--frames", "24"])
    assert result.exit_code == 0 and "wrote 3 videos" in result.output and "class folders" in result.output
    (raw / "junk.mp4").write_bytes(b"")
    args = [
        "preprocess",
        "--raw",
        str(raw),
        "--out",
        str(out),
        "--resolution",
        "16",
        "--frames",
        "8",
        "--no-progress",
    ]
    result = runner.invoke(main, args)
    assert (
        result.exit_code == 1 and "1 of 4 video files rejected (25% > " in result.output
    )  # default limit 20%

    params = tmp_path / "params.yaml"
    params.write_text("preprocess:\n  max_rejected_fraction: 0.5\n  workers: 1\n  labels: folder\n")
    result = runner.invoke(main, [*args, "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "3 videos processed" in result.output and "`junk.mp4`: empty file (0 bytes)" in result.output

    result = runner.invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0 and "9 clips from 3 videos" in result.output
    assert "labels: 2 classes (checkers, stripes)" in result.output
    assert (
        "clip shape (T, H, W, C): (8, 16, 16, 3)" in result.output and "junk.mp4: empty file" in result.output
    )

    result = runner.invoke(main, ["inspect", str(raw), "--json"])
    info = json.loads(result.output)
    sources = ["checkers/synth_0001.mp4", "stripes/synth_0000.mp4", "stripes/synth_0002.mp4"]
    assert [v["source"] for v in info["videos"]] == sources
    assert info["videos"][0]["frames"] == 24 and info["unusable"] == [
        {"source": "junk.mp4", "reason": "empty file (0 bytes)"}
    ]

    params.write_text("preprocess:\n  frame_strid: 2\n")
    result = runner.invoke(main, [*args, "--params", str(params)])
    assert result.exit_code == 1 and "preprocess.frame_strid: unknown key" in result.output

"""What the flows build on, without Prefect: params overrides (validated, comments kept), DVC stage order, one
stage run through DVC with its output streamed and its failure reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.project import StageFailed, apply_overrides, dvc_pending, dvc_stages, run_dvc_stage
from pvdm.config import ConfigError
from tests.pipelines.projects import ROOT, run


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_overrides_are_validated_then_written_keeping_comments(demo: Path) -> None:
    before = (demo / "params.yaml").read_text()
    params = apply_overrides(
        demo, {"diffusion.train.lr": 0.0002, "orchestration.retrain_cron": "*/5 * * * *"}
    )
    assert params.diffusion.train.lr == 0.0002 and params.orchestration.retrain_cron == "*/5 * * * *"
    after = (demo / "params.yaml").read_text()
    assert after.count("#") == before.count("#")  # every comment kept
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert len(changed) == 2 and changed[0] == "    lr: 0.0002"
    assert (
        changed[1].startswith('  retrain_cron: "*/5 * * * *"') and "# when" in changed[1]
    )  # quotes, comment kept
    assert "gan_start_step: null" in after  # None round-trips as null


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"diffusion.train.lrr": 0.1}, "overrides: diffusion.train.lrr: unknown key"),
        ({"diffusion.train.lr": -1.0}, "overrides: diffusion.train.lr: Input should be greater than 0"),
        ({"data.resolution.x": 1}, "overrides: data.resolution.x: data.resolution is a value, not a section"),
        ({"runtime..seed": 1}, "is not a dotted params key"),
        ({"data.frames": "16"}, "overrides: data.frames: "),  # strict: no coercion from a string
    ],
)
def test_a_bad_override_fails_naming_the_key_and_changes_nothing(
    demo: Path, overrides: dict, message: str
) -> None:
    before = (demo / "params.yaml").read_text()
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        apply_overrides(demo, overrides)
    assert (demo / "params.yaml").read_text() == before


def test_stages_come_in_dependency_order_whatever_the_file_order(demo: Path) -> None:
    assert dvc_stages(demo) == [
        "preprocess", "train_autoencoder", "cache_latents", "train_diffusion", "sample", "evaluate"
    ]  # fmt: skip
    spec = yaml.safe_load((demo / "dvc.yaml").read_text())
    spec["stages"] = dict(reversed(list(spec["stages"].items())))
    (demo / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    order = dvc_stages(demo)
    assert order.index("preprocess") < order.index("cache_latents") < order.index("train_diffusion")
    assert order.index("train_autoencoder") < order.index("sample") < order.index("evaluate")


@pytest.mark.slow
def test_a_stage_runs_through_dvc_is_skipped_when_unchanged_and_reports_failures(tmp_path: Path) -> None:
    stages = {
        "make": {"cmd": "python -c \"open('out.txt','w').write('x')\"", "outs": ["out.txt"]},
        "copy": {"cmd": "python -c \"open('copy.txt','w').write(open('out.txt').read())\"", "deps": ["out.txt"],
                 "outs": ["copy.txt"]},
        "broken": {"cmd": "python -c \"raise SystemExit('the stage broke: no space left')\"", "deps": ["copy.txt"],
                   "outs": ["never.txt"]},
    }  # fmt: skip
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    run(["git", "init", "-q"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    lines: list[str] = []
    first = run_dvc_stage(tmp_path, "make", "t1", echo=lines.append)
    assert first.ran and "Running stage 'make':" in lines
    assert not run_dvc_stage(tmp_path, "make", "t2", echo=lines.append).ran
    assert run_dvc_stage(tmp_path, "copy", "t3").ran and (tmp_path / "copy.txt").read_text() == "x"
    assert dvc_pending(tmp_path) == ["broken"]
    with pytest.raises(StageFailed, match="DVC stage 'broken' failed") as err:
        run_dvc_stage(tmp_path, "broken", "t4")
    assert "the stage broke: no space left" in str(err.value)

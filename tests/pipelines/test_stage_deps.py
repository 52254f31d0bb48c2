"""dvc.yaml's code deps follow what each stage imports (pipelines.stage_deps), and no stage depends on where its
work runs: a change to code a stage may run reruns it, a change of worker count or storage reruns nothing."""

from __future__ import annotations

import pytest
import yaml

from pipelines.stage_deps import DVC_YAML, ROOT, closure, code_files, imported
from pvdm.config.runtime import PLACEMENT_KEYS

# where the work runs; `device` stays a param of the stages that sample and encode (it changes their numerics)
PLACEMENT = PLACEMENT_KEYS - {"device"}
STAGES = yaml.safe_load(DVC_YAML.read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_one_of_its_deps(stage: str) -> None:
    deps = [ROOT / d for d in STAGES[stage]["deps"]]
    missing = sorted(
        str(f.relative_to(ROOT))
        for f in code_files(STAGES[stage])
        if not any(f == d or f.is_relative_to(d) for d in deps)
    )
    assert not missing, (
        f"dvc.yaml: stage {stage} imports code it does not depend on: {', '.join(missing)} "
        "(`python -m pipelines.stage_deps --write` updates it)"
    )


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_no_stage_reruns_for_where_its_work_runs(stage: str) -> None:
    params = STAGES[stage].get("params", [])
    assert "runtime" not in params, (
        f"{stage}: list the runtime keys that change results, not the whole section"
    )
    assert not {p.split(".", 1)[1] for p in params if p.startswith("runtime.")} & PLACEMENT


def test_the_import_walk_sees_imports_inside_functions_and_the_family_folders() -> None:
    assert "pipelines.ray_train" in imported("pipelines.stages.train_autoencoder")  # imported inside train()
    sample = closure("pipelines.stages.sample")
    assert {
        "pipelines.cluster",
        "pvdm.diffusion.samplers",
        "pvdm.families.vidm.sampler",
        "pvdm.models.unet3d",
    } <= sample
    assert "pvdm.training.diffusion" not in sample  # sampling does not run the training code


def test_a_missing_dep_is_caught(tmp_path) -> None:  # noqa: ANN001
    stage = {
        "cmd": "python -m pipelines.stages.sample",
        "deps": ["data/models/diffusion.pt", "pipelines", "pvdm/data"],
    }
    files = code_files(stage)
    covered = [f for f in files if any(f.is_relative_to(ROOT / d) for d in stage["deps"])]
    assert ROOT / "pvdm" / "sampling.py" in set(files) - set(covered)

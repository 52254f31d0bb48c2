"""The project a flow works on: its params (with validated overrides) and its DVC stages, run one at a time.

Plain functions, no Prefect: the flows (pipelines/flows.py, pipelines/retrain.py) wrap them in tasks. DVC owns
caching and lineage: a stage runs as `dvc repro --single-item <stage>`, so DVC skips it when nothing it depends on
changed, exactly as a plain `dvc repro` would.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from pipelines.config import PipelineParams, load_pipeline_params, parse_pipeline_params
from pipelines.paths import current_root
from pvdm.config import ConfigError
from pvdm.config.base import load_yaml

RAN = re.compile(r"^Running stage '(?P<stage>[^']+)'")
TAIL_LINES = 40  # lines of a failed stage's output quoted in the error (the UI shows the message)


class StageFailed(RuntimeError):
    """A DVC stage exited with an error; the message quotes the end of its output."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    ran: bool  # False: DVC found nothing changed and skipped it
    seconds: float


def project_root(project: str | Path | None = None) -> Path:
    """The project folder (where dvc.yaml and params.yaml are): `project`, else $PVDM_ROOT, else the cwd."""
    root = Path(project).resolve() if project else current_root()
    if not (root / "dvc.yaml").is_file():
        raise FileNotFoundError(f"{root} is not a pvdm project (no dvc.yaml)")
    return root


CODE_ROOT = Path(__file__).resolve().parents[1]  # the project whose pipelines/ this module was imported from
ALLOWED_PROJECTS_ENV = "PVDM_ALLOWED_PROJECTS"


class ProjectNotAllowed(PermissionError):
    """A flow run named a project other than the one it was deployed from."""


def flow_project(project: str | Path | None = None) -> Path:
    """The project a flow run may work in: its `project` parameter (or $PVDM_ROOT, or the cwd) when that is the
    project the flow's code belongs to (deployments run from it), or one listed in $PVDM_ALLOWED_PROJECTS
    (os.pathsep-separated). A flow parameter is anyone's input; it must not point `dvc repro` at any folder."""
    root = project_root(project)
    allowed = {CODE_ROOT} | {
        Path(p).resolve() for p in os.environ.get(ALLOWED_PROJECTS_ENV, "").split(os.pathsep) if p.strip()
    }
    if root not in allowed:
        raise ProjectNotAllowed(
            f"project {root} is not the one this flow was deployed from ({CODE_ROOT}); to let its flows run "
            f"there, list it in ${ALLOWED_PROJECTS_ENV} of the process that runs them"
        )
    return root


# --- params overrides -------------------------------------------------------------------------------------------


def apply_overrides(root: Path, overrides: Mapping[str, Any] | None) -> PipelineParams:
    """Validate `{"diffusion.train.lr": 2e-4, ...}` against the whole params, then write them into params.yaml.

    Like `dvc exp run -S key=value` in the workspace: the file keeps its comments and layout, and `dvc repro`
    and `dvc params diff` see exactly what the run used. A bad key or value raises ConfigError naming it, before
    anything is written or run."""
    path = root / "params.yaml"
    if not overrides:
        return load_pipeline_params(path)
    data = copy.deepcopy(load_yaml(path))
    for key, value in overrides.items():
        _set_dotted(data, key, value)
    parse_pipeline_params(data, source="overrides")  # raises before any change
    rt = YAML()  # round-trip: comments and key order survive
    rt.preserve_quotes = True
    rt.representer.add_representer(type(None), _null)  # `null` stays `null`, not an empty value
    doc = rt.load(path.read_text())
    for key, value in overrides.items():
        _set_dotted(doc, key, value)
    with path.open("w") as f:
        rt.dump(doc, f)
    return load_pipeline_params(path)


def _null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *sections, leaf = key.split(".")
    if not leaf or any(not s for s in sections):
        raise ConfigError(f"overrides: {key!r} is not a dotted params key like diffusion.train.lr")
    node = data
    for depth, section in enumerate(sections):
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"overrides: {key}: {'.'.join(sections[: depth + 1])} is a value, not a section"
            )
        node = child
    node[leaf] = value


# --- DVC stages ---------------------------------------------------------------------------------------------------


def dvc_stages(root: Path) -> list[str]:
    """The stages of dvc.yaml in an order that runs each after the stages whose outs it depends on."""
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    outs = {name: [_path(o) for o in spec.get("outs", [])] for name, spec in stages.items()}
    needs = {
        name: {up for up in stages if up != name and _reads_any(spec.get("deps", []), outs[up])}
        for name, spec in stages.items()
    }
    order: list[str] = []
    while len(order) < len(stages):
        ready = [s for s in stages if s not in order and needs[s] <= set(order)]
        if not ready:
            raise ValueError(f"dvc.yaml: the stages {sorted(set(stages) - set(order))} depend on each other")
        order.append(ready[0])
    return order


def _path(entry: str | dict[str, Any]) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def _reads_any(deps: list[str | dict[str, Any]], outs: list[str]) -> bool:
    return any(_path(d) == o or _path(d).startswith(f"{o.rstrip('/')}/") for d in deps for o in outs)


def dvc_env(pipeline_id: str) -> dict[str, str]:
    """The environment of a stage: this venv's executables first (DVC runs `python -m ...`), the pipeline id."""
    bindir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PVDM_PIPELINE_ID": pipeline_id,
        "PYTHONUNBUFFERED": "1",
    }


def run_dvc_stage(
    root: Path, stage: str, pipeline_id: str, echo: Callable[[str], None] = print
) -> StageResult:
    """`dvc repro --single-item <stage>` in the project, each output line passed to `echo`.

    Raises StageFailed (with the last lines of output) when the stage fails."""
    argv = [sys.executable, "-m", "dvc", "repro", "--single-item", stage]
    start = time.monotonic()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    ran = False
    with subprocess.Popen(
        argv, cwd=root, env=dvc_env(pipeline_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            tail.append(line)
            ran = ran or bool(RAN.match(line))
            echo(line)
    if proc.returncode != 0:
        raise StageFailed(
            f"DVC stage {stage!r} failed (exit {proc.returncode}); the end of its output:\n" + "\n".join(tail)
        )
    return StageResult(stage, ran, round(time.monotonic() - start, 1))


def dvc_pending(root: Path) -> list[str]:
    """Stages `dvc status` reports as changed (not yet reproduced with the current data, code and params)."""
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=root,
        env=dvc_env("status"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"dvc status failed in {root}:\n{out.stderr[-2000:]}")
    return sorted(yaml.safe_load(out.stdout or "{}") or {})

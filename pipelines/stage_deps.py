"""The code each DVC stage runs, derived from its imports, and dvc.yaml's code deps kept equal to it.

    uv run --frozen python -m pipelines.stage_deps            # print each stage's code deps
    uv run --frozen python -m pipelines.stage_deps --write    # rewrite them in dvc.yaml (data deps are kept)

A stage's code is every pvdm / pipelines module its entry point imports, at module level or inside functions,
followed transitively; params validation loads every family folder's `config.py`, the model registry every
`build.py` (pvdm.families.load_families, with no import statement to follow). It is a superset of what one run
executes (a stage running one family may import all of them), so a change to code a stage may run always reruns
it, and a change to code it cannot run (a sampler, for the training stages) does not. tests/pipelines/test_stage_deps.py fails when dvc.yaml misses
a module.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pvdm", "pipelines")
DVC_YAML = ROOT / "dvc.yaml"


def module_file(name: str, root: Path = ROOT) -> Path | None:
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported(name: str, root: Path = ROOT) -> set[str]:
    """The pvdm / pipelines modules `name` imports anywhere in its source (functions included)."""
    path = module_file(name, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    found |= family_parts(name, root)
    return {m for m in found if m.split(".")[0] in PACKAGES and module_file(m, root)}


# load_families(part) imports every family folder's `part` module (pkgutil: no import statement to follow).
LOADS_FAMILIES = {
    "pvdm.config.models": "config",
    "pvdm.families.catalog": "config",
    "pvdm.families.registry": "build",
}


def family_parts(name: str, root: Path = ROOT) -> set[str]:
    part = LOADS_FAMILIES.get(name)
    if part is None:
        return set()
    return {
        f"pvdm.families.{p.parent.name}.{part}" for p in (root / "pvdm" / "families").glob(f"*/{part}.py")
    }


def closure(entry: str, root: Path = ROOT) -> set[str]:
    """Every module importing `entry` runs: its imports, theirs, and the packages' __init__ on the way."""
    seen, todo = set(), [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if module_file(".".join(parts[:i]), root)]
        todo += sorted(imported(name, root) - seen)
    return seen


def entry_module(cmd: str) -> str:
    return cmd.split("-m", 1)[1].split()[0]


def code_files(stage: dict, root: Path = ROOT) -> set[Path]:
    return {module_file(m, root) for m in closure(entry_module(stage["cmd"]), root)}


def compact(files: set[Path], root: Path = ROOT) -> list[str]:
    """The files as dvc deps: a folder where every .py under it is among them, else the files."""
    chosen: list[str] = []

    def visit(folder: Path) -> None:
        every = {p for p in folder.rglob("*.py") if "__pycache__" not in p.parts}
        if every and every <= files:
            chosen.append(str(folder.relative_to(root)))
            return
        for p in sorted(folder.iterdir()):
            if p.is_dir() and any(f.is_relative_to(p) for f in files):
                visit(p)
            elif p.suffix == ".py" and p in files:
                chosen.append(str(p.relative_to(root)))

    for package in PACKAGES:
        visit(root / package)
    return chosen


def write(path: Path = DVC_YAML) -> None:
    """Replace each stage's code deps (pvdm/ and pipelines/ paths) by the derived ones, keeping data deps."""
    text = path.read_text()
    stages = yaml.safe_load(text)["stages"]
    for name, stage in stages.items():
        block = re.search(rf"\n  {name}:\n    cmd: [^\n]*\n    deps:\n((?:      - [^\n]*\n)+)", text)
        data = [
            line for line in block.group(1).splitlines() if not line.split("- ", 1)[1].startswith(PACKAGES)
        ]
        code = [f"      - {dep}" for dep in compact(code_files(stage))]
        text = text[: block.start(1)] + "\n".join(data + code) + "\n" + text[block.end(1) :]
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = parser.parse_args()
    if args.write:
        write()
        print(f"updated {DVC_YAML}")
        return
    for name, stage in yaml.safe_load(DVC_YAML.read_text())["stages"].items():
        print(f"{name}: {' '.join(compact(code_files(stage)))}")


if __name__ == "__main__":
    main()

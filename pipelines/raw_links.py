"""Broken symbolic links in the raw folder, hidden from DVC so that one of them cannot stop the whole pipeline.

DVC hashes the folder the preprocess stage depends on and stops at the first link whose target is gone, before any
stage runs, with a bare "[Errno 2] No such file or directory". `pvdm preprocess` reports such a link itself (as it
reports every unusable file) and processes the other videos. So every entry point that runs `dvc repro` (`make demo`,
the Prefect flows) first lists the broken links here, logs each one, and writes them into a block of the project's
`.dvcignore` that this module owns; a link that works again leaves the block on the next run.

    uv run --frozen python -m pipelines.raw_links [--project DIR]
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from pvdm.atomic import write_text_atomic
from pvdm.data.sources import unusable_reason

log = logging.getLogger("pvdm.raw_links")
BEGIN = "# >>> pvdm: broken symbolic links in data/raw (DVC cannot hash them; preprocess reports them). Managed by pvdm."
END = "# <<< pvdm"
_GITIGNORE_SPECIAL = "\\*?[]"


def broken_links(raw: Path) -> list[Path]:
    """Links under `raw` whose target does not exist (links to folders are not followed)."""
    found = []
    for folder, dirs, files in os.walk(raw):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink() and not path.exists():
                found.append(path)
    return sorted(found)


def ignore_pattern(root: Path, path: Path) -> str:
    """The .dvcignore line matching exactly `path` (anchored at the project, gitignore specials escaped)."""
    rel = path.relative_to(root).as_posix()
    if "\n" in rel or "\r" in rel:
        raise ValueError(f"{rel!r}: a file name with a line break cannot be listed in .dvcignore; rename it")
    escaped = "".join(f"\\{c}" if c in _GITIGNORE_SPECIAL else c for c in rel)
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return f"/{escaped}"


def hide_broken_links(root: Path) -> list[str]:
    """Log each broken link of root/data/raw and make the managed .dvcignore block list exactly them."""
    raw = root / "data" / "raw"
    broken = broken_links(raw) if raw.is_dir() else []
    for path in broken:
        log.warning(
            "%s: %s: hidden from DVC; preprocess reports it and processes the other videos",
            path.relative_to(root),
            unusable_reason(path),
        )
    block = [BEGIN, *(ignore_pattern(root, p) for p in broken), END] if broken else []
    _rewrite_block(root / ".dvcignore", block)
    return [p.relative_to(raw).as_posix() for p in broken]


def _rewrite_block(path: Path, block: list[str]) -> None:
    if not block and not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    if BEGIN in lines and END in lines[lines.index(BEGIN) :]:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
        lines = lines[:start] + lines[end + 1 :]
    text = "\n".join(lines + block) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


@click.command()
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True)
def main(project: Path) -> None:
    """List the broken symbolic links of data/raw and hide them from DVC (pvdm preprocess reports them)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hidden = hide_broken_links(project.resolve())
    click.echo(
        f"data/raw: {len(hidden)} broken symbolic link(s) hidden from DVC"
        if hidden
        else "data/raw: no broken links"
    )


if __name__ == "__main__":
    main()

"""The boundaries of docs/architecture.md and the family seam, held by import-linter (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contract_holds() -> None:
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "3 kept, 0 broken" in result.stdout
    )  # layering, models loaded outside training, no Ray in preprocess and the shared stage code

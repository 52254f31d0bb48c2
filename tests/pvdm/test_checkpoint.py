from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm.checkpoint import (
    CheckpointError,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    step_checkpoint_path,
)


def test_round_trip_and_latest(tmp_path: Path) -> None:
    for step in (5, 40, 12):
        save_checkpoint(
            step_checkpoint_path(tmp_path, step), {"step": step, "w": torch.full((3,), float(step))}
        )
    (tmp_path / ".step_00000099.pt.abc.tmp").write_bytes(b"partial")  # a torn temp file is never "latest"
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step_00000040.pt"
    payload = load_checkpoint(latest)
    assert payload["step"] == 40 and torch.equal(payload["w"], torch.full((3,), 40.0))
    assert latest_checkpoint(tmp_path / "none") is None


def test_corrupt_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "step_00000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="step_00000001.pt: not a readable checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_loading_refuses_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": Path("/etc")}, path)  # an arbitrary class: weights_only must refuse it
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_rng_state_round_trip() -> None:
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_kill_during_save_leaves_the_previous_checkpoint_readable(tmp_path: Path) -> None:
    """SIGKILL a process that rewrites the same checkpoint in a loop; the file must always load."""
    target = tmp_path / "ckpt.pt"
    save_checkpoint(target, {"step": 0, "w": torch.zeros(1 << 20)})
    script = textwrap.dedent(f"""
        import torch
        from pvdm.checkpoint import save_checkpoint
        step = 0
        print("ready", flush=True)
        while True:
            step += 1
            save_checkpoint({str(target)!r}, {{"step": step, "w": torch.full((1 << 20,), float(step))}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    for _ in range(20):  # let it write a few, then kill it mid-stream
        if load_checkpoint(target)["step"] > 3:
            break
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.2)"], check=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    payload = load_checkpoint(target)
    assert payload["step"] > 0
    assert torch.equal(payload["w"], torch.full((1 << 20,), float(payload["step"])))

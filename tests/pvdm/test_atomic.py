from __future__ import annotations

import os
from pathlib import Path

import pytest

from pvdm.atomic import atomic_path, atomic_write, remove_partial, write_text_atomic


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_text_atomic(target, "old")
    write_text_atomic(target, "néw", durable=False)
    assert target.read_text(encoding="utf-8") == "néw" and os.listdir(target.parent) == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.pt"]


def test_the_temporary_is_hidden_beside_the_target_with_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".video.mp4.") and tmp.name.endswith(".partial")
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_remove_partial_deletes_only_the_temporaries_of_that_file(tmp_path: Path) -> None:
    for name in (".a.npy.1234abcd.partial", ".a.npy.ffff0000.partial", ".b.npy.1234abcd.partial", "a.npy"):
        (tmp_path / name).write_bytes(b"")
    remove_partial(tmp_path / "a.npy")
    assert sorted(os.listdir(tmp_path)) == [".b.npy.1234abcd.partial", "a.npy"]

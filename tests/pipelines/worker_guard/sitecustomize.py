"""Loaded by every Python process of the Ray nodes a cluster test starts with this folder on PYTHONPATH.

It stands for a node without the driver's file system: any open, listing or stat of a path under the folders in
PVDM_TEST_FORBIDDEN_PATHS is recorded in PVDM_TEST_FORBIDDEN_LOG and fails with PermissionError, as it would fail
with FileNotFoundError on a node where the driver's project does not exist.
"""

import os
import sys

_ROOTS = [r for r in os.environ.get("PVDM_TEST_FORBIDDEN_PATHS", "").split(os.pathsep) if r]
_LOG = os.environ.get("PVDM_TEST_FORBIDDEN_LOG", "")
_EVENTS = {
    "open",
    "os.listdir",
    "os.scandir",
    "os.stat",
    "os.mkdir",
    "os.rename",
    "os.remove",
    "shutil.copyfile",
}


def _forbidden(path: object) -> str | None:
    if not isinstance(path, str | bytes | os.PathLike):
        return None
    full = os.path.abspath(os.fsdecode(path))
    return full if any(full == r or full.startswith(r + os.sep) for r in _ROOTS) else None


def _guard(event: str, args: tuple) -> None:
    if event in _EVENTS and args and (full := _forbidden(args[0])):
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {event} {full}\n")
        raise PermissionError(f"a worker opened the driver's path {full}")


if _ROOTS and _LOG:
    sys.addaudithook(_guard)

"""Model families: one folder each, `pvdm/families/<name>/`, holding its config sections (`config.py`), its builders
(registered in its `__init__.py`), its networks or imports of shared ones from pvdm/models/, and its own sampler if
it samples its own way. The roles every stage talks to are in `roles`; building and loading is `registry`.

Every sub-package here is a family, so adding one edits no file outside its folder. Each folder has two entry
modules, loaded by `load_families`: `config.py` (its config sections and its catalog entry, pvdm.families.catalog:
what params validation and `pvdm compare` need) and `build.py` (its builders, importing its networks: what
building or loading a model needs, pvdm.families.registry). The folder's `__init__.py` imports nothing, so a stage
that only validates params never imports a network (and DVC reruns it only for code it can run:
pipelines.stage_deps).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import cache
from typing import Literal

PARTS = ("config", "build")


@cache
def family_packages() -> tuple[str, ...]:
    """The family folders, as module names, in name order."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__, prefix=f"{__name__}.") if m.ispkg))


def load_families(part: Literal["config", "build"] = "build") -> None:
    """Import every family folder's `part` module (registering on import; a no-op after the first time)."""
    for package in family_packages():
        if importlib.util.find_spec(f"{package}.{part}") is not None:
            importlib.import_module(f"{package}.{part}")

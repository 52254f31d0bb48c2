"""Model families: one folder each, `pvdm/families/<name>/`, holding its config sections (`config.py`), its builders
(registered in its `__init__.py`), its networks or imports of shared ones from pvdm/models/, and its own sampler if
it samples its own way. The roles every stage talks to are in `roles`; building and loading is `registry`.

A family folder registers itself when the families are loaded (`load_families`, run by config validation and by
the registry the first time either needs a family): every sub-package here is one, so adding a family edits no
file outside its folder. Loading imports only the folders' `__init__` and `config` modules; networks are
imported when a model is built.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache


@cache
def family_packages() -> tuple[str, ...]:
    """The family folders, as module names, in name order."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__, prefix=f"{__name__}.") if m.ispkg))


def load_families() -> None:
    for name in family_packages():
        importlib.import_module(name)  # registers on import; a no-op after the first time

"""Model-family config sections as extensible discriminated unions.

`autoencoder.model` and `diffusion.denoiser` each hold one family's section, chosen by its `type` key. Each family
registers its strict section class here (`register_model_config`), so the union grows with a new module and no
edit to the parent sections. Validation dispatches on `type`: an unknown type is one line naming the key and the
allowed values; a known type's section is validated strictly, its errors keep their full key path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pvdm.config.base import StrictModel

if TYPE_CHECKING:
    from pvdm.config.data import DataConfig
    from pvdm.families.latent_spec import LatentSpec

ROLES = ("autoencoder", "denoiser")
S = TypeVar("S", bound="ModelSpec")
_SECTIONS: dict[str, dict[str, type[ModelSpec]]] = {role: {} for role in ROLES}


class ModelSpec(StrictModel):
    """Base of every family section: `type` names the family member. Subclasses fix it with a Literal."""

    type: str

    def check_data(self, resolution: int, frames: int) -> None:
        """Cross-section rule against the clip geometry (`data`); raise ConfigError when it cannot work."""

    def latent_spec(self, data: DataConfig) -> LatentSpec:
        """An autoencoder section: the latents its model makes from clips of `data` (what the model's own
        `latent_spec` will say, computed without building it)."""
        raise NotImplementedError(f"{type(self).__name__} is not an autoencoder section")

    def accepts(self, spec: LatentSpec) -> str | None:
        """A denoiser section: None when it can model latents `spec`, else the reason it cannot. Pairing is
        checked on the latents, so a new autoencoder works with every denoiser that accepts what it makes."""
        return None


def describe_latents(spec: LatentSpec) -> str:
    """A short phrase for error messages: the latents' shape and layout."""
    return f"latents {tuple(spec.shape)} (layout {spec.layout or 'none'})"


def register_model_config(role: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: make a section (whose `type` field defaults to the family's name) a choice of `role`."""
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; roles: {', '.join(ROLES)}")

    def register(section: type[S]) -> type[S]:
        name = section.model_fields["type"].default
        if not isinstance(name, str) or not name:
            raise ValueError(f"{section.__name__}.type needs a default: the family's name")
        known = _SECTIONS[role].get(name)
        if known is not None and known.__qualname__ != section.__qualname__:
            raise ValueError(f"{role} type {name!r} is already registered by {known.__name__}")
        _SECTIONS[role][name] = section
        return section

    return register


def _load_families() -> None:
    """Every family folder registers its sections when imported (pvdm.families); imported here, when a section
    is first needed, so config validation and the model registry read the same list."""
    from pvdm.families import load_families

    load_families("config")


def model_types(role: str) -> list[str]:
    _load_families()
    return sorted(_SECTIONS[role])


def model_section(role: str, name: str) -> type[ModelSpec]:
    _load_families()
    if name not in _SECTIONS[role]:
        raise ValueError(f"unknown {role} type {name!r}; allowed: {', '.join(model_types(role))}")
    return _SECTIONS[role][name]


def dispatch_model_section(role: str, default: str, value: Any) -> ModelSpec:
    """Validate a raw mapping as the section its `type` names (`default` when the key is absent)."""
    _load_families()
    if isinstance(value, ModelSpec):
        model_section(role, value.type)  # must be a registered type
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping with a `type` key (one of: {', '.join(model_types(role))})")
    name = value.get("type", default)
    if not isinstance(name, str) or name not in _SECTIONS[role]:
        raise ValueError(f"unknown type {name!r} (allowed: {', '.join(model_types(role))})")
    return _SECTIONS[role][name].model_validate({**value, "type": name})

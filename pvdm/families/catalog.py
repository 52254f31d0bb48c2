"""The model families users pick by name: display name, the pair of config types, presets. Light: it loads the
families' config modules only (no networks), so `pvdm compare`, bench/ and the tests list families cheaply."""

from __future__ import annotations

from dataclasses import dataclass, field

from pvdm.families import load_families


@dataclass(frozen=True)
class Family:
    """A model family as users name it: an autoencoder type and a denoiser type, and its presets.

    presets: size name -> params file (relative to the project): "demo" is the one `pvdm compare` runs by default,
    the others are the paper sizes. The presets are the family's one size table: bench/ and the tests read them.
    order: the position in `pvdm compare`'s default table (PVDM first)."""

    name: str
    autoencoder: str
    denoiser: str
    presets: dict[str, str] = field(default_factory=dict)
    order: int = 100

    @property
    def pair(self) -> tuple[str, str]:
        return self.autoencoder, self.denoiser


_FAMILIES: dict[tuple[str, str], Family] = {}


def register_family(family: Family) -> Family:
    _FAMILIES[family.pair] = family
    return family


def families() -> list[Family]:
    """Every registered family, in `pvdm compare`'s order."""
    load_families("config")
    return sorted(_FAMILIES.values(), key=lambda f: (f.order, f.name))


def family_name(autoencoder: str, denoiser: str) -> str:
    """The name the papers use for a pair of types; any other pair is named by its two types."""
    load_families("config")
    found = _FAMILIES.get((autoencoder, denoiser))
    return found.name if found else f"{autoencoder}+{denoiser}"

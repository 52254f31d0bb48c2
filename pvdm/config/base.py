"""Strict pydantic base for every params.yaml section, and one-line error messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pvdm.redact import WHERE_CREDENTIALS_GO, has_credentials, redact

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A params value is wrong. The message is one line per problem, each naming the key."""


def inside_project(root: Path, value: str, key: str, flag: str, allow_outside: bool) -> Path:
    """The file a params value names, resolved against the project `root`; a path that leads out of it (a symbolic
    link included) is refused unless the setting `flag` allows it, so a params value cannot read ~/.aws."""
    path = (root / value).resolve()  # an absolute `value` stays itself
    if not allow_outside and not path.is_relative_to(root.resolve()):
        raise ConfigError(f"{key}: {value!r} is outside the project {root}; copy it in, or set {flag}: true")
    return path


class StrictModel(BaseModel):
    """Unknown keys fail, values are not coerced from other types, instances are frozen, NaN and infinity are no
    number any setting can mean."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_default=True,
        allow_inf_nan=False,
        hide_input_in_errors=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_credentials_in_urls(cls, value: Any) -> Any:
        # params.yaml is committed, hashed into dvc.lock and logged to MLflow: a secret in it leaks everywhere.
        if isinstance(value, str) and has_credentials(value):
            raise ValueError(WHERE_CREDENTIALS_GO)
        return value


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """Turn pydantic's multi-line report into `key.path: reason (got value)` lines."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        reason = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            reason = "unknown key"
        if not e["loc"]:  # a cross-field rule: its message already names the keys
            lines.append(f"{prefix + ': ' if prefix else ''}{reason}")
            continue
        got = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {e.get('input')!r})"
        lines.append(f"{key}: {reason}{got}")
    return redact("\n".join(lines))  # a refused value may hold a credential: never echo it


def validate_section(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate `data` against `model`, raising ConfigError with key-naming lines."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1 would read it as a string) and refuses a key given twice
    in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789"),
)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    with path.open() as f:
        try:
            data = yaml.load(f, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data

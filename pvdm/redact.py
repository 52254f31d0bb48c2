"""Credentials inside URLs (`s3://KEY:SECRET@bucket`, `http://user:pass@host`, `postgresql://u:p@db`): found and
masked in one place, which config errors, MLflow params, logs and stage errors all go through."""

from __future__ import annotations

import re
from typing import Any

# scheme://userinfo@ — userinfo is everything up to the last '@' before the host (no '/', whitespace or quote).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s'\"<>]+)@")
MASK = "***"

WHERE_CREDENTIALS_GO = (
    "credentials do not belong in a URL here: use the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
    "MLFLOW_TRACKING_USERNAME/PASSWORD), an AWS profile, or DVC's local config (dvc remote modify --local)"
)


def has_credentials(text: str) -> bool:
    return bool(_USERINFO.search(text))


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced by ***."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def redact_value(value: Any) -> Any:
    """redact() through strings, mappings and sequences; other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value

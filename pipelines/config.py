"""The params sections that belong to orchestration, not to the library: `ingest` (where new raw videos come
from: S3 or a folder) and `orchestration` (the Prefect schedule and retries).

pvdm's own `Params` carries these two sections unvalidated; `PipelineParams` here validates them, so every
pipelines entry point (stages, flows, deployments, ingest) checks the whole params.yaml once, at its edge.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from pvdm.config import Params, parse_params, require_sections
from pvdm.config.base import StrictModel, load_yaml

# Standard five-field cron (minute hour day-of-month month day-of-week), as Prefect's CronSchedule reads it.
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
CRON_NAMES = {
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "day of week": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_PART = re.compile(r"^(?:\*|(?P<lo>\w+)(?:-(?P<hi>\w+))?)(?:/(?P<step>\d+))?$")


def check_cron(expr: str) -> str:
    """Return `expr` if it is a valid cron expression, else raise ValueError naming the bad field."""
    text = " ".join(expr.split())
    if text.lower() in CRON_ALIASES:
        return text
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}")
    for value, (name, lo, hi) in zip(fields, CRON_FIELDS, strict=True):
        for part in value.split(","):
            _check_cron_part(part, name, lo, hi)
    return text


def _check_cron_part(part: str, name: str, lo: int, hi: int) -> None:
    match = _PART.match(part.lower())
    if not match or match["step"] == "0":
        raise ValueError(f"cron {name} field: {part!r} is not N, N-M, *, */S or N-M/S")
    for bound in (match["lo"], match["hi"]):
        if bound is not None and _cron_number(bound, name) not in range(lo, hi + 1):
            raise ValueError(f"cron {name} field: {bound} is outside {lo}-{hi}")


def _cron_number(token: str, name: str) -> int:
    if token.isdigit():
        return int(token)
    names = CRON_NAMES.get(name, [])
    if token not in names:
        raise ValueError(f"cron {name} field: {token!r} is not a number{' or a name' if names else ''}")
    return names.index(token) + (1 if name == "month" else 0)


class OrchestrationConfig(StrictModel):
    retrain_cron: str = Field(
        "0 3 * * *",
        description="when the `pvdm-retrain/scheduled` deployment looks for new videos (cron, in `timezone`); "
        "empty: no schedule (run it by hand)",
    )
    timezone: str = Field("UTC", min_length=1, description="IANA time zone of retrain_cron")
    retries: int = Field(
        1, ge=0, le=10, description="retries of a failed stage (or ingest) before the run fails"
    )
    retry_delay_seconds: float = Field(10.0, ge=0.0, description="wait before each retry")

    @field_validator("retrain_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return check_cron(value) if value.strip() else ""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name like UTC or Europe/Paris)") from None
        return value


class IngestConfig(StrictModel):
    source: str = Field(
        "",
        description="where new raw videos come from: s3://bucket/prefix, a local folder, or empty for none",
    )
    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint for S3-compatible stores (MinIO, moto); credentials come from the AWS chain",
    )
    region: str | None = Field(None, description="S3 region; None: from the AWS configuration")
    allow_outside_paths: bool = Field(
        False,
        description="let a local-folder source lie outside the project (a mounted share, say); without it a "
        "folder source must be inside the project, so a flow parameter cannot copy /etc into the dataset",
    )

    @field_validator("source")
    @classmethod
    def _s3_or_a_folder(cls, value: str) -> str:
        if "://" in value and not value.startswith("s3://"):
            raise ValueError("expected s3://bucket/prefix or a local folder (no other URL scheme)")
        return value


class PipelineParams(Params):
    """The whole params.yaml, orchestration sections included."""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)


def parse_pipeline_params(data: dict[str, Any], source: str = "params") -> PipelineParams:
    return parse_params(data, source=source, model=PipelineParams)


def load_pipeline_params(path: str | Path = "params.yaml") -> PipelineParams:
    data = load_yaml(path)
    require_sections(data, str(path))
    return parse_pipeline_params(data, source=str(path))

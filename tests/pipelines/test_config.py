"""The orchestration section: cron strings, time zones and retries are validated, errors name the key."""

from __future__ import annotations

import pytest

from pipelines.config import parse_pipeline_params as parse_params
from pvdm.config import ConfigError


@pytest.mark.parametrize(
    "cron",
    ["0 3 * * *", "*/15 9-17 * * mon-fri", "0 0 1,15 * *", "5 4 * jan-jun/2 0", "@daily", "  0  3 * * 7 "],
)
def test_valid_cron_strings_are_kept(cron: str) -> None:
    assert parse_params({"orchestration": {"retrain_cron": cron}}).orchestration.retrain_cron == " ".join(
        cron.split()
    )


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 24 * * *", "cron hour field: 24 is outside 0-23"),
        ("60 * * * *", "cron minute field: 60 is outside 0-59"),
        ("0 3 * *", "5 fields"),
        ("0 3 0 * *", "cron day of month field: 0 is outside 1-31"),
        ("0 3 * * funday", "'funday' is not a number or a name"),
        ("*/0 * * * *", "is not N, N-M"),
        ("0 3 * * * *", "got 6"),
    ],
)
def test_bad_cron_strings_fail_naming_the_key(cron: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="orchestration.retrain_cron: ") as err:
        parse_params({"orchestration": {"retrain_cron": cron}})
    assert reason in str(err.value)


def test_empty_cron_means_no_schedule_and_other_fields_are_checked() -> None:
    assert parse_params({"orchestration": {"retrain_cron": ""}}).orchestration.retrain_cron == ""
    with pytest.raises(ConfigError, match="orchestration.timezone: unknown time zone 'Mars/Olympus'"):
        parse_params({"orchestration": {"timezone": "Mars/Olympus"}})
    with pytest.raises(ConfigError, match="orchestration.retries: "):
        parse_params({"orchestration": {"retries": -1}})
    assert parse_params({}).orchestration.retrain_cron == "0 3 * * *"

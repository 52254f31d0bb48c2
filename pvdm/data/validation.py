"""Great-expectations suites over a clip store: the manifest, per-clip pixel statistics and the split.

The per-clip statistics (shape and dtype from the shard files, min/max/mean/std from the clips as written) are
collected by `preprocess`, so validation does not read the pixels a second time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# pandas only for type checking: the preprocess stage imports this module before pandas (pvdm.data.workers).
if TYPE_CHECKING:
    import pandas as pd

REQUIRED_MANIFEST_COLUMNS = [
    "clip_id",
    "source",
    "content_hash",
    "clip_index",
    "start_frame",
    "fps",
    "duration",
    "split",
    "shard",
]


@dataclass
class ValidationResult:
    success: bool
    failed: list[str] = field(default_factory=list)  # one readable line per failed expectation
    result: dict[str, Any] = field(default_factory=dict)  # the full great-expectations results, by suite

    def summary(self) -> dict[str, Any]:
        return {"success": self.success, "failed": self.failed}


def load_great_expectations() -> None:
    """Import great-expectations (seconds): preprocess does it ahead, in the process that will validate."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations  # noqa: F401 - the package must initialise first: its submodules import in a cycle
    import great_expectations.expectations  # noqa: F401


def validate_store(
    manifest: pd.DataFrame,
    clip_stats: pd.DataFrame,
    *,
    frames: int,
    resolution: int,
    min_clip_std: float,
    expect_test_split: bool,
) -> ValidationResult:
    """Run the three suites; `clip_stats` has one row per clip: clip_id, frames, height, width, channels, dtype,
    min, max, mean, std."""
    load_great_expectations()
    import great_expectations.expectations as gxe

    splits = ["train", "test"] if expect_test_split else ["train"]
    manifest_rules = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="clip_id"),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED_MANIFEST_COLUMNS],
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=splits),
        gxe.ExpectColumnValuesToBeBetween(column="start_frame", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="fps", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="duration", min_value=0, strict_min=True),
    ]
    pixel_rules = [
        gxe.ExpectColumnValuesToBeUnique(column="clip_id"),
        gxe.ExpectColumnValuesToBeBetween(column="frames", min_value=frames, max_value=frames),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=resolution, max_value=resolution),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=resolution, max_value=resolution),
        gxe.ExpectColumnValuesToBeBetween(column="channels", min_value=3, max_value=3),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint8"]),
        gxe.ExpectColumnValuesToBeBetween(column="min", min_value=0, max_value=255),
        gxe.ExpectColumnValuesToBeBetween(column="max", min_value=0, max_value=255),
        gxe.ExpectColumnValuesToBeBetween(
            column="std", min_value=max(min_clip_std, 1e-6)
        ),  # non-constant clips
    ]
    # One row per source video: a video must sit in exactly one split (no train/test leakage).
    per_source = manifest.groupby("content_hash")["split"].nunique().rename("splits").reset_index()
    source_rules = [
        gxe.ExpectColumnValuesToBeUnique(column="content_hash"),
        gxe.ExpectColumnValuesToBeBetween(column="splits", min_value=1, max_value=1),
    ]
    tables = {"manifest": (manifest, manifest_rules), "clips": (clip_stats, pixel_rules)}
    tables["sources"] = (per_source, source_rules)
    return _run_suites(tables)


def _run_suites(tables: dict[str, tuple[pd.DataFrame, list]]) -> ValidationResult:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("pvdm_clip_store")
    outcome = ValidationResult(success=True)
    for name, (frame, rules) in tables.items():
        batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name=f"pvdm_{name}")
        for rule in rules:
            suite.add_expectation(rule)
        result = batch.validate(suite)
        outcome.result[name] = result.to_json_dict()
        outcome.success &= bool(result.success)
        outcome.failed += [_describe_failure(name, r) for r in result.results if not r.success]
    return outcome


def _describe_failure(table: str, r: Any) -> str:
    config = r.expectation_config
    args = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    detail = r.result or {}
    if r.exception_info and r.exception_info.get("raised_exception"):
        what = f"error: {r.exception_info.get('exception_message')}"
    elif "unexpected_count" in detail:
        what = f"{detail['unexpected_count']} of {detail.get('element_count')} rows fail, e.g. "
        what += repr(detail.get("partial_unexpected_list", [])[:5])
    else:
        what = f"observed {detail.get('observed_value')!r}"
        if detail.get("partial_missing_list"):
            what += f", missing {detail['partial_missing_list']!r}"
    return f"{table}: {config.type} {args}: {what}"

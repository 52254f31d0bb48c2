"""The frozen evaluation set: which videos are held out, fixed by content hash when first chosen.

A seeded split alone (pvdm.data.sources.seeded_split) keeps every existing video in its split, but a NEW video can
land in test, and then every FVD after it measures something else. So the first preprocess that draws the split
records the test videos in the clip store (`eval_set.json`, written atomically):

    {"id": 1, "version": 1, "rule": "...", "content_hashes": [...], "sha256": "..."}

and later runs put exactly the recorded videos in test and every other video in train. A recorded video that is
gone stays in the record and is reported. The explicit action that starts a new set is raising
`preprocess.eval_set_version`: the split is drawn again over today's videos (same seeded rule) and recorded with a
new id.

Explicit splits (split lists, or the dataset's own train/ and val|test/ folders) are the user's choice: their test
videos are the set, recorded the same way, and when the lists or folders give another test set, that is a new set
with a new id (the report says so). `sha256` is the hash of the sorted content hashes: `eval_set_sha256`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pvdm.atomic import write_text_atomic

EVAL_SET = "eval_set.json"


def set_sha256(content_hashes: list[str] | set[str]) -> str:
    """The hash of a set of videos: sha256 of their sorted, distinct content hashes, one per line."""
    return hashlib.sha256("\n".join(sorted(set(content_hashes))).encode()).hexdigest()


@dataclass(frozen=True)
class EvalSet:
    id: int
    version: int
    rule: str
    content_hashes: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return set_sha256(self.content_hashes)

    def write(self, store: Path) -> None:
        record = asdict(self) | {"sha256": self.sha256}
        write_text_atomic(store / EVAL_SET, json.dumps(record, indent=2))


def read_eval_set(store: Path) -> EvalSet | None:
    """The recorded set of a clip store, None when there is none yet; a damaged record is an error (never redrawn
    silently: that would move videos between splits)."""
    path = store / EVAL_SET
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return EvalSet(int(record["id"]), int(record["version"]), str(record["rule"]),
                       sorted(record["content_hashes"]))  # fmt: skip
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path} is not a valid evaluation-set record ({err}); restore it, or delete it and raise "
            "preprocess.eval_set_version to draw a new set"
        ) from err


@dataclass
class SetDecision:
    """The set this run uses, whether it is new, and what to report."""

    eval_set: EvalSet
    new: bool
    warnings: list[str] = field(default_factory=list)


def frozen_split(
    present: list[str],
    drawn: dict[str, str],
    recorded: EvalSet | None,
    version: int,
    rule: str,
    explicit: bool,
) -> tuple[dict[str, str], SetDecision]:
    """(split of every present content hash, the set decision).

    `drawn` is the split the rule gives today's videos; `explicit` says it is the user's (lists or folders)."""
    drawn_test = sorted(h for h in present if drawn.get(h) == "test")
    if recorded is None:
        return drawn, SetDecision(EvalSet(1, version, rule, drawn_test), new=True)
    if explicit:
        if set(drawn_test) == set(recorded.content_hashes):
            return drawn, SetDecision(recorded, new=False)
        note = f"the split lists or folders give a new test set: evaluation set {recorded.id + 1} replaces {recorded.id}"
        return drawn, SetDecision(EvalSet(recorded.id + 1, version, rule, drawn_test), True, [note])
    if version != recorded.version:
        note = f"preprocess.eval_set_version {recorded.version} -> {version}: evaluation set {recorded.id + 1} drawn"
        return drawn, SetDecision(EvalSet(recorded.id + 1, version, rule, drawn_test), True, [note])
    return _keep(present, recorded, rule)


def _keep(present: list[str], recorded: EvalSet, rule: str) -> tuple[dict[str, str], SetDecision]:
    kept = set(recorded.content_hashes)
    split = {h: "test" if h in kept else "train" for h in present}
    decision = SetDecision(recorded, new=False)
    gone = sorted(kept - set(present))
    if gone and len(gone) == len(kept):
        decision.warnings.append(
            f"none of the {len(kept)} videos of evaluation set {recorded.id} remain: the test split is empty; raise "
            "preprocess.eval_set_version to draw a new set"
        )
    elif gone:
        shown = ", ".join(h[:12] for h in gone[:5]) + (" ..." if len(gone) > 5 else "")
        decision.warnings.append(
            f"{len(gone)} of the {len(kept)} videos of evaluation set {recorded.id} are gone or unusable "
            f"(content {shown}); the set keeps them recorded, evaluation uses the rest"
        )
    if rule != recorded.rule:
        decision.warnings.append(
            f"the split rule changed ({recorded.rule} -> {rule}) but evaluation set {recorded.id} is kept; raise "
            "preprocess.eval_set_version to draw a new set with the new rule"
        )
    return split, decision

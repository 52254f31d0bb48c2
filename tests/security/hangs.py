"""A worker whose decoder never returns on files named *hang*: what a decoder stuck in C code looks like to the pool.

It runs inside `within_deadline`, the real timeout mechanism of preprocessing; only the decoder is replaced."""

from __future__ import annotations

import time

from pvdm.data.cutting import Job, SourceRecord, cut_source, within_deadline


def _cut_or_hang(job: Job) -> SourceRecord:
    if "hang" in job.source:
        while True:
            time.sleep(60)
    return cut_source(job)


def work(job: Job) -> SourceRecord:
    return within_deadline(job, _cut_or_hang)

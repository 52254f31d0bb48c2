"""A worker function that kills its process on files named *crash*: stands in for a decoder that segfaults."""

from __future__ import annotations

import os

from pvdm.data.cutting import Job, SourceRecord, process_source


def work(job: Job) -> SourceRecord:
    if "crash" in job.source:
        os._exit(139)
    return process_source(job)

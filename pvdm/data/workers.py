"""The processes `preprocess` starts: decode workers and the validation process.

Light on purpose (no pandas, no great-expectations at import): the preprocess stage imports it first and starts
the validation process before it imports MLflow, so great-expectations loads on the other core meanwhile.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from pvdm.data.validation import load_great_expectations


def clean_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers start from a clean process (forkserver), not a fork of one holding decoder or torch
    threads. Start it inside `main_hidden_from_workers`."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


@contextlib.contextmanager
def validation_process() -> Iterator[Executor]:
    """A process that imports great-expectations as the run starts and validates the store at its end. The import
    takes seconds (3.2 s on a 2-core machine), whatever the number of new videos: in a process of its own it runs
    on another core while this one imports MLflow, plans, decodes and writes, instead of holding this one's GIL."""
    pool = clean_pool(1)
    try:
        with main_hidden_from_workers():
            pool.submit(load_great_expectations)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def main_hidden_from_workers() -> Iterator[None]:
    """Start workers without the caller's __main__. multiprocessing has every new worker import the parent's main
    module first (its name or path): for the preprocess stage that is a DVC stage script importing MLflow,
    seconds per worker, paid again on every rerun however few videos are new. The workers only run what they are
    sent (pvdm.data.cutting, great-expectations), which they import when they unpickle it, so the main module is
    hidden while they start and put back at once."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {key: main.__dict__[key] for key in ("__spec__", "__file__") if key in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)

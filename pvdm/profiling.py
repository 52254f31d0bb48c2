"""Timing, peak memory and process isolation for measurements (bench/, `pvdm compare`).

Peak memory: on CUDA torch.cuda.max_memory_allocated; on CPU the process's peak resident set (VmHWM, which Linux
lets a process reset) above a baseline the caller takes. Times: wall seconds and the process's CPU seconds.
"""

from __future__ import annotations

import ctypes
import resource
import statistics
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

import psutil
import torch

GIB = 1024**3
T = TypeVar("T")


def current_rss() -> int:
    return psutil.Process().memory_info().rss


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    release_free_heap()
    # Linux: "5" resets VmHWM to the current RSS (proc(5)), so the peak is the timed steps' own. Where that
    # fails, the lifetime peak is read instead, which the building of the models rarely exceeds.
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def release_free_heap() -> None:
    """Give memory freed while building (LPIPS's loader frees a whole VGG16) back to the OS, so the RSS counts
    what the steps keep and use rather than glibc's cache of freed blocks."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def peak_memory(device: torch.device, baseline: int) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return peak_rss() - baseline


def memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated"
    return "peak RSS (VmHWM) above the RSS before building the models, one process per measurement"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Seconds:
    """Wall time, and this process's CPU time over all its threads: on a shared machine the wall time follows
    the load while the CPU time barely moves, so both are reported."""

    wall: float
    cpu: float


def timed(fn: Callable[[], object], device: torch.device) -> Seconds:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return Seconds(time.perf_counter() - wall, time.process_time() - cpu)


def measure(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int, baseline: int
) -> tuple[list[Seconds], int]:
    """The times of `repeats` calls after `warmup` untimed ones, and the peak memory of the timed calls."""
    for _ in range(warmup):
        fn()
    reset_peak(device)
    seconds = [timed(fn, device) for _ in range(repeats)]
    return seconds, peak_memory(device, baseline)


def median(values: list[Seconds], divisor: float = 1.0) -> Seconds:
    return Seconds(
        statistics.median(v.wall for v in values) / divisor,
        statistics.median(v.cpu for v in values) / divisor,
    )


# ---------------------------------------------------------------- one measurement per process


def _call_and_send(fn: Callable[[T], dict[str, Any]], arg: T, conn: Connection) -> None:
    try:
        result = fn(arg)
    except Exception as err:  # reported as the measurement's error; the traceback goes to stderr
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}"}
    conn.send(result)
    conn.close()


def in_fresh_process(
    fn: Callable[[T], dict[str, Any]], arg: T, *, min_free_gb: float | None = None
) -> dict[str, Any]:
    """fn(arg) in a new (spawned) process, so its peak memory is its own. A process that dies, or (with
    min_free_gb) is stopped because the host has less memory than that left, gives {"error": ..., "oom": True}:
    on a shared machine one lost measurement beats the OOM killer picking some other process."""
    context = get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_call_and_send, args=(fn, arg, send), daemon=True)
    process.start()
    send.close()  # so recv() sees end-of-file if the process dies before answering
    try:
        return _wait_for_result(process, receive, min_free_gb)
    finally:
        process.join(timeout=30)  # a clean exit, once it has answered, so it leaks nothing
        if process.is_alive():
            process.kill()
            process.join()


def _wait_for_result(process: BaseProcess, receive: Connection, min_free_gb: float | None) -> dict[str, Any]:
    while not receive.poll(0.5):
        if min_free_gb is not None and psutil.virtual_memory().available < min_free_gb * GIB:
            rss = psutil.Process(process.pid).memory_info().rss
            process.kill()
            return {
                "error": f"stopped at {rss / GIB:.1f} GiB RSS: host below {min_free_gb:g} GiB free",
                "oom": True,
            }
    try:
        return receive.recv()
    except EOFError:  # killed (by the OOM killer, most likely) before it could answer
        process.join(timeout=5)
        return {"error": f"the measuring process died (exit code {process.exitcode})", "oom": True}


def search_largest(fits: Callable[[int], bool], limit: int) -> tuple[int, bool]:
    """The largest n in [1, limit] with fits(n), fits assumed monotone (0: none): double until one does not fit,
    then bisect. Also returns whether the search ran into the limit instead."""
    good, bad, n = 0, None, 1
    while n <= limit and bad is None:
        if fits(n):
            good, n = n, n * 2
        else:
            bad = n
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, bad is None

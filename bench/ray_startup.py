"""Start-up cost of a training stage on Ray Train: Ray's uv runtime environment on (Ray's default) against off
(what pipelines.ray_train sets).

Run it the way `make demo` runs the stages, under `uv run` (Ray's hook looks for a `uv run` ancestor process):

    uv run --frozen python -m bench.ray_startup            # prints a table, one fresh process per setting

Each setting runs in its own process (Ray reads the switch when it is imported): import pipelines.ray_train, start
a local Ray, run a TorchTrainer whose one worker reports a single step, shut down. With the hook on, the worker
runs in a uv environment that Ray builds from the project (the project and its ~290 packages reinstalled); with
it off, the worker uses the driver's own environment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"1": "uv runtime env on (Ray's default)", "0": "off (pvdm)"}


def one_step(config: dict) -> None:
    import ray.train

    ray.train.report({"step": 1, "loss": 0.0})


def child() -> None:
    start = time.perf_counter()
    import ray

    from pipelines.ray_train import fit
    from pvdm.config import RuntimeConfig

    imported = time.perf_counter()
    with tempfile.TemporaryDirectory() as storage:
        fit(one_step, {}, RuntimeConfig(num_workers=1, max_failures=0), name="startup", storage_path=storage)
    trained = time.perf_counter()
    ray.shutdown()
    print(json.dumps({"import_s": imported - start, "fit_s": trained - imported, "total_s": trained - start}))


def measure(setting: str) -> dict:
    env = {**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": setting}
    out = subprocess.run(
        [sys.executable, "-m", "bench.ray_startup", "--child"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parents[1],
    )
    if out.returncode != 0:
        return {
            "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        }
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (the first may warm caches)")
    args = parser.parse_args()
    if args.child:
        child()
        return
    print(f"{'setting':<36} {'run':>3} {'import s':>9} {'fit s':>8} {'total s':>8}")
    for setting, name in SETTINGS.items():
        for k in range(args.repeats):
            r = measure(setting)
            if "error" in r:
                print(f"{name:<36} {k:>3} failed: {r['error']}")
                continue
            print(f"{name:<36} {k:>3} {r['import_s']:>9.1f} {r['fit_s']:>8.1f} {r['total_s']:>8.1f}")


if __name__ == "__main__":
    main()

"""Per-step cost of a training stage under Ray Train against the same library loop in one process.

    uv run --frozen python -m bench.ray_overhead                     # params.yaml's autoencoder, 200 steps
    uv run --frozen python -m bench.ray_overhead --steps 300 --settings local ray

Each setting runs in a fresh process on the clip store of `make demo` (data/clips):
- `local`: `train_autoencoder` with pvdm's LocalContext, no Ray (what the tests and the `pvdm` CLI use);
- `ray`: the same loop through `pipelines.ray_train.fit`, as the train_autoencoder stage runs it;
- `ray-nodash`: the same, with Ray started without its dashboard (Ray Train's cleaner then logs warnings).

Seconds per step are timed inside the loop, between its first and last report, so Ray's start-up (bench.ray_startup
measures that) is left out. For the Ray settings, the CPU seconds that Ray's own processes (raylet, GCS, dashboard,
log monitor and agents: every descendant of the driver except the training worker) used during the run are
reported too (over the whole run, start-up included): on a 2-core machine they compete with the worker for the
cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

SETTINGS = ("local", "ray", "ray-nodash")


@dataclass
class TimedContext:
    """A training context that appends (step, time) to a file at every report, then passes the report on."""

    inner: Any
    times_file: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def report(self, step: int, metrics: dict, payload: dict | None) -> None:
        with open(self.times_file, "a") as f:
            f.write(f"{step} {time.perf_counter()}\n")
        self.inner.report(step, metrics, payload)


@dataclass
class TimedLoop:
    loop: Any
    times_file: str

    def __call__(self, ctx: Any, root: Any = None) -> Any:  # root: the worker's copy of the inputs (unused)
        return self.loop(TimedContext(ctx, self.times_file))


def seconds_per_step(times_file: Path) -> float:
    rows = [tuple(map(float, line.split())) for line in times_file.read_text().splitlines()]
    (s0, t0), (s1, t1) = rows[0], rows[-1]
    return (t1 - t0) / (s1 - s0)


def ray_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of every descendant process of this one, by a short name."""
    import psutil

    out: dict[str, float] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            t = proc.cpu_times()
        except psutil.Error:
            continue
        name = (
            "training worker"
            if "RayTrainWorker" in cmd
            else (cmd.split()[0].rsplit("/", 1)[-1] if cmd else "?")
        )
        if "python" in name:  # Ray's python daemons: name them by their module
            name = next((w.rsplit("/", 1)[-1] for w in cmd.split() if w.endswith(".py")), name)
        out[name] = out.get(name, 0.0) + t.user + t.system
    return out


def run_one(setting: str, steps: int, clips: Path, preset: Path) -> dict[str, Any]:
    from pvdm.config import load_params
    from pvdm.data.clips import ClipDataset
    from pvdm.training.autoencoder import train_autoencoder
    from pvdm.training.loop import LocalContext

    params = load_params(preset)
    ae = params.autoencoder.model_copy(
        update={
            "train": params.autoencoder.train.model_copy(update={"steps": steps, "checkpoint_every": steps})
        }
    )
    with tempfile.TemporaryDirectory(prefix="pvdm-ray-overhead-") as tmp:
        times = Path(tmp) / "times.txt"
        loop = TimedLoop(
            partial(
                train_autoencoder, ae, params.data, params.runtime, ClipDataset(clips.resolve(), "train")
            ),
            str(times),
        )
        start = time.perf_counter()
        result: dict[str, Any] = {"setting": setting, "steps": steps}
        if setting == "local":
            loop(LocalContext(Path(tmp) / "ckpt"))
        else:
            import ray

            from pipelines.cluster import StagedInputs
            from pipelines.ray_train import _library_loop_worker, fit

            if setting == "ray-nodash":
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(include_dashboard=False, _temp_dir=None)
            inputs = StagedInputs(
                (), "", root=str(clips.resolve())
            )  # one machine: the workers read it in place
            fit(_library_loop_worker, {"loop": loop, "log_metrics": None, "inputs": inputs}, params.runtime,
                name="overhead",
                storage_path=Path(tmp) / "ray")  # fmt: skip
            cpu = ray_cpu_seconds()
            cpu.pop("training worker", None)  # the worker has ended by now; its time is the s/step
            result["ray_processes_cpu_s"] = {
                k: round(v, 1) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
            }
            ray.shutdown()
        result["seconds_per_step"] = round(seconds_per_step(times), 4)
        result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--clips", type=Path, default=Path("data/clips"))
    parser.add_argument("--preset", type=Path, default=Path("params.yaml"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", choices=SETTINGS, help=argparse.SUPPRESS)  # the child process of one setting
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.clips, args.preset)))
        return
    results = []
    for setting in args.settings:
        cmd = [sys.executable, "-m", "bench.ray_overhead", "--one", setting, "--steps", str(args.steps),
               "--clips", str(args.clips), "--preset", str(args.preset)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    local = next((r["seconds_per_step"] for r in results if r["setting"] == "local"), None)
    print(f"\n{'setting':<12} {'s/step':>8} {'vs local':>9}  Ray processes' CPU s")
    for r in results:
        ratio = f"{r['seconds_per_step'] / local:.2f}x" if local else "-"
        print(
            f"{r['setting']:<12} {r['seconds_per_step']:>8.4f} {ratio:>9}  {r.get('ray_processes_cpu_s', '-')}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

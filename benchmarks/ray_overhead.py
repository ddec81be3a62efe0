"""What ``steerlab run --executor ray`` costs over the in-process run, on a tiny-model study of
eight pieces (Panacea and actdiff x four training seeds) built in a temporary folder.

    python benchmarks/ray_overhead.py startup   # Ray alone: start a local instance, probe the folder, 8 empty tasks
    python benchmarks/ray_overhead.py local     # the study in this process (steerlab run)
    python benchmarks/ray_overhead.py ray       # the study through Ray (steerlab run --executor ray)

Each prints one JSON line (seconds, the 1-minute load average before and after): run ``local``
and ``ray`` one after the other, twice, and compare only figures taken under the same load.
``ray`` also checks that the two runs' records are the same (it runs ``local`` first when asked
with ``both``). Every mode stays well under two minutes on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SEEDS = [0, 1, 2, 3]
STUDY = f"""
[study]
name = "fan8"
model = "tiny-llama"
seeds = {SEEDS}

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 4
batch_size = 4

[metrics]
use = ["length", "fluency"]

[methods.panacea]
data = "data/sft.jsonl"
rank = 2
per_dimension = 1
max_tokens = 48
lr = 0.05
steps = 2
controls = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]

[methods.actdiff]
pairs = "data/pairs.jsonl"
layer = 1
controls = [-1.0, 1.0]
"""


def study_folder() -> Path:
    from conftest import make_study

    folder = make_study(Path(tempfile.mkdtemp(prefix="ray-overhead-")))
    (folder / "fan8.toml").write_text(STUDY)
    return folder


def timed_run(folder: Path, *flags: str) -> tuple[float, Path]:
    """Wall seconds of ``steerlab run`` in this process (model loads and imports included)."""
    from steerlab.cli import main

    out = folder / ("ray" if flags else "local")
    start = time.perf_counter()
    code = main(["run", str(folder / "fan8.toml"), "--out", str(out), "--no-progress", *flags])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"steerlab run {' '.join(flags)} exited {code}")
    (run_dir,) = out.iterdir()
    return seconds, run_dir


def records(run_dir: Path) -> dict:
    methods = json.loads((run_dir / "results.json").read_text())["methods"]
    return {n: [(r["seed"], r["prompt"], r["label"], r["output"], r["scores"]) for r in m["records"]] for n, m in methods.items()}


def empty_task() -> None:
    """A task that does nothing: what is left of its wall time is Ray's scheduling."""


def startup() -> dict[str, float]:
    """Ray alone: start a local instance on this machine's cores (workers start importing torch,
    transformers and the plugins at once), probe the run folder from every node, then eight empty
    one-CPU tasks twice: the first wait for the workers' imports, the second are pure scheduling."""
    from steerlab.run.executors import RayExecutor

    folder = study_folder()
    start = time.perf_counter()
    executor = RayExecutor.connect(None)
    executor.ready()
    marks = [time.perf_counter()]
    executor._check_shared(folder)
    marks.append(time.perf_counter())
    empty = executor.ray.remote(num_cpus=1)(empty_task)
    for _ in range(2):
        executor.ray.get([empty.remote() for _ in range(8)])
        marks.append(time.perf_counter())
    executor.close()
    return {"ray_init_s": marks[0] - start, "probe_s": marks[1] - marks[0], "workers_imported_s": marks[2] - marks[1],
            "eight_empty_tasks_s": marks[3] - marks[2], "shutdown_s": time.perf_counter() - marks[3]}


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "startup"
    before = os.getloadavg()[0]
    if mode == "startup":
        figures = startup()
    elif mode in ("local", "ray"):
        seconds, _ = timed_run(study_folder(), *(["--executor", "ray"] if mode == "ray" else []))
        figures = {f"{mode}_wall_s": seconds}
    elif mode == "both":
        folder = study_folder()
        (local, a), (ray, b) = timed_run(folder), timed_run(folder, "--executor", "ray")
        figures = {"local_wall_s": local, "ray_wall_s": ray, "same_records": records(a) == records(b)}
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected startup, local, ray or both")
    print(json.dumps({"mode": mode, **{k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()},
                      "load_before": round(before, 2), "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()

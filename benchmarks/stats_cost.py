"""What the intervals cost: the evidence of a chat3d-sized run (4 methods, 3 training seeds,
36 prompts, 6 controls, two judges' axes and the answer measures), timed against the study's
own wall time. Goal (the evidence issue): the statistics add < 5% to a study's wall time.

    python benchmarks/stats_cost.py [--repeats 3] [--study-minutes 86]

Synthetic records (random scores; the cost depends on the shape, not the values). The study's
wall time is the figure the report's Cost table gives for the run the shape copies.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from steerlab.analysis.compare import refresh_evidence
from steerlab.results import MethodResult, Record, RunResults, SweepPoint

STYLES = ["helpful", "humorous", "philosophical"]
GRID = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]


def synthetic_run(prompts: int = 36, seeds: int = 3, seed: int = 0) -> RunResults:
    rng = np.random.default_rng(seed)
    methods = {}
    for name, trained in (("panacea", True), ("soups", True), ("prompting", False), ("base", False)):
        grid = GRID if name != "base" else [None]
        runs = list(range(seeds)) if trained else [0]
        records = []
        for s in runs:
            for control in grid:
                label = "none" if control is None else "(" + ",".join(f"{c:.2f}" for c in control) + ")"
                for p in range(prompts):
                    scores = {**{f"judge.{d}": float(v) for d, v in zip(STYLES, rng.dirichlet([1, 1, 1]))},
                              **{f"lm.{d}": float(v) for d, v in zip(STYLES, rng.dirichlet([1, 1, 1]))},
                              "perplexity": float(rng.uniform(1.5, 4)), "distinct3": float(rng.uniform()), "words": float(rng.integers(10, 120)),
                              "tokens": 100.0, "stopped": float(rng.integers(0, 2))}
                    records.append(Record(f"prompt {p}", control, label, "word " * 60, scores, s))
        labels = list(dict.fromkeys(r.label for r in records))
        points = [SweepPoint.from_records(next(r.control for r in records if r.label == lab), lab, [r for r in records if r.label == lab])
                  for lab in labels]
        controls = {"kind": "simplex", "label": "lambda", "dimensions": STYLES} if name != "base" else {"kind": "none", "label": "none", "dimensions": []}
        methods[name] = MethodResult(name, name, controls, {}, points, records, seeds=runs)
    comparison = {"axes": [f"judge.{d}" for d in STYLES], "anchor": "panacea", "versus": {}, "tag": "",
                  "also": {"axes": [f"lm.{d}" for d in STYLES], "anchor": "panacea", "versus": {}, "tag": "lm"}}
    return RunResults({"seeds": list(range(seeds))}, methods, comparison=comparison)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--study-minutes", type=float, default=86.0, help="the study's wall time to compare with")
    args = parser.parse_args()
    times = []
    for k in range(args.repeats):
        run = synthetic_run(seed=k)
        start = time.perf_counter()
        refresh_evidence(run)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"evidence of a 4-method x 3-seed x 36-prompt x 6-control run: median {median:.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {args.repeats} repeats); "
          f"{100 * median / (60 * args.study_minutes):.3f}% of a {args.study_minutes:.0f}-minute study")


if __name__ == "__main__":
    main()

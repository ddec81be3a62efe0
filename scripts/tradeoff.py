"""Steering strength against fluency for every trained method of some finished chat3d-style runs.

    python scripts/tradeoff.py docs/results/chat3d_ablation docs/results/chat3d_budget \
        --out docs/results/chat3d_tradeoff

Why: issue 11 asks Panacea to beat rewarded soups on the style front *and* on fluency. One run's
report shows each method at one setting; this puts every setting of the ablation and budget
studies (same dev requests, same grid, same seed) on two planes, hypervolume against perplexity
and against distinct trigrams, so one can see whether any Panacea setting sits on soups' better
side of both at once, and which settings move towards it. It reads each method's per-control points
(``results.json``, or ``methods/*/result.json`` of a run made with ``--only``) and measures them with
``steerlab.analysis.pareto``, the functions the reports use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from steerlab.analysis import pareto  # noqa: E402
from steerlab.errors import ConfigError  # noqa: E402
from steerlab.study.loader import read_toml  # noqa: E402

UNTRAINED = {"base", "prompting"}  # nothing to tune: not part of the trade-off
AXES = ["judge.helpful", "judge.humorous", "judge.philosophical"]


def method_points(run: Path) -> tuple[str, dict[str, tuple[str, list[dict]]]]:
    """The study's name and each method's (plugin, per-control points): from ``results.json`` for a
    finished run, or from each ``methods/*/result.json`` for a run of some methods (``--only``)."""
    if (run / "results.json").exists():
        results = json.loads((run / "results.json").read_text())
        return results["study"]["name"], {name: (m["method"], m["points"]) for name, m in results["methods"].items()}
    method_files = sorted(run.glob("methods/*/result.json"))
    if not method_files:
        raise ConfigError(f"{run}: no results.json and no methods/*/result.json (expected a run folder with a finished method)")
    config = read_toml(run / "study.toml")
    methods = {}
    for result in method_files:
        name = result.parent.name
        methods[name] = (config["methods"][name].get("method", name), json.loads(result.read_text())["points"])
    return config["study"]["name"], methods


def row(study: str, setting: str, method: str, pts: list[dict]) -> dict[str, object]:
    """One method's numbers, computed by steerlab's own front measures from its per-control points."""
    coords, scores = [p["control"] for p in pts], [p["scores"] for p in pts]
    front = pareto.front_summary(coords, scores, AXES)
    return {
        "study": study, "setting": setting, "method": method,
        "hypervolume": front["hypervolume"], "alignment": front["lambda_alignment"],
        "smallest_gap": min(float(c["gap"]) for c in pareto.corner_effects(coords, scores, AXES)),
        "perplexity": statistics.fmean(s["perplexity"] for s in scores), "distinct3": statistics.fmean(s["distinct3"] for s in scores),
    }


def rows_of(run: Path) -> list[dict[str, object]]:
    study, methods = method_points(run)
    return [row(study, name, method, pts) for name, (method, pts) in methods.items() if method not in UNTRAINED]


def table(rows: list[dict[str, object]]) -> str:
    head = "| study | setting | method | hypervolume | lambda alignment | smallest corner gap | perplexity | distinct3 |\n|---|---|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['study']} | {r['setting']} | {r['method']} | {r['hypervolume']:.3f} | {r['alignment']:.2f} | {r['smallest_gap']:+.3f} "
        f"| {r['perplexity']:.2f} | {r['distinct3']:.3f} |\n" for r in rows)


def figure(rows: list[dict[str, object]], path: Path) -> None:
    seen, points = set(), []
    for r in rows:  # a setting both studies ran (soups, tchebycheff) reran to the same numbers: drawn once
        key = (r["setting"], round(float(r["hypervolume"]), 3), round(float(r["perplexity"]), 2))
        if key not in seen:
            seen.add(key)
            points.append(r)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, score, better in ((axes[0], "perplexity", "lower"), (axes[1], "distinct3", "higher")):
        for r in points:
            soups = r["method"] == "soups"
            ax.scatter(r[score], r["hypervolume"], marker="s" if soups else "o", s=60, color="tab:orange" if soups else "tab:blue")
            ax.annotate(str(r["setting"]), (r[score], r["hypervolume"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_xlabel(f"mean {score} over the controls ({better} is more fluent)")
        ax.set_ylabel("hypervolume (MiniLM judge)")
        if better == "lower":
            ax.invert_xaxis()  # more fluent to the right on both panels
        ax.grid(alpha=0.3)
    axes[0].set_title("orange squares: rewarded soups; blue: Panacea settings", fontsize=9)
    fig.suptitle("Style front (hypervolume) against fluency, dev requests: up and right is better")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (results.json, or methods/*/result.json of a run made with --only)")
    parser.add_argument("--out", type=Path, required=True, help="folder for tradeoff.png and tradeoff.md")
    args = parser.parse_args()
    try:
        rows = [row for run in args.runs for row in rows_of(run)]
    except ConfigError as exc:
        print(f"tradeoff: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    args.out.mkdir(parents=True, exist_ok=True)
    figure(rows, args.out / "tradeoff.png")
    text = table(rows)
    (args.out / "tradeoff.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

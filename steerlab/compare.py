"""Compare the methods of one run on the same prompts: fronts, hypervolumes, dominance, figures.

Runs after every method has finished (no model needed), when the study has a ``[pareto]`` table
naming the score axes. Adds front measures to each method's summary and a ``comparison`` block
to results.json; draws pairwise front projections, a ternary view (three axes), hypervolume per
method and the scores along the simplex edges.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from steerlab import pareto
from steerlab.report import new_figure, save_figure

MARKERS = "os^Dv<>p*h"


def compare(results: dict[str, Any], axes: list[str], run_dir: Path, anchor: str | None = None) -> dict[str, Any]:
    """Fill each method's front summary; return the comparison block (figures relative to run_dir)."""
    pts = {}
    for name, method in results["methods"].items():
        method["summary"].update(pareto.front_summary(method["by_control"], axes))
        pts[name] = pareto.points(method["by_control"], axes)
    anchor = anchor if anchor in pts else next(iter(pts))
    block: dict[str, Any] = {"axes": axes, "anchor": anchor, "versus": {}, "figures": []}
    for other in pts:
        if other == anchor:
            continue
        block["versus"][other] = {
            "coverage_of_other": pareto.coverage(pts[anchor], pts[other]),
            "coverage_by_other": pareto.coverage(pts[other], pts[anchor]),
            "hypervolume_ratio": _ratio(results["methods"][anchor]["summary"]["hypervolume"], results["methods"][other]["summary"]["hypervolume"]),
        }
    block["corners"] = {name: corner_effects(m["by_control"], axes) for name, m in results["methods"].items()}
    block["corners"] = {k: v for k, v in block["corners"].items() if v}
    figures = run_dir / "figures"
    block["figures"].append(_plot_projections(pts, axes, figures / "fronts_pairwise.png", run_dir))
    if len(axes) == 3:
        block["figures"].append(_plot_ternary(results, axes, figures / "fronts_ternary.png", run_dir))
    block["figures"].append(_plot_hypervolume(results, figures / "hypervolume.png", run_dir))
    edges = _plot_edges(results, axes, figures / "simplex_edges.png", run_dir)
    if edges:
        block["figures"].append(edges)
    return block


def corner_effects(by_control: list[dict[str, Any]], axes: list[str]) -> list[dict[str, Any]]:
    """For each axis i: its mean score at the corner lambda = e_i against the mean at the other
    corners. A positive gap means turning that dimension fully on raises its judged score."""
    corners = {}
    for row in by_control:
        c = row["control"]
        if isinstance(c, list) and len(c) == len(axes) and max(c) == 1.0:
            corners[c.index(1.0)] = row
    if len(corners) < len(axes):
        return []
    out = []
    for i, axis in enumerate(axes):
        own = corners[i][axis]
        others = float(np.mean([corners[j][axis] for j in corners if j != i]))
        out.append({"axis": axis, "at_own_corner": own, "at_other_corners": others, "gap": own - others})
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf") if a > 0 else float("nan")


def _short(axis: str) -> str:
    return axis.split(".")[-1]


def _plot_projections(pts: dict[str, np.ndarray], axes: list[str], path: Path, run_dir: Path) -> tuple[str, str]:
    pairs = list(itertools.combinations(range(len(axes)), 2))
    fig, panels = new_figure(ncols=len(pairs), width=4.0, height=3.8)
    panels = panels if len(pairs) > 1 else [panels]
    for ax, (i, j) in zip(panels, pairs):
        for k, (name, p) in enumerate(pts.items()):
            if len(p):
                front = pareto.nondominated(p)
                ax.scatter(p[:, i], p[:, j], marker=MARKERS[k % len(MARKERS)], alpha=0.35, color=f"C{k}")
                ax.scatter(front[:, i], front[:, j], marker=MARKERS[k % len(MARKERS)], color=f"C{k}", label=name)
        ax.set_xlabel(_short(axes[i]))
        ax.set_ylabel(_short(axes[j]))
    panels[0].legend(fontsize=7)
    fig.suptitle("Mean judged scores per control (solid: non-dominated in all axes)")
    save_figure(fig, path)
    return str(path.relative_to(run_dir)), "Pairwise projections of each method's points and front"


def _ternary_xy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    share = p / np.clip(p.sum(1, keepdims=True), 1e-9, None)
    return share[:, 1] + 0.5 * share[:, 2], share[:, 2] * np.sqrt(3) / 2


def _plot_ternary(results: dict[str, Any], axes: list[str], path: Path, run_dir: Path) -> tuple[str, str]:
    fig, ax = new_figure(width=5.5, height=5.0)
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="grey", lw=0.8)
    for (x, y), label in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], axes):
        ax.annotate(_short(label), (x, y), ha="center", va="top" if y == 0 else "bottom")
    for k, (name, method) in enumerate(results["methods"].items()):
        p = pareto.points(method["by_control"], axes)
        if len(p):
            x, y = _ternary_xy(p)
            ax.scatter(x, y, marker=MARKERS[k % len(MARKERS)], color=f"C{k}", label=name)
    ax.set_axis_off()
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("Judged style mix per control (scores normalised to sum 1)")
    save_figure(fig, path)
    return str(path.relative_to(run_dir)), "Ternary view: where each control lands in style space"


def _plot_hypervolume(results: dict[str, Any], path: Path, run_dir: Path) -> tuple[str, str]:
    names = list(results["methods"])
    values = [results["methods"][n]["summary"]["hypervolume"] for n in names]
    fig, ax = new_figure(width=5.0, height=3.5)
    ax.bar(names, values, color=[f"C{k}" for k in range(len(names))])
    ax.set_ylabel("hypervolume (reference 0)")
    ax.set_title("Hypervolume of each method's judged points")
    save_figure(fig, path)
    return str(path.relative_to(run_dir)), "Hypervolume per method"


def _plot_edges(results: dict[str, Any], axes: list[str], path: Path, run_dir: Path) -> tuple[str, str] | None:
    """Scores along each simplex edge (lambda moving from one corner to another)."""
    m = len(axes)
    edges = list(itertools.combinations(range(m), 2))
    methods = {n: r for n, r in results["methods"].items() if any(isinstance(x["control"], list) for x in r["by_control"])}
    if not methods:
        return None
    fig, panels = new_figure(ncols=len(edges), width=4.0, height=3.5)
    panels = panels if len(edges) > 1 else [panels]
    for ax, (i, j) in zip(panels, edges):
        for k, (name, method) in enumerate(methods.items()):
            rows = sorted((r for r in method["by_control"] if isinstance(r["control"], list)
                           and all(r["control"][t] == 0 for t in range(m) if t not in (i, j))), key=lambda r: r["control"][j])
            if len(rows) < 2:
                continue
            t = [r["control"][j] for r in rows]
            ax.plot(t, [r[axes[i]] for r in rows], "-", marker=MARKERS[k % len(MARKERS)], color=f"C{k}", label=f"{name}: {_short(axes[i])}")
            ax.plot(t, [r[axes[j]] for r in rows], "--", marker=MARKERS[k % len(MARKERS)], color=f"C{k}", label=f"{name}: {_short(axes[j])}")
        ax.set_xlabel(f"lambda_{_short(axes[j])} (rest on {_short(axes[i])})")
        ax.set_ylabel("mean score")
    panels[0].legend(fontsize=6)
    save_figure(fig, path)
    return str(path.relative_to(run_dir)), "Scores along the simplex edges (solid: first style of the edge, dashed: second)"

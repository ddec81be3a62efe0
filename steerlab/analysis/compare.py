"""Compare the methods of one run on the same prompts: fronts, hypervolumes, dominance, figures.

Runs after every method has finished (no model needed), when the study has a ``[pareto]`` table
naming the score axes. Adds front measures to each method's summary and a ``comparison`` block
to results.json; draws pairwise front projections, a ternary view (three axes), hypervolume per
method and the scores along the simplex edges.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from steerlab.analysis import pareto
from steerlab.analysis.evidence import Design, answer_evidence, front_evidence
from steerlab.analysis.pick import pick_setting
from steerlab.controls import ControlSpace, corner_of
from steerlab.figures import MARKERS, new_figure, save_figure, simplex_edges
from steerlab.layout import RunLayout
from steerlab.results import MethodResult, RunResults
from steerlab.study.schema import Study


def aligned_coordinates(space: ControlSpace, control: Any, axes: list[str]) -> tuple[float, ...]:
    """The control's coordinates reordered to follow ``axes`` (dimension ``helpful`` <-> axis
    ``judge.helpful``); empty when the space has no coordinate per axis."""
    dims = space.dimensions
    if len(dims) != len(axes):
        return ()
    coords = space.coordinates(space.check(control))
    by_name = {d: i for i, d in enumerate(dims)}
    order = [by_name.get(_short(a)) for a in axes]
    return tuple(coords[i] for i in order) if None not in order else coords


def method_coordinates(results: RunResults, study: Study, axes: list[str]) -> dict[str, list[tuple[float, ...]]]:
    return {e.name: [aligned_coordinates(e.space, p.control, axes) for p in results.methods[e.name].points] for e in study.methods}


def compare(results: RunResults, study: Study, layout: RunLayout) -> dict[str, Any]:
    """The comparison block on ``[pareto] axes``, and on ``also`` (a second judge's axes) under
    ``block["also"]``; front measures go into each method's summary (``hypervolume``, and
    ``hypervolume[lm]`` for the second set)."""
    design = Design.of(results)
    block = compare_on(results, study, layout, study.pareto.axes, "", design)
    if study.pareto.also:
        block["also"] = compare_on(results, study, layout, study.pareto.also, _short_prefix(study.pareto.also), design)
    judges = (study.pareto.axes, study.pareto.also) if _same_styles(study.pareto.axes, study.pareto.also) else None
    block["answers"] = answer_evidence(results, design, block["anchor"], [*study.pareto.axes, *study.pareto.also], judges)
    block["design"] = {"prompts": len(design.prompts), "seeds": design.seeds, "resamples": int(design.draws.seeds.shape[0]),
                       "level": 0.95}
    if study.pareto.candidates:
        block["pick"] = {**pick_setting(block, study.pareto.candidates), "split": study.data.split, "prompts": len(design.prompts)}
    return block


def refresh_evidence(results: RunResults) -> bool:
    """Intervals and verdicts for a finished run's comparison block from its records alone (no
    study file, no figures): for results published before intervals existed. Coordinates come
    from each method's stored controls (a simplex control is its weight list, in the method's
    dimension order). False when the run has no comparison block."""
    block = results.comparison
    if not block:
        return False
    design = Design.of(results)
    for part in [block, *([block["also"]] if block.get("also") else [])]:
        axes, tag = part["axes"], part.get("tag", "")
        key = (lambda k, t=tag: f"{k}[{t}]") if tag else (lambda k: k)  # noqa: E731
        coords = {n: [_stored_coordinates(m, p.control, axes) for p in m.points] for n, m in results.methods.items()}
        evidence = front_evidence(results, design, coords, axes, part["anchor"], key)
        for other, measures in evidence.tests.items():
            part["versus"].setdefault(other, {})["tests"] = measures
    also = block.get("also", {}).get("axes", [])
    judges = (block["axes"], also) if _same_styles(block["axes"], also) else None
    block["answers"] = answer_evidence(results, design, block["anchor"], [*block["axes"], *also], judges)
    block["design"] = {"prompts": len(design.prompts), "seeds": design.seeds, "resamples": int(design.draws.seeds.shape[0]), "level": 0.95}
    return True


def _stored_coordinates(method: MethodResult, control: Any, axes: list[str]) -> tuple[float, ...]:
    dims = method.controls.get("dimensions", [])
    if method.controls.get("kind") != "simplex" or not isinstance(control, list) or len(dims) != len(axes):
        return ()
    by_name = dict(zip(dims, control))
    return tuple(float(by_name[_short(a)]) for a in axes) if all(_short(a) in by_name for a in axes) else tuple(map(float, control))


def _same_styles(axes: list[str], also: list[str]) -> bool:
    """Two judges over the same styles in the same order (``judge.helpful`` ~ ``lm.helpful``)."""
    return bool(also) and [_short(a) for a in axes] == [_short(a) for a in also]


def _short_prefix(axes: list[str]) -> str:
    return axes[0].split(".")[0] if "." in axes[0] else "also"


def compare_on(results: RunResults, study: Study, layout: RunLayout, axes: list[str], tag: str, design: Design) -> dict[str, Any]:
    """Fill each method's front summary on ``axes``; return the comparison block (figures relative to the run)."""
    key = (lambda k: f"{k}[{tag}]") if tag else (lambda k: k)  # noqa: E731
    stem = (lambda s: f"{s}_{tag}") if tag else (lambda s: s)  # noqa: E731
    coords = method_coordinates(results, study, axes)
    pts = {}
    for name, method in results.methods.items():
        scores = [p.scores for p in method.points]
        method.summary.update({key(k): v for k, v in pareto.front_summary(coords[name], scores, axes).items()})
        pts[name] = pareto.points(scores, axes)
    anchor = study.pareto.anchor if study.pareto.anchor in pts else next(iter(pts))
    block: dict[str, Any] = {"axes": axes, "anchor": anchor, "versus": {}, "figures": [], "tag": tag}
    for other in pts:
        if other != anchor:
            block["versus"][other] = {
                "coverage_of_other": pareto.coverage(pts[anchor], pts[other]),
                "coverage_by_other": pareto.coverage(pts[other], pts[anchor]),
                "hypervolume_ratio": _ratio(results.methods[anchor].summary[key("hypervolume")], results.methods[other].summary[key("hypervolume")]),
            }
    evidence = front_evidence(results, design, coords, axes, anchor, key)
    for other, measures in evidence.tests.items():
        block["versus"][other]["tests"] = measures
    corners = {n: pareto.corner_effects(coords[n], [p.scores for p in m.points], axes) for n, m in results.methods.items()}
    block["corners"] = {k: v for k, v in corners.items() if v}
    bars = {n: _point_bars(results.methods[n], evidence.points[n], axes) for n in pts}
    figures = [_plot_projections(pts, bars, axes, layout.figure(stem("fronts_pairwise")))]
    if len(axes) == 3:
        figures.append(_plot_ternary(results.methods, coords, axes, layout.figure(stem("fronts_ternary"))))
    figures.append(_plot_hypervolume(results.methods, layout.figure(stem("hypervolume")), key("hypervolume")))
    figures.append(_plot_edges(results.methods, coords, evidence.points, axes, layout.figure(stem("simplex_edges"))))
    block["figures"] = [{"path": layout.relative(path), "caption": caption} for path, caption in figures if path is not None]
    return block


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf") if a > 0 else float("nan")


def _short(axis: str) -> str:
    return axis.split(".")[-1]


def _point_bars(method: MethodResult, intervals: dict[str, dict[str, list[float]]], axes: list[str]) -> np.ndarray:
    """(points, axes, 2) interval of each plotted point (the rows ``pareto.points`` keeps)."""
    kept = [p for p in method.points if all(a in p.scores and math.isfinite(p.scores[a]) for a in axes)]
    return np.array([[intervals.get(p.label, {}).get(a, [np.nan, np.nan]) for a in axes] for p in kept], dtype=float).reshape(-1, len(axes), 2)


def _plot_projections(pts: dict[str, np.ndarray], bars: dict[str, np.ndarray], axes: list[str], path: Path) -> tuple[Path, str]:
    pairs = list(itertools.combinations(range(len(axes)), 2))
    fig, panels = new_figure(ncols=len(pairs), width=4.0, height=3.8)
    panels = panels if len(pairs) > 1 else [panels]
    for ax, (i, j) in zip(panels, pairs):
        for k, (name, p) in enumerate(pts.items()):
            if len(p):
                front = pareto.nondominated_mask(p)
                err = lambda axis: np.abs(bars[name][:, axis, :].T - p[:, axis])  # noqa: E731  (2, points) below / above (abs: never negative)
                ax.errorbar(p[:, i], p[:, j], xerr=err(i), yerr=err(j), fmt="none", ecolor=f"C{k}", alpha=0.3, lw=0.8)
                ax.scatter(p[:, i], p[:, j], marker=MARKERS[k % len(MARKERS)], alpha=0.35, color=f"C{k}")
                ax.scatter(p[front, i], p[front, j], marker=MARKERS[k % len(MARKERS)], color=f"C{k}", label=name)
        ax.set_xlabel(_short(axes[i]))
        ax.set_ylabel(_short(axes[j]))
    panels[0].legend(fontsize=7)
    fig.suptitle("Mean judged scores per control, 95% intervals (solid: non-dominated in all axes)")
    save_figure(fig, path)
    return path, "Pairwise projections of each method's points and front, each point with its 95% interval on both axes"


def _ternary_xy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    share = p / np.clip(p.sum(1, keepdims=True), 1e-9, None)
    return share[:, 1] + 0.5 * share[:, 2], share[:, 2] * np.sqrt(3) / 2


def _rescaled(p: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Each style's score mapped to [0, 1] over the range every plotted point spans on it."""
    return (p - low) / np.clip(high - low, 1e-9, None)


def _plot_ternary(methods: dict[str, MethodResult], coords: dict[str, list[tuple[float, ...]]], axes: list[str],
                  path: Path) -> tuple[Path, str]:
    """Two views of the same points. Left: each point's scores normalised to sum 1, as scored; a
    judge whose probabilities stay near 1/3 (a blurry one) puts every point near the centre, so
    this panel alone cannot show whether a control moved the style. Right: each style first
    rescaled to the range all points span on it (min 0, max 1), so the panel shows which corner
    each point leans to relative to the others. The controls that put all weight on one style are
    drawn large and lettered with it: they should sit towards their own corner."""
    plotted, corners = {}, {}
    for name, method in methods.items():
        kept = [(q.scores, c) for q, c in zip(method.points, coords.get(name) or [()] * len(method.points))
                if all(a in q.scores and math.isfinite(q.scores[a]) for a in axes)]
        plotted[name] = pareto.points([sc for sc, _ in kept], axes)
        corners[name] = [corner_of(c) for _, c in kept]
    stacked = np.concatenate([p for p in plotted.values() if len(p)]) if any(len(p) for p in plotted.values()) else np.zeros((0, 3))
    low, high = (stacked.min(0), stacked.max(0)) if len(stacked) else (np.zeros(3), np.ones(3))
    fig, panels = new_figure(ncols=2, width=5.2, height=5.0)
    for ax, rescale, title in ((panels[0], False, "as scored"), (panels[1], True, "each style rescaled to its range over all points")):
        ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="grey", lw=0.8)
        for (x, y), label in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], axes):
            ax.annotate(_short(label), (x, y), ha="center", va="top" if y == 0 else "bottom")
        for k, (name, p) in enumerate(plotted.items()):
            if not len(p):
                continue
            x, y = _ternary_xy(_rescaled(p, low, high) + 0.05 if rescale else p)
            marker, color = MARKERS[k % len(MARKERS)], f"C{k}"
            ax.scatter(x, y, marker=marker, color=color, alpha=0.55, s=22, label=name)
            for i, corner in enumerate(corners[name]):
                if corner is not None:
                    ax.scatter(x[i], y[i], marker=marker, color=color, s=110, edgecolors="black", linewidths=0.8)
                    ax.annotate(_short(axes[corner])[:2], (x[i], y[i]), xytext=(5, 4), textcoords="offset points", fontsize=7)
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
    panels[1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Judged style mix per control (large, lettered: the control that asks for one style only)")
    save_figure(fig, path)
    return path, ("Ternary view: where each control lands in style space (left: scores normalised to sum 1; "
                  "right: each style rescaled to its range over all points first)")


def _plot_hypervolume(methods: dict[str, MethodResult], path: Path, key: str = "hypervolume") -> tuple[Path, str]:
    names = list(methods)
    values = np.array([methods[n].summary[key] for n in names])
    intervals = np.array([methods[n].intervals.get(key, [np.nan, np.nan]) for n in names], dtype=float)
    fig, ax = new_figure(width=5.0, height=3.5)
    ax.bar(names, values, color=[f"C{k}" for k in range(len(names))])
    ax.errorbar(names, values, yerr=np.abs(intervals.T - values), fmt="none", ecolor="black", capsize=4)  # abs: never negative
    ax.set_ylabel("hypervolume (reference 0)")
    ax.set_title("Hypervolume per method (95% intervals)")
    save_figure(fig, path)
    return path, "Hypervolume per method with its 95% interval (paired bootstrap over prompts and seeds)"


def _plot_edges(methods: dict[str, MethodResult], coords: dict[str, list[tuple[float, ...]]],
                intervals: dict[str, dict[str, dict[str, list[float]]]], axes: list[str], path: Path) -> tuple[Path | None, str]:
    """Every method with one coordinate per axis, along the simplex edges, in the same panels."""
    series = {n: list(zip(coords[n], [p.scores for p in r.points], [intervals[n].get(p.label, {}) for p in r.points]))
              for n, r in methods.items() if coords[n] and all(coords[n])}
    drawn = bool(series) and simplex_edges("Scores along the simplex edges (bands: 95% intervals)", axes, series, path)
    return (path if drawn else None), "Scores along the simplex edges with 95% bands (solid: first style of the edge, dashed: second)"

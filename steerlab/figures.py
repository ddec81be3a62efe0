"""Figures and tables every part of steerlab draws with: matplotlib (Agg) and Markdown.

Kept apart from the report so control spaces, analyses and plugins can draw without importing
the runner.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = "os^Dv<>p*h"
# Columns shown first in tables and panels, when present; other scores follow alphabetically.
PREFERRED = ["words", "tokens", "stopped", "perplexity", "distinct3", "similarity", "kl"]


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return (fig, axes[0][0]) if ncols == 1 else (fig, axes[0])


def save_figure(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def score_columns(score_rows: Sequence[dict[str, float]]) -> list[str]:
    keys = {k for row in score_rows for k, v in row.items() if isinstance(v, float)}
    return [k for k in PREFERRED if k in keys] + sorted(keys - set(PREFERRED))


def score_panels(title: str, xlabel: str, xs: Sequence[float], scores: Sequence[dict[str, float]], path: Path,
                 mark: float | None = 0.0, intervals: Sequence[dict[str, Sequence[float]]] | None = None) -> None:
    """One small panel per score, each plotted against ``xs`` (``intervals``: per point, each
    score's [low, high], drawn as error bars)."""
    columns = [c for c in score_columns(scores) if c != "tokens"]
    ncols = max(1, min(4, len(columns)))
    nrows = max(1, -(-len(columns) // ncols))
    fig, grid = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    axes = grid.flatten()
    for ax in axes[len(columns):]:
        ax.set_axis_off()
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    for ax, column in zip(axes, columns):
        ys = [scores[i].get(column, float("nan")) for i in order]
        ax.plot([xs[i] for i in order], ys, "o-")
        bars = [intervals[i].get(column) for i in order] if intervals else []
        if bars and all(b is not None and len(b) == 2 for b in bars):
            low, high = [max(0.0, y - b[0]) for y, b in zip(ys, bars)], [max(0.0, b[1] - y) for y, b in zip(ys, bars)]
            ax.errorbar([xs[i] for i in order], ys, yerr=[low, high], fmt="none", capsize=3, color="C0", alpha=0.7)
        if mark is not None:
            ax.axvline(mark, color="grey", lw=0.8, ls=":")
        ax.set_title(column)
        ax.set_xlabel(xlabel)
    fig.suptitle(title)
    save_figure(fig, path)


def simplex_edges(title: str, axes: Sequence[str], series: dict[str, Sequence[tuple[Any, ...]]], path: Path) -> bool:
    """For each edge i-j of the simplex, the scores on ``axes[i]`` (solid) and ``axes[j]``
    (dashed) as the control moves from corner i to corner j; one colour per series (method).
    Each row is (coordinates, scores) or (coordinates, scores, {axis: [low, high]}), the last drawn
    as a band. Coordinate i of every control belongs to ``axes[i]``. False when no edge has two points."""
    m = len(axes)
    edges = list(itertools.combinations(range(m), 2))
    fig, panels = new_figure(ncols=len(edges), width=4.0, height=3.5)
    panels = panels if len(edges) > 1 else [panels]
    drawn = False
    for ax, (i, j) in zip(panels, edges):
        for k, (name, rows) in enumerate(series.items()):
            line = sorted((r for r in rows if all(r[0][t] == 0 for t in range(m) if t not in (i, j))), key=lambda r: r[0][j])
            if len(line) < 2:
                continue
            drawn = True
            t = [r[0][j] for r in line]
            marker = MARKERS[k % len(MARKERS)]
            prefix = f"{name}: " if len(series) > 1 else ""
            for axis, style in ((axes[i], "-"), (axes[j], "--")):
                ax.plot(t, [r[1].get(axis, float("nan")) for r in line], style, marker=marker, color=f"C{k}", label=f"{prefix}{axis}")
                bands = [r[2].get(axis) if len(r) > 2 else None for r in line]
                if all(b is not None for b in bands):
                    ax.fill_between(t, [b[0] for b in bands], [b[1] for b in bands], color=f"C{k}", alpha=0.12, lw=0)
        ax.set_xlabel(f"weight on {axes[j].split('.')[-1]} (rest on {axes[i].split('.')[-1]})")
        ax.set_ylabel("mean score")
        if ax.lines:
            ax.legend(fontsize=6)
    fig.suptitle(title)
    if drawn:
        save_figure(fig, path)
    else:
        plt.close(fig)
    return drawn

"""The transfer report's two figures, drawn from a ``hypotheses.Summary``: the transfer matrix
(test success at the dev choice, per direction and method) and success against strength (dev
success per strength, what chose; a star at the test success of the choice)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from steerlab.api import new_figure, save_figure

from steerlab_plugins.transfer.evidence import ORDER

if TYPE_CHECKING:
    from steerlab_plugins.transfer.hypotheses import Summary


def _short(model: str) -> str:
    return Path(model).name.split("-instruct")[0]


def transfer_matrix(summary: Summary, path: Path) -> bool:
    """Heat map: rows source → target, columns methods, cells the test success at the strength chosen on dev."""
    if not summary.directions:
        return False
    grid = [[(m.test.value if (m := d.entries.get(k)) else float("nan")) for k in ORDER] for d in summary.directions]
    fig, ax = new_figure(width=7.0, height=1.2 + 0.7 * len(grid))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(ORDER)), ORDER, rotation=25, ha="right")
    ax.set_yticks(range(len(grid)), [f"{_short(d.source)} → {_short(d.target)}" for d in summary.directions])
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, "-" if math.isnan(value) else f"{value:.2f}", ha="center", va="center",
                    color="white" if not math.isnan(value) and value < 0.5 else "black")
    ax.set_title("Test success (strength chosen on dev)")
    fig.colorbar(image, ax=ax, label="share of test prompts")
    save_figure(fig, path)
    return True


STYLES = {"direct": ("C1", ":", "v"), "random": ("0.5", "--", "x"), "ridge": ("C2", "-", "s"),
          "procrustes": ("C3", "-", "D"), "affine": ("C4", "-", "^"), "native": ("k", "-", "o")}


def success_curves(summary: Summary, path: Path) -> bool:
    """One panel per direction, one line per method (the entry chosen on dev): dev success against
    strength with 95% intervals (what chose), and the test success at the chosen strength (a star)."""
    if not summary.directions:
        return False
    fig, axes = new_figure(ncols=len(summary.directions), width=4.5, height=3.6)
    axes = [axes] if len(summary.directions) == 1 else list(axes)
    # Distinct colour and marker per method, and each method's points nudged sideways by a few
    # percent of the strength: with few prompts many methods tie, and tied lines hid each other.
    for ax, d in zip(axes, summary.directions):
        tried: set[float] = set()
        for k, kind in enumerate(ORDER):
            m = d.entries.get(kind)
            if m is None or not m.per_strength:
                continue
            tried.update(m.per_strength)
            colour, line, marker = STYLES.get(kind, (f"C{k}", "-", "o"))
            xs = sorted(m.per_strength)
            nudge = 1 + 0.015 * (k - (len(ORDER) - 1) / 2)
            ys = [m.per_strength[x] for x in xs]
            errors = [[max(e.value - e.low, 0.0) for e in ys], [max(e.high - e.value, 0.0) for e in ys]]
            ax.errorbar([x * nudge for x in xs], [e.value for e in ys], yerr=errors, marker=marker, color=colour,
                        linestyle=line, label=f"{kind} (dev)", capsize=2)
            if m.strength is not None and math.isfinite(m.test.value):
                low, high = max(m.test.value - m.test.low, 0.0), max(m.test.high - m.test.value, 0.0)
                ax.errorbar([m.strength * nudge], [m.test.value], yerr=[[low], [high]], marker="*", markersize=11, color=colour,
                            linestyle="none", capsize=2)
        ticks = sorted(tried)
        ax.set_xticks(ticks, [f"{c:g}" for c in ticks])  # ticks only at the strengths tried (points are nudged)
        if len(ticks) == 1:
            ax.set_xlim(ticks[0] * 0.9, ticks[0] * 1.1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("strength |c|")
        ax.set_ylabel("success: dev per strength, ★ test at the choice")
        ax.set_title(f"{_short(d.source)} → {_short(d.target)}")
        if tried:
            ax.legend(fontsize=7)
    save_figure(fig, path)
    return True

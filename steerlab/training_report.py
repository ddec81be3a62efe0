"""What a training log shows a reader: per-style loss curves with the held-out loss beside them,
and a table of the held-out loss per style (first measurement, best, and the step kept).

Shared by every method that trains on style SFT data with ``optimise``'s log convention
(``loss.<style>`` per step, ``heldout.<style>`` at each validation, ``best_step`` on the last
row when early stopping restored the best parameters), so Panacea and rewarded soups report
their overfitting the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steerlab.figures import markdown_table, new_figure, save_figure

Log = list[dict[str, Any]]


def plot_training_logs(logs: list[Log], dimensions: list[str], path: Path, title: str) -> Path:
    """One figure: each style's training loss (moving mean), its held-out loss (dots, dashed),
    and a mark at the step early stopping kept. ``logs`` may be one log holding every style
    (Panacea) or one log per style (one LoRA per style in soups)."""
    fig, ax = new_figure()
    for k, dim in enumerate(dimensions):
        color = f"C{k}"
        for log in logs:
            rows = [r for r in log if f"loss.{dim}" in r]
            if not rows:
                continue
            window = max(1, len(rows) // 20)
            values = np.convolve([r[f"loss.{dim}"] for r in rows], np.ones(window) / window, mode="valid")
            ax.plot([r["step"] for r in rows][window - 1:], values, color=color, lw=1.0, alpha=0.8, label=f"{dim} (train)")
            held = [(r["step"], r[f"heldout.{dim}"]) for r in log if f"heldout.{dim}" in r]
            if held:
                ax.plot(*zip(*held), "o--", color=color, ms=5, label=f"{dim} (held out)")
            best = log[-1].get("best_step") if log else None
            if best is not None:
                ax.axvline(best, color=color, ls=":", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("SFT loss (train: moving mean of ~5% of steps)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)
    return path


def heldout_table(logs: list[Log], dimensions: list[str]) -> str:
    """Markdown: per style, held-out loss at the first validation, its lowest, and the step kept
    (empty when nothing was held out)."""
    rows = []
    for dim in dimensions:
        for log in logs:
            held = [(r["step"], r[f"heldout.{dim}"]) for r in log if f"heldout.{dim}" in r]
            if held:
                kept = log[-1].get("best_step")
                rows.append([dim, held[0][1], min(v for _, v in held), held[-1][1], "last" if kept is None else int(kept) + 1])
    if not rows:
        return ""
    return markdown_table(["style", "held-out loss, first check", "lowest", "at the end", "step kept"], rows)


def heldout_accuracy(log: Log) -> list[tuple[int, float]]:
    """(step, held-out pair accuracy) at each validation of a preference-trained method's log
    (``heldout.accuracy``, written by ``optimise``'s ``Validation`` with ``pair_accuracy``)."""
    return [(int(r["step"]) + 1, float(r["heldout.accuracy"])) for r in log if "heldout.accuracy" in r]


def plot_heldout_accuracy(curves: dict[str, list[tuple[int, float]]], path: Path, title: str, required: float | None = None) -> Path:
    """Held-out pair accuracy against the step, one line per curve (a method, or a method at one
    seed; ``heldout_accuracy(log)`` gives a curve): whether a reward model or a head learnt the
    preference or memorised its training pairs. ``required``: a dashed line at the accuracy a
    method must reach to be used (the dotted line at 0.5 is chance)."""
    fig, ax = new_figure()
    styles = ["o-", "s--", "^-.", "v:"]  # curves that coincide (two seeds at the same accuracies) stay visible
    for k, (name, points) in enumerate(curves.items()):
        if points:
            ax.plot(*zip(*points), styles[k % len(styles)], color=f"C{k}", ms=6 - k % len(styles), label=name)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance")
    if required is not None:
        ax.axhline(required, color="black", lw=0.8, ls="--", label=f"required ({required:g})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out pair accuracy\n(chosen ranked above rejected)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return path


def preference_summary(log: Log, answer_tokens: dict[str, float], train_pairs: int, heldout_pairs: int) -> tuple[dict[str, float], str]:
    """A preference-trained method's held-out pair accuracy (first and last check) and the answer
    lengths of its training pairs per side (``PreferenceData.meta``), as numbers and a paragraph."""
    points = heldout_accuracy(log)
    summary = {"heldout_accuracy": points[-1][1] if points else float("nan")}
    lengths = (f" Training pairs: {train_pairs} ({heldout_pairs} held out); mean answer tokens chosen "
               f"{answer_tokens.get('chosen', float('nan')):.1f}, rejected {answer_tokens.get('rejected', float('nan')):.1f}.")
    if not points:
        return summary, "No pairs were held out: no held-out pair accuracy." + lengths
    text = (f"Held-out pair accuracy (chosen ranked above rejected on {heldout_pairs} pairs never trained on): "
            f"{points[0][1]:.3f} at step {points[0][0]}, **{points[-1][1]:.3f}** at the end (step {points[-1][0]}).")
    return summary, text + lengths

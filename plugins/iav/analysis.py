"""What IAV (and GenARM, which reuses this) add to the report: the training curves, one panel
per logged term, and the win rate against the unsteered answer at each alpha."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steerlab.api import (Artifact, Figure, Lab, Section, SweepResult, heldout_accuracy, markdown_table, new_figure, plot_heldout_accuracy,
                          preference_summary, save_figure)

IAV_TERMS = {"loss": "total L", "pref": "L_pref (DPO vs base)", "kl": "L_KL (steered || base)", "l2": "L_L2 (mean a_t^2)"}
WIN = "lm.chosen.win"
TABLE_COLUMNS = [WIN, "judge.chosen.win", "lm.chosen", "judge.chosen", "kl", "perplexity", "distinct3", "words"]


def smooth(values: list[float]) -> tuple[int, np.ndarray]:
    """A moving mean over about a twentieth of the run, and its window."""
    window = max(1, len(values) // 20)
    return window, np.convolve(np.asarray(values, dtype=float), np.ones(window) / window, mode="valid")


def plot_terms(log: list[dict[str, Any]], terms: dict[str, str], title: str, path: Path) -> None:
    """One panel per logged term against the step (raw in grey, moving mean on top)."""
    fig, axes = new_figure(ncols=len(terms), width=3.6, height=3.2)
    axes = np.atleast_1d(axes)
    steps = [row["step"] for row in log]
    for ax, (key, label) in zip(axes, terms.items()):
        values = [row[key] for row in log]
        window, mean = smooth(values)
        ax.plot(steps, values, color="0.8", linewidth=0.8)
        ax.plot(steps[window - 1:], mean, color="C0")
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
    fig.suptitle(title)
    save_figure(fig, path)


def win_table(result: SweepResult, label: str) -> str:
    """Mean scores per control: the win rate against the unsteered answer first."""
    present = [c for c in TABLE_COLUMNS if any(c in p.scores for p in result.points)]
    if not present:
        return ""
    rows = [[p.label, *[p.scores.get(c, float("nan")) for c in present]] for p in result.points]
    return markdown_table([label, *present], rows)


def training_section(lab: Lab, artifact: Artifact, result: SweepResult, folder: Path, terms: dict[str, str], title: str) -> Section:
    log = artifact.meta["train_log"]
    png = folder / "training.png"
    plot_terms(log, terms, title, png)
    last = log[-max(1, len(log) // 10):]  # the last tenth of the run
    summary = {f"train.{k}": float(np.mean([row[k] for row in last])) for k in (*terms, "accuracy") if k in log[0]}
    table = win_table(result, "alpha")
    text = f"Training (mean of the last {len(last)} steps): " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()) + "."
    if table:
        text += f"\n\nWin rate against the unsteered answer to the same prompt (1 win, 0.5 tie, 0 loss), per alpha:\n\n{table}\n"
    return Section(summary=summary, figures=[Figure(lab.layout.relative(png), title)], markdown=text)


def analyze(lab: Lab, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
    section = training_section(lab, artifact, result, folder, IAV_TERMS, "IAV training: each term of the loss per step")
    meta = artifact.meta
    held, held_text = preference_summary(meta["train_log"], meta.get("answer_tokens", {}), meta.get("train_pairs", 0), meta.get("heldout_pairs", 0))
    section.summary.update(held)
    section.markdown += f"\n\n{held_text}\n"
    if held["heldout_accuracy"] == held["heldout_accuracy"]:  # not NaN: pairs were held out
        section.data["heldout_accuracy"] = curve = heldout_accuracy(meta["train_log"])
        png = plot_heldout_accuracy({"iav": curve}, folder / "heldout_accuracy.png", "IAV head: held-out pair accuracy")
        section.figures.append(Figure(lab.layout.relative(png), "IAV head: held-out pair accuracy per check"))
    norms = artifact.meta.get("head_norms", [])
    if norms:
        section.data["head_norms"] = norms
        section.markdown += ("\n||Out_k|| per intervention head (zero before training): "
                             + ", ".join(f"{n:.3g}" for n in norms) + "\n")
    return section

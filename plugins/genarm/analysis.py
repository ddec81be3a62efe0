"""What GenARM adds to the report: the reward model's training curves, its held-out pair
accuracy per check (and whether it reached the accuracy required for its decoding to be used),
and the win rate against the unsteered answer at each alpha (the same table IAV's report shows)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from steerlab.api import (Artifact, Figure, Lab, Section, SweepResult, heldout_accuracy, markdown_table, new_figure, plot_heldout_accuracy,
                          preference_summary, save_figure)

TERMS = {"loss": "-log sigmoid(beta * margin)", "margin": "log pi_r(y_w) - log pi_r(y_l)", "accuracy": "training pairs ranked right"}
TABLE_COLUMNS = ["lm.chosen.win", "judge.chosen.win", "judge.chosen", "kl", "perplexity", "distinct3", "words"]


def plot_training(log: list[dict[str, float]], path: Path) -> None:
    """One panel per logged term against the step (raw in grey, a moving mean on top)."""
    fig, axes = new_figure(ncols=len(TERMS), width=3.6, height=3.2)
    steps, window = [row["step"] for row in log], max(1, len(log) // 20)
    for ax, (key, label) in zip(axes, TERMS.items()):
        values = np.array([row[key] for row in log], dtype=float)
        ax.plot(steps, values, color="0.8", linewidth=0.8)
        ax.plot(steps[window - 1:], np.convolve(values, np.ones(window) / window, mode="valid"), color="C0")
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
    fig.suptitle("GenARM reward-model training per step")
    save_figure(fig, path)


def win_table(result: SweepResult) -> str:
    present = [c for c in TABLE_COLUMNS if any(c in p.scores for p in result.points)]
    rows = [[p.label, *[p.scores.get(c, float("nan")) for c in present]] for p in result.points]
    return markdown_table(["alpha", *present], rows) if present else ""


def usable(accuracy: float, required: float) -> bool:
    """Whether the reward model may guide decoding in a table: its held-out pair accuracy reached
    ``required`` (a model that never held pairs out cannot show it did)."""
    return required <= 0 or (math.isfinite(accuracy) and accuracy >= required)


def requirement_text(meta: dict, accuracy: float) -> str:
    required = float(meta.get("require_heldout_accuracy", 0.0))
    if usable(accuracy, required):
        return f"It reaches the required {required:g}: its decoding is used." if required > 0 else ""
    tokens = meta.get("answer_tokens") or {}
    gap = tokens.get("chosen", math.nan) - tokens.get("rejected", math.nan)
    margin = meta.get("margin", "sum")
    advice = "more pairs or steps or another learning rate" + (" or `margin = \"mean\"`" if margin == "sum" else "")
    return (f"**Below the required {required:g}: GenARM's decoding is not used in the iav report's tables.** A reward model that "
            f"does not rank held-out pairs cannot guide decoding toward the preference. Margin `{margin}`; the training pairs' "
            f"answers differ by {gap:+.1f} tokens on average (chosen minus rejected: a summed margin can learn a length gap instead "
            f"of the style); {advice} may help.")


def analyze(lab: Lab, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
    log, meta = artifact.meta["train_log"], artifact.meta
    png, held_png = folder / "training.png", folder / "heldout_accuracy.png"
    plot_training(log, png)
    last = log[-max(1, len(log) // 10):]  # the last tenth of the run
    summary = {f"train.{k}": float(np.mean([row[k] for row in last])) for k in TERMS}
    held, held_text = preference_summary(log, meta.get("answer_tokens", {}), meta.get("train_pairs", 0), meta.get("heldout_pairs", 0))
    required = float(meta.get("require_heldout_accuracy", 0.0))
    summary.update(held, required_heldout_accuracy=required, reward_model_used=float(usable(held["heldout_accuracy"], required)))
    figures = [Figure(lab.layout.relative(png), "GenARM reward-model training per step")]
    if not math.isnan(held["heldout_accuracy"]):
        plot_heldout_accuracy({"genarm": heldout_accuracy(log)}, held_png, "GenARM reward model: held-out pair accuracy", required or None)
        figures.append(Figure(lab.layout.relative(held_png), "GenARM reward model: held-out pair accuracy per check"))
    text = (f"Reward-model training (mean of the last {len(last)} steps): " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()
                                                                                       if k.startswith("train.")) + ".")
    text += f"\n\nReward model. {held_text} {requirement_text(meta, held['heldout_accuracy'])}"
    if table := win_table(result):
        text += ("\n\nWin rate against the unsteered answer to the same prompt (1 win, 0.5 tie, 0 loss), "
                 f"per alpha:\n\n{table}\n")
    return Section(summary=summary, figures=figures, markdown=text, data={"heldout_accuracy": heldout_accuracy(log)})

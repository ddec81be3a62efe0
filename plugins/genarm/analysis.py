"""What GenARM adds to the report: the reward model's training curves and the win rate against
the unsteered answer at each alpha (the same table IAV's report shows, so the two compare)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steerlab.api import Artifact, Figure, Lab, Section, SweepResult, markdown_table, new_figure, save_figure

TERMS = {"loss": "-log sigmoid(beta * margin)", "margin": "sum log pi_r(y_w) - sum log pi_r(y_l)", "accuracy": "pairs ranked right"}
TABLE_COLUMNS = ["judge.chosen.win", "judge.chosen", "kl", "perplexity", "distinct3", "words"]


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


def analyze(lab: Lab, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
    log = artifact.meta["train_log"]
    png = folder / "training.png"
    plot_training(log, png)
    last = log[-max(1, len(log) // 10):]  # the last tenth of the run
    summary = {f"train.{k}": float(np.mean([row[k] for row in last])) for k in TERMS}
    text = f"Reward-model training (mean of the last {len(last)} steps): " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()) + "."
    if table := win_table(result):
        text += ("\n\nWin rate against the unsteered answer to the same prompt (judge.chosen.win: 1 win, 0.5 tie, 0 loss), "
                 f"per alpha:\n\n{table}\n")
    return Section(summary=summary, figures=[Figure(lab.layout.relative(png), "GenARM reward-model training per step")], markdown=text)

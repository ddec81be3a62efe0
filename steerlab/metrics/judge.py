"""The style judge: MiniLM sentence embeddings + scikit-learn logistic regression.

It is trained on a study's labelled examples (``[judge] data``), reports its own held-out
accuracy so a reader knows how far to trust its scores, and is saved as safetensors + JSON
(coefficients, intercepts, classes): no pickle, and scoring needs no sklearn object.

With three or more classes it is one-vs-rest: each style gets its own sigmoid score, so the
scores do not sum to one. That matters for Pareto fronts: softmax probabilities put every
point on the plane sum = 1, where no point can dominate another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier

from steerlab.artifact import Artifact
from steerlab.config import help_field, path_field
from steerlab.data.files import read_labelled
from steerlab.errors import ConfigError
from steerlab.figures import markdown_table, new_figure, save_figure
from steerlab.metrics.base import BaseMetric, MetricContext, Sample
from steerlab.metrics.builtin import embedder
from steerlab.results import Figure, Section

if TYPE_CHECKING:
    from steerlab.metrics.embedding import SentenceEmbedder

EMBED_DIM = 384


@dataclass(frozen=True)
class JudgeConfig:
    data: str = path_field(help="JSONL of labelled texts ({'text', 'label'}): MiniLM embeddings + logistic regression", jsonl=("text", "label"))
    test_fraction: float = help_field(0.25, "held-out share used to report the judge's accuracy")
    C: float = help_field(1.0, "inverse regularisation strength of the logistic regression")
    versus_base: bool = help_field(False, "also score judge.LABEL.win per answer: 1 when the judge rates it higher on LABEL "
                                          "than the unsteered answer to the same prompt, 0.5 on a tie, else 0")

    def __post_init__(self) -> None:
        if not 0.05 <= self.test_fraction <= 0.5:
            raise ValueError(f"key 'test_fraction' must be between 0.05 and 0.5 (got {self.test_fraction})")
        if self.C <= 0:
            raise ValueError(f"key 'C' must be > 0 (got {self.C})")


def _classifier(n_classes: int, C: float):
    base = LogisticRegression(C=C, max_iter=2000)
    return base if n_classes == 2 else OneVsRestClassifier(base)


def _weights(clf) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(clf, OneVsRestClassifier):
        return (np.concatenate([e.coef_ for e in clf.estimators_]), np.concatenate([e.intercept_ for e in clf.estimators_]))
    return clf.coef_.copy(), clf.intercept_.copy()


def heldout_split(labels: list[str], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and held-out indices, stratified by label. One function, so another judge given the
    same labels, fraction and seed (the likelihood judge's ``test_fraction``) reports its accuracy
    on exactly the texts this judge never trained on."""
    train, test = train_test_split(list(range(len(labels))), test_size=test_fraction, random_state=seed, stratify=labels)
    return list(train), list(test)


@dataclass
class StyleJudge:
    classes: list[str]
    coef: np.ndarray  # (n_classes or 1, d)
    intercept: np.ndarray  # (n_classes or 1,)
    report: dict[str, Any]  # accuracy, per-class counts, confusion matrix
    embedder: SentenceEmbedder

    @classmethod
    def train(cls, texts: list[str], labels: list[str], embedder: SentenceEmbedder, test_fraction: float = 0.25, C: float = 1.0, seed: int = 0) -> "StyleJudge":
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ConfigError(f"the judge needs at least two labels, got {classes}")
        x = embedder.embed(texts)
        train, test = heldout_split(labels, test_fraction, seed)
        x_tr, x_te, y_tr, y_te = x[train], x[test], [labels[i] for i in train], [labels[i] for i in test]
        clf = _classifier(len(classes), C).fit(x_tr, y_tr)
        predicted = clf.predict(x_te)
        report = {
            "accuracy": float(accuracy_score(y_te, predicted)),
            "chance": float(max(y_te.count(c) for c in classes) / len(y_te)),
            "n_train": len(y_tr),
            "n_test": len(y_te),
            "classes": list(clf.classes_),
            "confusion": confusion_matrix(y_te, predicted, labels=clf.classes_).tolist(),
        }
        coef, intercept = (w.astype(np.float64) for w in _weights(clf))  # as a reloaded judge has them
        return cls(list(clf.classes_), coef, intercept, report, embedder)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(n, n_classes) scores from the saved coefficients: two classes, p and 1 - p;
        more, an independent one-vs-rest sigmoid per class."""
        logits = self.embedder.embed(texts) @ self.coef.T + self.intercept
        sigmoid = 1.0 / (1.0 + np.exp(-logits))
        if len(self.classes) == 2:  # one column, for the second class
            return np.stack([1.0 - sigmoid[:, 0], sigmoid[:, 0]], axis=1)
        return sigmoid

    def to_artifact(self) -> Artifact:
        tensors = {"coef": torch.from_numpy(self.coef).double(), "intercept": torch.from_numpy(self.intercept).double()}  # float64: a reloaded judge scores exactly like the trained one
        return Artifact(tensors, {"method": "style-judge", "classes": self.classes, "report": self.report})

    @classmethod
    def from_artifact(cls, artifact: Artifact, embedder: SentenceEmbedder, where: Path | str = "judge") -> "StyleJudge":
        classes = artifact.meta.get("classes")
        if not isinstance(classes, list) or len(classes) < 2 or not isinstance(artifact.meta.get("report"), dict):
            raise ConfigError(f"{where}: judge metadata lacks its classes or report")
        rows = 1 if len(classes) == 2 else len(classes)
        coef = artifact.expect("coef", (rows, EMBED_DIM), where)
        intercept = artifact.expect("intercept", (rows,), where)
        return cls(classes, coef.double().numpy(), intercept.double().numpy(), artifact.meta["report"], embedder)

    @classmethod
    def for_run(cls, ctx: MetricContext) -> "StyleJudge":
        """Load this run's judge, or train it from the study's ``[metrics.judge]`` data and save it."""
        if Artifact.exists(ctx.folder):
            return cls.from_artifact(Artifact.load(ctx.folder), embedder(ctx), ctx.folder / "artifact.json")
        texts, labels = read_labelled(Path(ctx.config.data))
        if len(set(labels)) < 2:  # before any embedding: the file and what it lacks
            raise ConfigError(f"{ctx.config.data}: the judge needs texts of at least two labels, got only {sorted(set(labels))}")
        judge = cls.train(texts, labels, embedder(ctx), ctx.config.test_fraction, ctx.config.C, ctx.lab.study_seed)
        judge.to_artifact().save(ctx.folder)
        return judge


class JudgeMetric(BaseMetric):
    """The style judge as a metric: a score per label, and a report section on how far to trust it."""

    name = "judge"
    description = "style judge (MiniLM + logistic regression, one-vs-rest for 3+ labels): score of each label"
    Config = JudgeConfig

    def outputs(self, config: JudgeConfig) -> list[str]:
        _, labels = read_labelled(Path(config.data))
        classes = sorted(set(labels))
        return [f"judge.{c}" for c in classes] + ([f"judge.{c}.win" for c in classes] if config.versus_base else [])

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        judge = ctx.memo("judge", lambda: StyleJudge.for_run(ctx))
        probs = judge.probabilities([s.output for s in samples])
        rows = [{f"judge.{c}": float(p) for c, p in zip(judge.classes, row)} for row in probs]
        if ctx.config.versus_base:
            base = judge.probabilities([s.base.output for s in samples])
            for row, sample, mine, theirs in zip(rows, samples, probs, base):
                row.update(wins("judge", judge.classes, mine, theirs, same_text=sample.output == sample.base.output))
        return rows

    def section(self, ctx: MetricContext) -> Section:
        judge = ctx.memo("judge", lambda: StyleJudge.for_run(ctx))
        report = judge.report
        png = ctx.folder / "confusion.png"
        plot_confusion(report["classes"], report["confusion"], png)
        rows = [[truth, *counts] for truth, counts in zip(report["classes"], report["confusion"])]
        text = (f"MiniLM + logistic regression, held-out accuracy **{report['accuracy']:.3f}** (chance {report['chance']:.3f}; "
                f"{report['n_test']} test / {report['n_train']} train texts). Confusion on the held-out texts "
                f"(rows: true label, columns: predicted):\n\n" + markdown_table(["true \\ predicted", *report["classes"]], rows))
        return Section(summary={"accuracy": report["accuracy"], "chance": report["chance"]},
                       figures=[Figure(ctx.lab.layout.relative(png), "Judge confusion matrix on its held-out texts")],
                       markdown=text, data={"classes": report["classes"], "confusion": report["confusion"],
                                            "judge": {"prefix": "judge", "classes": report["classes"], "model": "MiniLM + logistic regression",
                                                      "n": report["n_test"], "correct": int(round(report["accuracy"] * report["n_test"])),
                                                      "chance": report["chance"]}})


def wins(prefix: str, classes: list[str], mine: np.ndarray, theirs: np.ndarray, same_text: bool) -> dict[str, float]:
    """``PREFIX.LABEL.win``: 1.0 when ``mine`` scores higher on LABEL than ``theirs``, 0.5 on a tie,
    else 0.0. The same text is a tie by definition (its two scores, made in different batches,
    may differ in the last bits). Shared by every judge that compares with the unsteered answer."""
    if same_text:
        return {f"{prefix}.{c}.win": 0.5 for c in classes}
    return {f"{prefix}.{c}.win": 1.0 if m > t else 0.5 if m == t else 0.0 for c, m, t in zip(classes, mine, theirs)}


def plot_confusion(classes: list[str], confusion: list[list[int]], path: Path) -> None:
    fig, ax = new_figure(width=4.2, height=3.6)
    matrix = np.array(confusion, dtype=float)
    shares = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Judge on held-out texts (row share)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, path)

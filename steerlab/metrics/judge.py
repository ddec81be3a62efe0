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
from steerlab.data import read_labelled
from steerlab.errors import ConfigError

if TYPE_CHECKING:
    from steerlab.lab import Lab
    from steerlab.metrics.embedding import SentenceEmbedder


def _classifier(n_classes: int, C: float):
    base = LogisticRegression(C=C, max_iter=2000)
    return base if n_classes == 2 else OneVsRestClassifier(base)


def _weights(clf) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(clf, OneVsRestClassifier):
        return (np.concatenate([e.coef_ for e in clf.estimators_]), np.concatenate([e.intercept_ for e in clf.estimators_]))
    return clf.coef_.copy(), clf.intercept_.copy()


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
        x_tr, x_te, y_tr, y_te = train_test_split(x, labels, test_size=test_fraction, random_state=seed, stratify=labels)
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
        coef, intercept = _weights(clf)
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
        tensors = {"coef": torch.from_numpy(self.coef).float(), "intercept": torch.from_numpy(self.intercept).float()}
        return Artifact(tensors, {"method": "style-judge", "classes": self.classes, "report": self.report})

    @classmethod
    def from_artifact(cls, artifact: Artifact, embedder: SentenceEmbedder) -> "StyleJudge":
        return cls(artifact.meta["classes"], artifact.tensors["coef"].double().numpy(),
                   artifact.tensors["intercept"].double().numpy(), artifact.meta["report"], embedder)

    @classmethod
    def for_run(cls, lab: Lab) -> "StyleJudge":
        """Load this run's judge, or train it from the study's ``[judge]`` data and save it."""
        folder = lab.run_dir / "judge"
        if (folder / "artifact.json").exists():
            return cls.from_artifact(Artifact.load(folder), lab.embedder())
        settings = lab.study.judge
        if settings.data is None:
            raise ConfigError(f"{lab.study.path}: the judge metric needs [judge] data = 'labelled.jsonl'")
        texts, labels = read_labelled(Path(settings.data))
        judge = cls.train(texts, labels, lab.embedder(), settings.test_fraction, settings.C, lab.seed)
        judge.to_artifact().save(folder)
        return judge

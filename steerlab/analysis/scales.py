"""Fixed 0-2 scales for instruction and fluency, calibrated once on labelled text.

Why fixed: a score relative to the unsteered model's own medians gives the unsteered model about
2 by construction, so doing nothing earns free points (issue 27). Here every answer is placed on
the same scale whoever wrote it: one feature per cue, and two cut points read from labelled text
whose level is known by how it was made (``steerlab/analysis/scale_data.py``: good 2, partial 1,
bad 0), never from the model being compared.

* **instruction** (does the answer address the request): MiniLM cosine of answer and request
  (the ``relevance`` metric);
* **fluency**, two cues and the lower of their levels (each misses what the other sees: a loop is
  very predictable, a shuffle has no repeated trigram): the answer's log-perplexity under the
  base model given the plain prompt (``log`` of the ``perplexity`` metric), and the share of
  distinct word trigrams (``distinct3``).

Each cut is the feature value where a one-feature logistic regression (sklearn, the feature
standardised, classes balanced) puts even odds on "at least this level"; an answer's level is
how many of its cue's two cuts it passes (0, 1 or 2), as AxBench's judges give 0 / 1 / 2. A
missing feature is level 0. The cut points, their fits and their held-out accuracies (with 95%
intervals over held-out requests, ``steerlab.stats``) are saved in ``scales.json``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from steerlab import stats
from steerlab.errors import ConfigError
from steerlab.storage import read_json_object

VERSION = 1
COMPONENTS = ("instruction", "fluency")
LEVELS = (0, 1, 2)


def _log_perplexity(scores: Mapping[str, float]) -> float:
    value = scores.get("perplexity", float("nan"))
    return math.log(value) if value > 0 else float("nan")


# feature name -> how it is read from an answer's metric scores (the record's ``scores``)
FEATURES: dict[str, Callable[[Mapping[str, float]], float]] = {
    "relevance": lambda s: s.get("relevance", float("nan")),
    "log_perplexity": _log_perplexity,
    "distinct3": lambda s: s.get("distinct3", float("nan")),
}


@dataclass(frozen=True)
class Fit:
    """One cut's logistic regression on the standardised feature: p(level >= k) = sigmoid(coef * z + intercept)."""

    coef: float
    intercept: float
    mean: float
    std: float

    @property
    def cut(self) -> float:
        """The feature value at even odds."""
        return self.mean - self.std * self.intercept / self.coef


@dataclass(frozen=True)
class Scale:
    """One cue: a feature, its direction and two cut points (the first for level 1, the second for 2)."""

    feature: str
    higher_is_better: bool
    cuts: tuple[float, float]
    fits: tuple[Fit, ...] = ()
    held_out: tuple[dict[str, Any], ...] = ()  # each cut's accuracy on held-out labelled text

    def passes(self, value: float, k: int) -> bool:
        cut = self.cuts[k]
        return bool(math.isfinite(value) and (value > cut if self.higher_is_better else value < cut))

    def level(self, value: float) -> int:
        """0, 1 or 2: how many cuts ``value`` passes (a missing value passes none)."""
        return sum(self.passes(value, k) for k in range(2))

    def level_of(self, scores: Mapping[str, float]) -> int:
        return self.level(FEATURES[self.feature](scores))


@dataclass(frozen=True)
class Scales:
    """The fixed scales of one model: per component, its cues (the component's level is their lowest)."""

    model: str
    components: dict[str, tuple[Scale, ...]]
    path: str = ""
    sha256: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # how they were built, held-out accuracy per component

    def level(self, component: str, scores: Mapping[str, float]) -> int:
        return min(s.level_of(scores) for s in self.components[component])

    def summary(self) -> dict[str, Any]:
        """What a run records about the scales it used (file, digest, model, cut points)."""
        return {"path": self.path, "sha256": self.sha256, "model": self.model,
                **{c: [{"feature": s.feature, "cuts": list(s.cuts)} for s in cues] for c, cues in self.components.items()}}

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "model": self.model, **self.meta,
                "components": {c: [_scale_json(s) for s in cues] for c, cues in self.components.items()}}


def _scale_json(scale: Scale) -> dict[str, Any]:
    return {"feature": scale.feature, "higher_is_better": scale.higher_is_better, "cuts": list(scale.cuts),
            "fits": [asdict(f) for f in scale.fits], "held_out": list(scale.held_out)}


def load_scales(path: Path | str, where: str = "") -> Scales:
    """The scales saved at ``path``; a missing or malformed file is a ConfigError naming the file, the key and what was expected."""
    path = Path(path)
    lead = f"{where}: " if where else ""
    if not path.is_file():
        raise ConfigError(f"{lead}{path}: scales file not found (write it with `steerlab data build compare-scales "
                          "--from studies/data/chat3d --out studies/data/compare`)")
    data = read_json_object(path, "scales file", ("version", "model", "components"))
    if data["version"] != VERSION:
        raise ConfigError(f"{path}: key 'version' expected {VERSION}, got {data['version']!r} (rebuild the scales)")
    components = data["components"]
    if not isinstance(components, dict) or set(components) != set(COMPONENTS):
        raise ConfigError(f"{path}: key 'components' expected an object with exactly {', '.join(COMPONENTS)}")
    parsed = {c: tuple(_parse_scale(path, f"components.{c}[{i}]", s) for i, s in enumerate(_non_empty(path, c, components[c])))
              for c in COMPONENTS}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    meta = {k: v for k, v in data.items() if k not in ("version", "model", "components")}
    return Scales(str(data["model"]), parsed, str(path), digest, meta)


def _non_empty(path: Path, component: str, value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: key 'components.{component}' expected a non-empty list of scales")
    return value


def _parse_scale(path: Path, key: str, raw: Any) -> Scale:
    if not isinstance(raw, dict) or raw.get("feature") not in FEATURES:
        raise ConfigError(f"{path}: key '{key}.feature' expected one of {', '.join(FEATURES)}")
    cuts, up = raw.get("cuts"), raw.get("higher_is_better")
    if not isinstance(up, bool):
        raise ConfigError(f"{path}: key '{key}.higher_is_better' expected true/false, got {up!r}")
    if not (isinstance(cuts, list) and len(cuts) == 2 and all(isinstance(c, (int, float)) and math.isfinite(c) for c in cuts)):
        raise ConfigError(f"{path}: key '{key}.cuts' expected two finite numbers, got {cuts!r}")
    if (cuts[1] < cuts[0]) if up else (cuts[1] > cuts[0]):
        raise ConfigError(f"{path}: key '{key}.cuts' must be ordered (level 2 is past level 1's cut), got {cuts}")
    fits = tuple(Fit(**f) for f in raw.get("fits", []))
    return Scale(raw["feature"], up, (float(cuts[0]), float(cuts[1])), fits, tuple(raw.get("held_out", [])))


# ---- calibration: one-feature logistic regressions on labelled values ----

def fit_cut(values: Sequence[float], at_least: Sequence[bool]) -> Fit:
    """The logistic regression of "level >= k" on one standardised feature (L2, C = 1, balanced classes)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(values, dtype=float)
    y = np.asarray(at_least, dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("a cut needs labelled examples on both sides of it")
    mean, std = float(x.mean()), float(x.std()) or 1.0
    model = LogisticRegression(C=1.0, class_weight="balanced").fit(((x - mean) / std)[:, None], y)
    return Fit(float(model.coef_[0, 0]), float(model.intercept_[0]), mean, std)


def fit_scale(feature: str, values: Sequence[float], levels: Sequence[int], higher_is_better: bool) -> Scale:
    """Two cuts (level >= 1, level >= 2) from labelled values; an error when the labels do not
    order along the feature the way ``higher_is_better`` says (the cue does not measure the level)."""
    lv = np.asarray(levels)
    fits = tuple(fit_cut(values, lv >= k) for k in (1, 2))
    if any((f.coef > 0) != higher_is_better for f in fits):
        raise ValueError(f"feature '{feature}': the labelled levels do not rise with {'higher' if higher_is_better else 'lower'} values")
    cuts = (fits[0].cut, fits[1].cut)
    if (cuts[1] < cuts[0]) if higher_is_better else (cuts[1] > cuts[0]):
        raise ValueError(f"feature '{feature}': cut for level 2 ({cuts[1]:.4g}) falls before the cut for level 1 ({cuts[0]:.4g})")
    return Scale(feature, higher_is_better, cuts, fits)


def accuracy(correct: Sequence[bool], groups: Sequence[str]) -> stats.Estimate:
    """Share correct with its 95% interval, resampling held-out requests (examples of one request
    go together): the mean over requests of each request's share."""
    by_group: dict[str, list[float]] = {}
    for ok, g in zip(correct, groups):
        by_group.setdefault(g, []).append(float(ok))
    shares = np.array([np.mean(v) for v in by_group.values()], dtype=float)
    cube = stats.Cube(shares.reshape(1, -1, 1, 1))
    return stats.estimate(cube, stats.mean_over_controls(0), stats.Draws.make(1, len(shares)))


def with_held_out(scale: Scale, values: Sequence[float], levels: Sequence[int], groups: Sequence[str]) -> Scale:
    """``scale`` with each cut's held-out accuracy (does "passes cut k" match "level >= k")."""
    rows = []
    for k in range(2):
        correct = [scale.passes(v, k) == (lv >= k + 1) for v, lv in zip(values, levels)]
        rows.append({"cut": f"level >= {k + 1}", **accuracy(correct, groups).to_json()})
    return Scale(scale.feature, scale.higher_is_better, scale.cuts, scale.fits, tuple(rows))

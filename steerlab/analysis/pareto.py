"""Pareto fronts of steering methods over several judged dimensions (moocore does the geometry).

Every method swept over controls gives one point per control: the mean score on each axis
(e.g. the judge's probability of each style). From those points:

* ``hypervolume``: volume dominated above the reference point (0 on every axis), moocore;
* ``front_size``: how many of the points are non-dominated;
* ``spacing``: Schott's spacing, the spread of nearest-neighbour distances on the front (0 =
  perfectly even);
* ``lambda_alignment``: for controls with one coordinate per axis (a preference vector), the
  mean Spearman correlation between coordinate i and the score on axis i: does turning a
  dimension up move that dimension?
* ``coverage(A, B)``: share of B's points weakly dominated by some point of A (Zitzler's C).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import moocore
import numpy as np
from scipy.stats import spearmanr

Scores = dict[str, float]


def points(scores: Sequence[Scores], axes: Sequence[str]) -> np.ndarray:
    """(n_points, n_axes) mean scores; points lacking an axis (or NaN there) are dropped."""
    rows = [[s[a] for a in axes] for s in scores if all(a in s and math.isfinite(s[a]) for a in axes)]
    return np.array(rows, dtype=float).reshape(-1, len(axes))


def nondominated(pts: np.ndarray) -> np.ndarray:
    return pts[moocore.is_nondominated(pts, maximise=True)] if len(pts) else pts


def hypervolume(pts: np.ndarray, reference: float = 0.0) -> float:
    return float(moocore.hypervolume(pts, ref=[reference] * pts.shape[1], maximise=True)) if len(pts) else 0.0


def spacing(pts: np.ndarray) -> float:
    front = nondominated(pts)
    if len(front) < 3:
        return float("nan")
    dist = np.abs(front[:, None, :] - front[None, :, :]).sum(-1)  # (n, n) Manhattan, as Schott
    np.fill_diagonal(dist, np.inf)
    nearest = dist.min(1)
    return float(np.sqrt(((nearest - nearest.mean()) ** 2).sum() / (len(nearest) - 1)))


def lambda_alignment(coords: Sequence[Sequence[float]], scores: Sequence[Scores], axes: Sequence[str]) -> float:
    """Mean over axes of Spearman(coordinate_i, score_i); NaN with fewer than 3 points or when
    the controls do not have one coordinate per axis."""
    if len(coords) < 3 or any(len(c) != len(axes) for c in coords):
        return float("nan")
    rhos = []
    for i, axis in enumerate(axes):
        lam, score = [c[i] for c in coords], [s.get(axis, float("nan")) for s in scores]
        if np.std(lam) > 0 and np.std(score) > 0 and all(math.isfinite(v) for v in score):
            rhos.append(spearmanr(lam, score).statistic)
    return float(np.mean(rhos)) if rhos else float("nan")


def corner_effects(coords: Sequence[Sequence[float]], scores: Sequence[Scores], axes: Sequence[str]) -> list[dict[str, float | str]]:
    """For each axis i: its mean score at the corner (coordinate i = 1, the rest 0) against the
    mean at the other corners. A positive gap: turning that dimension fully on raises its score."""
    corners: dict[int, Scores] = {}
    for c, s in zip(coords, scores):
        if len(c) == len(axes) and max(c) == 1.0:
            corners[list(c).index(1.0)] = s
    if len(corners) < len(axes):
        return []
    out: list[dict[str, float | str]] = []
    for i, axis in enumerate(axes):
        own = corners[i][axis]
        others = float(np.mean([corners[j][axis] for j in corners if j != i]))
        out.append({"axis": axis, "at_own_corner": own, "at_other_corners": others, "gap": own - others})
    return out


def coverage(a: np.ndarray, b: np.ndarray) -> float:
    """Share of ``b``'s points weakly dominated by at least one point of ``a`` (maximising)."""
    if not len(a) or not len(b):
        return float("nan")
    dominated = [(a >= p).all(1).any() for p in b]
    return float(np.mean(dominated))


def front_summary(coords: Sequence[Sequence[float]], scores: Sequence[Scores], axes: Sequence[str]) -> dict[str, float]:
    pts = points(scores, axes)
    return {
        "hypervolume": hypervolume(pts),
        "front_size": float(len(nondominated(pts))),
        "spacing": spacing(pts),
        "lambda_alignment": lambda_alignment(coords, scores, axes),
    }

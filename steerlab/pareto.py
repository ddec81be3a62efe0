"""Pareto fronts of steering methods over several judged dimensions (moocore does the geometry).

Every method swept over controls gives one point per control: the mean score on each axis
(e.g. the judge's probability of each style). From those points:

* ``hypervolume``: volume dominated above the reference point (0 on every axis), moocore;
* ``front_size``: how many of the points are non-dominated;
* ``spacing``: Schott's spacing, the spread of nearest-neighbour distances on the front (0 =
  perfectly even);
* ``lambda_alignment``: for preference-vector controls, the mean Spearman correlation between
  lambda_i and the score on axis i: does turning a dimension up move that dimension?
* ``coverage(A, B)``: share of B's points weakly dominated by some point of A (Zitzler's C).
"""

from __future__ import annotations

import math
from typing import Any

import moocore
import numpy as np
from scipy.stats import spearmanr


def points(by_control: list[dict[str, Any]], axes: list[str]) -> np.ndarray:
    """(n_controls, n_axes) mean scores; rows lacking an axis are dropped."""
    rows = [[r[a] for a in axes] for r in by_control if all(a in r and math.isfinite(r[a]) for a in axes)]
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


def lambda_alignment(by_control: list[dict[str, Any]], axes: list[str]) -> float:
    """Mean over axes of Spearman(lambda_i, score_i); NaN unless controls are preference vectors."""
    rows = [r for r in by_control if isinstance(r["control"], list) and len(r["control"]) == len(axes)]
    if len(rows) < 3:
        return float("nan")
    rhos = []
    for i, axis in enumerate(axes):
        lam, score = [r["control"][i] for r in rows], [r[axis] for r in rows]
        if np.std(lam) > 0 and np.std(score) > 0:
            rhos.append(spearmanr(lam, score).statistic)
    return float(np.mean(rhos)) if rhos else float("nan")


def coverage(a: np.ndarray, b: np.ndarray) -> float:
    """Share of ``b``'s points weakly dominated by at least one point of ``a`` (maximising)."""
    if not len(a) or not len(b):
        return float("nan")
    dominated = [(a >= p).all(1).any() for p in b]
    return float(np.mean(dominated))


def front_summary(by_control: list[dict[str, Any]], axes: list[str]) -> dict[str, float]:
    pts = points(by_control, axes)
    return {
        "hypervolume": hypervolume(pts),
        "front_size": float(len(nondominated(pts))),
        "spacing": spacing(pts),
        "lambda_alignment": lambda_alignment(by_control, axes),
    }

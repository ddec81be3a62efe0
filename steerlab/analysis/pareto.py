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
from scipy.stats import rankdata

from steerlab.controls import corner_of

Scores = dict[str, float]


def points(scores: Sequence[Scores], axes: Sequence[str]) -> np.ndarray:
    """(n_points, n_axes) mean scores; points lacking an axis (or NaN there) are dropped."""
    rows = [[s[a] for a in axes] for s in scores if all(a in s and math.isfinite(s[a]) for a in axes)]
    return np.array(rows, dtype=float).reshape(-1, len(axes))


def nondominated(pts: np.ndarray) -> np.ndarray:
    return pts[nondominated_mask(pts)] if len(pts) else pts


def nondominated_mask(pts: np.ndarray) -> np.ndarray:
    """Which points no other point dominates (maximising every axis)."""
    return moocore.is_nondominated(pts, maximise=True) if len(pts) else np.zeros(0, dtype=bool)


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
    means = np.array([[s.get(a, float("nan")) for a in axes] for s in scores], dtype=float).reshape(1, len(scores), len(axes))
    return float(lambda_alignment_batch(coords, means)[0])


def lambda_alignment_batch(coords: Sequence[Sequence[float]], means: np.ndarray) -> np.ndarray:
    """``lambda_alignment`` of every replicate at once: means (B, controls, axes) -> (B,).
    An axis counts in a replicate when its coordinate and its scores vary and are finite
    (Spearman's rho with average ranks for ties, as scipy's)."""
    batch, n_axes = means.shape[0], means.shape[2]
    if len(coords) < 3 or any(len(c) != n_axes for c in coords):
        return np.full(batch, np.nan)
    lam = np.asarray(coords, dtype=float)  # (controls, axes)
    rhos = []
    for i in range(n_axes):
        if np.std(lam[:, i]) == 0:
            continue
        score = means[:, :, i]  # (B, controls)
        usable = np.isfinite(score).all(1) & (np.nanstd(score, axis=1) > 0)
        ranked = rankdata(np.where(np.isfinite(score), score, 0.0), axis=1)
        rho = _pearson_rows(np.broadcast_to(rankdata(lam[:, i]), ranked.shape), ranked)
        rhos.append(np.where(usable, rho, np.nan))
    if not rhos:
        return np.full(batch, np.nan)
    stacked = np.stack(rhos)
    counted = np.isfinite(stacked).sum(0)
    return np.where(counted > 0, np.nansum(stacked, 0) / np.maximum(counted, 1), np.nan)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))


def corner_indices(coords: Sequence[Sequence[float]], n_axes: int) -> list[int] | None:
    """For each axis, the control that puts all weight on it (None unless every axis has one)."""
    corners: dict[int, int] = {}
    for k, c in enumerate(coords):
        if len(c) == n_axes and (axis := corner_of(c)) is not None:
            corners[axis] = k
    return [corners[i] for i in range(n_axes)] if len(corners) == n_axes else None


def corner_gaps_batch(coords: Sequence[Sequence[float]], means: np.ndarray) -> np.ndarray:
    """Each axis's score at its own corner minus its mean at the other corners, for every
    replicate: means (B, controls, axes) -> (B, axes); NaN without a corner per axis."""
    n_axes = means.shape[2]
    corners = corner_indices(coords, n_axes)
    if corners is None:
        return np.full((means.shape[0], n_axes), np.nan)
    at = means[:, corners, :]  # (B, corner of axis j, axes)
    own = np.stack([at[:, i, i] for i in range(n_axes)], 1)
    others = np.stack([np.delete(at[:, :, i], i, axis=1).mean(1) for i in range(n_axes)], 1)
    return own - others


def corner_effects(coords: Sequence[Sequence[float]], scores: Sequence[Scores], axes: Sequence[str]) -> list[dict[str, float | str]]:
    """For each axis i: its mean score at the corner (coordinate i = 1, the rest 0) against the
    mean at the other corners. A positive gap: turning that dimension fully on raises its score."""
    corners = corner_indices(coords, len(axes))
    if corners is None:
        return []
    out: list[dict[str, float | str]] = []
    for i, axis in enumerate(axes):
        own = scores[corners[i]][axis]
        others = float(np.mean([scores[corners[j]][axis] for j in range(len(axes)) if j != i]))
        out.append({"axis": axis, "at_own_corner": own, "at_other_corners": others, "gap": own - others})
    return out


def hypervolume_batch(means: np.ndarray) -> np.ndarray:
    """Hypervolume of every replicate's points (rows with a NaN dropped): (B, controls, axes) -> (B,)."""
    return np.array([hypervolume(m[np.isfinite(m).all(1)]) for m in means])


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

"""Linear maps from one model's residual space to another's, fitted on paired activations.

Pure functions on tensors (no model): each takes paired rows ``x`` (n, d_source) and ``y``
(n, d_target) of the same texts read in both models and returns a ``LinearMap`` ``y ~ x @ W + b``.
Widths may differ. A vector (a difference of activations) maps through the linear part only,
``v @ W``: the bias cancels in a difference.

* ``ridge``: RidgeCV on standardised inputs and outputs, one alpha for all outputs (so no output
  dimension dominates the choice by its scale), chosen by cross-validation: grouped k-fold when
  rows come in groups (the many word-end rows of one text are alike, so leave-one-out would pick
  too little regularisation), leave-one-out otherwise.
* ``affine``: least squares with a bias and no regularisation (minimum-norm when underdetermined).
* ``procrustes``: both sides centred and reduced to the same k principal components, then the
  orthogonal map between the two k-d spaces that fits best (scipy's ``orthogonal_procrustes``) and
  one global scale (the two models' residual norms differ; the scale does not change a direction).
* ``direct``: no learned map. The only map with no fitting is the coordinate identity: the first
  min(d_s, d_t) coordinates are kept, zero-padded when the target is wider and truncated when it
  is narrower. Two separately trained models' residual bases are unrelated (any rotation of a
  residual stream is a symmetry of the network), so this is the "does it transfer for free" control.
* ``random_direction``: a Gaussian direction in the target space (the chance-level control).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 6, 10))


@dataclass
class LinearMap:
    """``y = x @ weight + bias``: weight (d_source, d_target), bias (d_target,)."""

    weight: torch.Tensor
    bias: torch.Tensor
    info: dict[str, float] = field(default_factory=dict)  # what the fit chose (alpha, components, scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (n, d_source) -> (n, d_target)
        return x.to(self.weight.dtype) @ self.weight + self.bias

    def linear(self, vector: torch.Tensor) -> torch.Tensor:
        """A difference vector mapped: the linear part only (the bias cancels)."""
        return vector.to(self.weight.dtype) @ self.weight  # (d_target,)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


def _map(weight: np.ndarray, bias: np.ndarray, **info: float) -> LinearMap:
    return LinearMap(torch.from_numpy(weight).float(), torch.from_numpy(bias).float(), dict(info))


def _standardise(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, scale = a.mean(0), a.std(0)
    scale = np.where(scale > 1e-8 * max(float(scale.max()), 1e-30), scale, 1.0)  # constant columns stay as they are
    return (a - mean) / scale, mean, scale


def fit_ridge(x: torch.Tensor, y: torch.Tensor, alphas: tuple[float, ...] = RIDGE_ALPHAS,
              groups: torch.Tensor | None = None) -> LinearMap:
    """``groups`` (n,): which text each row came from; when some group has several rows, alpha is
    chosen by grouped 5-fold CV (mean squared error on the standardised outputs)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold

    zx, mx, sx = _standardise(_numpy(x))
    zy, my, sy = _standardise(_numpy(y))
    n_groups = len(set(groups.tolist())) if groups is not None else 0
    grouped = 3 <= n_groups < len(zx)  # one row per group: leave-one-out is already leave-one-group-out
    folds = list(GroupKFold(n_splits=min(5, n_groups)).split(zx, zy, groups.numpy())) if grouped else None
    model = RidgeCV(alphas=alphas, fit_intercept=False, cv=folds,  # both sides centred already
                    scoring="neg_mean_squared_error" if grouped else None).fit(zx, zy)
    coef = np.atleast_2d(model.coef_)  # (d_target, d_source) in standard units
    weight = (coef / sx[None, :]).T * sy[None, :]  # (d_source, d_target)
    return _map(weight, my - mx @ weight, alpha=float(model.alpha_))


def fit_affine(x: torch.Tensor, y: torch.Tensor) -> LinearMap:
    xs, ys = _numpy(x), _numpy(y)
    design = np.hstack([xs, np.ones((len(xs), 1))])  # (n, d_source + 1)
    solution, *_ = np.linalg.lstsq(design, ys, rcond=None)  # (d_source + 1, d_target)
    return _map(solution[:-1], solution[-1])


def _top_components(centred: np.ndarray, k: int) -> np.ndarray:
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:k].T  # (d, k), orthonormal columns


def fit_procrustes(x: torch.Tensor, y: torch.Tensor, components: int = 0) -> LinearMap:
    """Orthogonal Procrustes between the top-k principal subspaces, with one global scale;
    k = ``components`` or min(d_source, d_target, n - 1)."""
    from scipy.linalg import orthogonal_procrustes

    xs, ys = _numpy(x), _numpy(y)
    mx, my = xs.mean(0), ys.mean(0)
    limit = min(xs.shape[1], ys.shape[1], len(xs) - 1)
    k = min(components, limit) if components > 0 else limit
    px, py = _top_components(xs - mx, k), _top_components(ys - my, k)
    zx, zy = (xs - mx) @ px, (ys - my) @ py  # (n, k) each
    rotation, singular_sum = orthogonal_procrustes(zx, zy)  # argmin ||zx R - zy||, R orthogonal (k, k)
    scale = singular_sum / max(float((zx ** 2).sum()), 1e-30)
    weight = scale * px @ rotation @ py.T  # (d_source, d_target)
    return _map(weight, my - mx @ weight, components=float(k), scale=float(scale))


def direct_map(d_source: int, d_target: int) -> LinearMap:
    """The coordinate identity: zero-pad (wider target) or truncate (narrower target)."""
    return LinearMap(torch.eye(d_source, d_target), torch.zeros(d_target), {})


def random_direction(d_target: int, norm: float, generator: torch.Generator | None = None) -> torch.Tensor:
    vector = torch.randn(d_target, generator=generator)
    return vector * (norm / float(vector.norm()))


FITS: dict[str, Callable[..., LinearMap]] = {"ridge": fit_ridge, "affine": fit_affine, "procrustes": fit_procrustes}


def fit(name: str, x: torch.Tensor, y: torch.Tensor, components: int = 0, groups: torch.Tensor | None = None) -> LinearMap:
    """A learned adapter by name, or the ``direct`` identity."""
    if name == "direct":
        return direct_map(x.shape[1], y.shape[1])
    if name == "procrustes":
        return fit_procrustes(x, y, components)
    if name == "ridge":
        return fit_ridge(x, y, groups=groups)
    return FITS[name](x, y)


def fit_scores(linear_map: LinearMap, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """How well ``linear_map`` predicts ``y`` from ``x`` (held-out rows):

    * ``r2``: 1 - SSE / total sum of squares around y's mean, pooled over every target dimension
      (variance-weighted, so the residual stream's large dimensions count most);
    * ``cosine``: mean cosine between predicted and actual rows;
    * ``cosine_centered``: the same after subtracting y's mean from both (the shared mean
      direction of a residual stream makes raw cosines look good even for a poor map)."""
    pred, actual = linear_map(x).double(), y.double()  # (n, d_target)
    centre = actual.mean(0)
    sse, sst = float(((actual - pred) ** 2).sum()), float(((actual - centre) ** 2).sum())
    cos = torch.nn.functional.cosine_similarity
    return {"r2": 1.0 - sse / max(sst, 1e-30), "cosine": float(cos(pred, actual, dim=1).mean()),
            "cosine_centered": float(cos(pred - centre, actual - centre, dim=1).mean())}

"""Ways to turn paired activations into one steering direction, chosen by name in the study.

Small factories (the steering-vectors habit): each takes (positive, negative), both (n, d), and
returns a (d,) direction pointing from negative to positive.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from sklearn.decomposition import PCA

Aggregator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_difference(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    return (positive - negative).mean(0)


def pca_difference(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """First principal component of the paired differences (repeng's choice), sign-aligned with
    the mean difference and scaled to its projection so strengths stay comparable."""
    diffs = (positive - negative).double().numpy()
    component = torch.from_numpy(PCA(n_components=1).fit(diffs).components_[0]).float()
    mean = mean_difference(positive, negative)
    projection = float(mean @ component)
    return component * projection


AGGREGATORS: dict[str, Aggregator] = {"mean": mean_difference, "pca": pca_difference}


def get(name: str) -> Aggregator:
    return AGGREGATORS[name]

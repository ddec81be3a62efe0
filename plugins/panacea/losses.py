"""Scalarisations of per-dimension losses under a preference vector, chosen by name.

Panacea (arXiv 2402.02030, section 4) aggregates the m per-dimension objectives with the
sampled preference lambda either linearly (LS) or by weighted Tchebycheff (Tche), whose
minimisers can reach non-convex parts of the Pareto front.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Scalarisation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_scalarisation(losses: torch.Tensor, preference: torch.Tensor) -> torch.Tensor:
    """sum_i lambda_i * L_i."""
    return (preference * losses).sum()


def tchebycheff(ideal: float = 0.0) -> Scalarisation:
    """max_i lambda_i * (L_i - z_i), with the ideal point z_i = ``ideal`` for every dimension."""

    def scalarise(losses: torch.Tensor, preference: torch.Tensor) -> torch.Tensor:
        return (preference * (losses - ideal)).max()

    return scalarise


def get(name: str, ideal: float = 0.0) -> Scalarisation:
    return {"ls": linear_scalarisation, "tche": tchebycheff(ideal)}[name]


class RunningScale:
    """Per-dimension loss normalisation: each loss divided by a running mean of its own value
    (detached), so a dimension whose loss is naturally larger does not dominate the scalarisation
    and lambda weighs relative progress."""

    def __init__(self, m: int, momentum: float = 0.9) -> None:
        self.mean: torch.Tensor | None = None
        self.momentum = momentum

    def __call__(self, losses: torch.Tensor) -> torch.Tensor:
        current = losses.detach()
        self.mean = current if self.mean is None else self.momentum * self.mean + (1 - self.momentum) * current
        return losses / self.mean.clamp(min=1e-6)

"""Preference vectors on the probability simplex: grids for evaluation, samples for training."""

from __future__ import annotations

import itertools

import torch


def simplex_grid(m: int, step: float) -> list[list[float]]:
    """Every point of the simplex in R^m whose coordinates are multiples of ``step``.

    m=3, step=1/4 gives the paper's 15 points. Corners first, then the rest in lexicographic
    order, so a thinned sweep (``--quick``) still reaches the corners.
    """
    n = round(1 / step)
    if abs(n * step - 1) > 1e-9 or n < 1:
        raise ValueError(f"step must divide 1 exactly (got {step})")
    points = [[c / n for c in combo] for combo in itertools.product(range(n + 1), repeat=m) if sum(combo) == n]
    corners = [p for p in points if max(p) == 1.0]
    return sorted(corners, reverse=True) + sorted((p for p in points if max(p) < 1.0), reverse=True)


def corners_and_centre(m: int) -> list[list[float]]:
    return [[1.0 if i == j else 0.0 for i in range(m)] for j in range(m)] + [[round(1 / m, 6)] * m]


def sample_simplex(m: int, generator: torch.Generator, concentration: float = 1.0) -> torch.Tensor:
    """One preference vector from a symmetric Dirichlet (concentration 1: uniform on the simplex)."""
    gamma = torch.distributions.Gamma(torch.full((m,), concentration), torch.ones(m))
    # Gamma sampling has no generator argument: draw its uniform seed from ours for determinism.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        draw = gamma.sample()
    return draw / draw.sum()


def check_preference(control: object, m: int) -> list[float]:
    """A control that must be a preference vector of length m summing to 1 (within 1e-6)."""
    if not isinstance(control, list) or len(control) != m or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in control):
        raise ValueError(f"expected a list of {m} numbers (a preference vector), got {control!r}")
    values = [float(c) for c in control]
    if min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"a preference vector must be >= 0 and sum to 1, got {control!r}")
    return values

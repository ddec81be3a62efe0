"""Success under both signs: does a direction move a score the expected way at +c *and* at -c?

A steering direction "works" on a prompt at strength c when the prompt's score (its answer's word
count, say) moves from its unsteered value the expected way under +c and the opposite way under
-c; ties fail. One sign alone proves little (any perturbation shortens some answers). actdiff's
source validation, the transfer plugin's success and its study-level hypotheses all count this
same per-prompt event, from records: the share of prompts where it holds is the success at c.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

DIRECTIONS = ("decrease", "increase")  # how a positive control should move the score
Row = tuple[str, float, float]  # (prompt, control, score)


def direction_sign(direction: str) -> float:
    """-1 when a positive control should lower the score (``decrease``), +1 for ``increase``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"a direction must be one of {DIRECTIONS} (got {direction!r})")
    return -1.0 if direction == "decrease" else 1.0


def moves_both_ways(at_zero: float, at_plus: float, at_minus: float, sign: float) -> float:
    """1 when the score moves the expected way from 0 under both +c and -c (ties fail), 0 when
    not, NaN when a value is missing. ``sign`` -1: a positive control should lower the score."""
    values = (at_zero, at_plus, at_minus)
    if not all(v is not None and math.isfinite(v) for v in values):
        return float("nan")
    return float(sign * (at_plus - at_zero) > 0 and sign * (at_minus - at_zero) < 0)


def symmetric_strengths(controls: Iterable[float]) -> list[float]:
    """Every c > 0 tried with -c and 0 beside it, ascending."""
    tried = set(controls)
    return sorted(c for c in tried if c > 0 and -c in tried and 0.0 in tried)


def symmetric_success(rows: Iterable[Row], direction: str = "decrease") -> dict[float, float]:
    """For each symmetric strength c: the share of prompts (those scored at 0, +c and -c) whose
    score moves both ways (``moves_both_ways``); NaN when no prompt has all three. A missing or
    non-finite score leaves that (prompt, control) out."""
    sign = direction_sign(direction)
    by_prompt: dict[str, dict[float, float]] = {}
    for prompt, control, value in rows:
        if value is not None and math.isfinite(value):
            by_prompt.setdefault(prompt, {})[float(control)] = float(value)
    out = {}
    for c in symmetric_strengths(c for values in by_prompt.values() for c in values):
        hits = [moves_both_ways(v[0.0], v[c], v[-c], sign) for v in by_prompt.values() if {c, -c, 0.0} <= set(v)]
        out[c] = float(np.mean(hits)) if hits else float("nan")
    return out

"""Success under both signs: does a direction move a score the expected way at +c *and* at -c?

A steering direction "works" on a prompt at strength c when the prompt's score (its answer's word
count, say) moves from its unsteered value the expected way under +c and the opposite way under
-c; ties fail. One sign alone proves little (any perturbation shortens some answers). actdiff's
source validation, the transfer plugin's success and its study-level hypotheses all count this
same per-prompt event, from records: the share of prompts where it holds is the success at c.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from steerlab.data.split import in_dev_half

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


def chosen_strength(rows: Iterable[Row], direction: str = "decrease") -> float | None:
    """The strength with the highest success (``symmetric_success``) over ``rows``, ties to the
    smallest; None when no strength has a finite success. One rule, so a sweep that stages its
    test rows on it and a report that reads the dev choice back choose the same strength."""
    success = {c: v for c, v in symmetric_success(rows, direction).items() if math.isfinite(v)}
    return max(sorted(success), key=lambda c: success[c]) if success else None


@dataclass(frozen=True)
class SymmetricChooser:
    """A ``ControlChooser`` (see ``steerlab.lab``) for a direction entry: every control on the dev
    prompts, then on the test prompts only the neutral control and ±c for the strength c chosen
    on dev (``chosen_strength`` of ``metric``). Test rows at other strengths are never decoded,
    so no test number can choose a strength."""

    metric: str
    direction: str = "decrease"

    def stages(self, entry: Any) -> bool:
        return True

    def is_dev(self, prompt: str) -> bool:
        return in_dev_half(prompt)

    def keep(self, entry: Any, dev_records: list[Any]) -> set[int]:
        rows = [(r.prompt, float(r.control), r.scores.get(self.metric, math.nan)) for r in dev_records]
        c = chosen_strength(rows, self.direction)
        wanted = {0.0} if c is None else {0.0, c, -c}
        return {i for i, control in enumerate(entry.controls) if float(control) in wanted}


@contextmanager
def staged(lab: Any, chooser: Any) -> Iterator[None]:
    """``lab``'s sweeps staged by ``chooser`` inside the block (its own chooser restored after):
    how a method stages its own sweep without a study-level ``[compare]``."""
    before = lab.control_chooser
    lab.control_chooser = chooser
    try:
        yield
    finally:
        lab.control_chooser = before


@contextmanager
def dev_chosen_sweep(lab: Any, config: Any) -> Iterator[None]:
    """``lab``'s sweeps staged by a ``SymmetricChooser`` inside the block when ``config.test_chosen_only``
    (else left as they are): the one place actdiff and transfer read their ``test_chosen_only``,
    ``validate_metric`` and ``validate_direction`` keys."""
    if not config.test_chosen_only:
        yield
        return
    with staged(lab, SymmetricChooser(config.validate_metric, config.validate_direction)):
        yield

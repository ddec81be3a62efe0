"""Each transfer entry's success with its interval: choices on the dev prompts, numbers on the test ones.

Success at strength c is a per-prompt event (the answer is shorter at +c and longer at -c than at
0, core's ``moves_both_ways``), so an entry's records make a cube of 0 / 1 (seeds, prompts, strengths)
and the share of prompts is its mean, resampled by ``steerlab.api`` (seeds, then prompts). Every
entry answered the same eval prompts, so two entries are compared paired: the same drawn prompts
for both (direct transfer and the random direction are hard on the same prompts).

Choices read the dev half of the run's prompts only (``PromptSplit``: the halves ``[data] split``
selects): each entry's strength, the layer pair among per-block entries, and which linear adapter
stands for "an adapter". Estimates and verdicts read the test half only, and only at the chosen
setting (an entry's test success at other strengths is never reported, and a study may not even
decode it: ``test_chosen_only``), so no reported number picked itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steerlab.api import (Cube, Design, Estimate, PromptSplit, best_control, compare, estimate, mean_over_controls, moves_both_ways,
                          symmetric_strengths)

Row = tuple[int | None, str, float, float]  # (seed, prompt, control, score)
LINEAR = ("ridge", "procrustes", "affine")  # the learned adapters, among which dev chooses "an adapter"
ORDER = ("direct", "random", *LINEAR, "native")  # every kind of entry, in the order reports list them


@dataclass
class EntryView:
    """One method entry of the run as the summary reads it: its rows and where it steers."""

    name: str
    kind: str  # an adapter name, or "native" for an actdiff entry
    source: str  # the model the vector was extracted on
    target: str  # the model steered
    rows: list[Row]
    sign: float = -1.0  # -1: a positive control should lower the score (concise = fewer words)
    summary: dict[str, Any] = field(default_factory=dict)
    blocks: tuple[int | None, int | None] = (None, None)  # (source block, target block); a native entry's are equal
    layer_choice: dict[str, Any] = field(default_factory=dict)  # per side, which per-block entry chose the block on dev

    @property
    def pair(self) -> str:
        """``15 → 9``: the layer pair, as reports print it."""
        f = lambda b: "?" if b is None else str(b)  # noqa: E731
        return f(self.blocks[1]) if self.kind == "native" else f"{f(self.blocks[0])} → {f(self.blocks[1])}"

    @property
    def strengths(self) -> list[float]:
        """Every c > 0 tried with -c and 0 beside it."""
        return symmetric_strengths(c for _, _, c, _ in self.rows)

    def cube(self, prompts: list[str], seeds: list[int], strengths: list[float]) -> Cube:
        """Success (0 / 1, NaN where not answered) at [seed, prompt, strength]: one seed row when
        the entry's records carry one seed (or none), else one per study seed."""
        own = sorted({s for s, _, _, _ in self.rows if s is not None})
        rows = seeds if len(own) > 1 else [None]
        table: dict[tuple[int, str], dict[float, float]] = {}
        for seed, prompt, control, value in self.rows:
            table.setdefault((rows.index(seed) if len(rows) > 1 else 0, prompt), {})[control] = value
        out = np.full((len(rows), len(prompts), len(strengths), 1), np.nan)
        for (row, prompt), values in table.items():
            if prompt in prompts:
                for k, c in enumerate(strengths):
                    out[row, prompts.index(prompt), k, 0] = moves_both_ways(
                        values.get(0.0, math.nan), values.get(c, math.nan), values.get(-c, math.nan), self.sign)
        return Cube(out)


@dataclass
class Measured:
    """An entry read through the split: its strength chosen on dev, its test success there."""

    view: EntryView
    strength: float | None  # chosen on the dev prompts; None when no dev prompt was answered
    dev: Estimate  # success on the dev prompts at the chosen strength (what chose it)
    test: Estimate  # success on the test prompts at the chosen strength
    test_cube: Cube | None  # the same, as a cube for paired comparisons
    per_strength: dict[float, Estimate]  # DEV success at every strength tried: what the choice read (test: the chosen one only)


@dataclass
class Halves:
    """The run's prompts cut into dev (choices) and test (verdicts), with each half's design."""

    split: PromptSplit
    dev: Design
    test: Design

    @classmethod
    def of(cls, views: list[EntryView], seeds: list[int]) -> "Halves":
        split = PromptSplit.of(p for v in views for _, p, _, _ in v.rows)
        return cls(split, Design.over(split.dev, seeds), Design.over(split.test, seeds))


def _nan_estimate(design: Design) -> Estimate:
    return Estimate(math.nan, math.nan, math.nan, len(design.prompts), len(design.seeds))


def measure(view: EntryView, halves: Halves) -> Measured:
    """Choose the entry's strength on dev (highest success), estimate success on test at that
    strength only: the test half is never read at a strength that was not chosen."""
    strengths = view.strengths
    success = mean_over_controls()
    per_strength = {c: estimate(view.cube(halves.dev.prompts, halves.dev.seeds, [c]), success, halves.dev.draws)
                    for c in strengths} if halves.split.dev else {}
    labels = [f"{c:g}" for c in strengths]
    dev_cube = view.cube(halves.dev.prompts, halves.dev.seeds, strengths) if halves.split.dev and strengths else None
    chosen = best_control(dev_cube, labels) if dev_cube is not None else None
    if chosen is None or not halves.split.test:
        return Measured(view, None, _nan_estimate(halves.dev), _nan_estimate(halves.test), None, per_strength)
    c = strengths[labels.index(chosen)]
    cube = view.cube(halves.test.prompts, halves.test.seeds, [c])
    return Measured(view, c, per_strength[c], estimate(cube, success, halves.test.draws), cube, per_strength)


def paired(a: Measured, b: Measured, halves: Halves) -> Estimate | None:
    """Success of A minus success of B on the same drawn test prompts (None when either is missing)."""
    if a.test_cube is None or b.test_cube is None:
        return None
    return compare(a.test_cube, b.test_cube, mean_over_controls(), halves.test.draws).difference


def best_on_dev(measured: list[Measured]) -> Measured | None:
    """The entry with the highest dev success at its dev-chosen strength (ties: the first listed):
    how an adapter and a layer pair are chosen among entries."""
    ready = [m for m in measured if m.strength is not None and math.isfinite(m.dev.value)]
    return max(ready, key=lambda m: m.dev.value) if ready else None

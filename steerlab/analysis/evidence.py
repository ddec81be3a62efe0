"""Intervals and verdicts for a run's methods, from their records (``steerlab.stats`` does the
resampling; this module knows what a run's records are).

Every method of a run answered the same prompts, so a method's records form a cube of scores
(seeds, prompts, controls, axes), the prompts in one order shared by all methods: that is what
lets a comparison resample the same prompts for both. What gets an interval:

* the front measures on a set of score axes (hypervolume, lambda alignment, each corner gap);
* every other score, as its mean over the method's answers (words, distinct-3, KL, ...);
* fluency as the mean per-token log-loss under the unsteered model (the log of a geometric mean
  perplexity: a mean of perplexities hangs on one looping answer) and its median;
* the share of degenerate answers (empty, or looping: an 8-word span repeated), and
  where two judges score the same styles, how often they agree on an answer's leading style.

Each comparison is the anchor method against another, paired, with a verdict read from the
interval of the difference (``steerlab.stats.verdict``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steerlab import stats
from steerlab.analysis import pareto
from steerlab.data.split import PromptSplit
from steerlab.results import MethodResult, Record, RunResults

# Scores whose higher value is better (True), worse (False), or neither (None: length, stopping).
DIRECTIONS: dict[str, bool | None] = {
    "hypervolume": True, "lambda_alignment": True, "gap": True, "log_loss": False, "log_loss_median": False,
    "perplexity": False, "distinct3": True, "degenerate": False, "judge_agreement": True, "kl": False,
    "similarity": True, "relevance": True, "words": None, "tokens": None, "stopped": None,
}
LOOP_NGRAM, LOOP_REPEATS = 8, 2  # a repeated 8-word span: greedy decoding looping, not a restated phrase


def direction(name: str) -> bool | None:
    """Whether a higher value of the measure ``name`` is better (``gap.helpful`` reads as ``gap``;
    a judge's score, ``judge.helpful``, as higher-is-better)."""
    base = name.split("[")[0].split(".")[0]
    if base in DIRECTIONS:
        return DIRECTIONS[base]
    return True if "." in name else None


def degenerate(text: str) -> bool:
    """An answer no judge should be trusted on: empty, or looping (a span of eight words that
    comes back, as greedy decoding's repetition loops do)."""
    words = text.split()
    if not words:
        return True
    grams = Counter(tuple(words[i : i + LOOP_NGRAM]) for i in range(len(words) - LOOP_NGRAM + 1))
    return bool(grams) and max(grams.values()) >= LOOP_REPEATS


def leading_style(scores: dict[str, float], axes: Sequence[str]) -> int | None:
    values = [scores.get(a, float("nan")) for a in axes]
    return int(np.argmax(values)) if all(math.isfinite(v) for v in values) else None


@dataclass
class Design:
    """The prompts (one order for every method), the study's seeds and the shared draws."""

    prompts: list[str]
    seeds: list[int]
    draws: stats.Draws = field(repr=False)

    @classmethod
    def of(cls, results: RunResults) -> "Design":
        prompts = list(dict.fromkeys(r.prompt for m in results.methods.values() for r in m.records))
        seeds = list(results.study.get("seeds") or [results.study.get("seed", 0)])
        return cls(prompts, seeds, stats.Draws.make(len(seeds), max(1, len(prompts))))

    @classmethod
    def over(cls, prompts: list[str], seeds: list[int]) -> "Design":
        """The design of a subset of the prompts (one half of a ``PromptSplit``): records of other
        prompts are left out of its cubes, and its draws resample these prompts only."""
        return cls(list(prompts), list(seeds), stats.Draws.make(len(seeds), max(1, len(prompts))))

    def halves(self) -> tuple["Design", "Design", PromptSplit]:
        """The dev design (for choices), the test design (for verdicts) and the split itself."""
        split = PromptSplit.of(self.prompts)
        return Design.over(split.dev, self.seeds), Design.over(split.test, self.seeds), split

    def cube(self, method: MethodResult, labels: list[str], values: Callable[[Record], list[float]], width: int) -> stats.Cube:
        """``values(record)`` (``width`` numbers) at [seed, prompt, control]; NaN where no record
        (records of prompts outside this design are left out)."""
        seeds = method.seeds if len(method.seeds) > 1 else [None]
        out = np.full((len(seeds), len(self.prompts), len(labels), width), np.nan)
        seat = {s: i for i, s in enumerate(seeds)}
        where = {p: i for i, p in enumerate(self.prompts)}
        column = {label: i for i, label in enumerate(labels)}
        for record in method.records:
            if record.label in column and record.prompt in where:
                row = seat.get(record.seed, 0) if len(seeds) > 1 else 0
                out[row, where[record.prompt], column[record.label]] = values(record)
        return stats.Cube(out)

    def score_cube(self, method: MethodResult, keys: list[str], labels: list[str] | None = None) -> stats.Cube:
        labels = labels if labels is not None else [p.label for p in method.points]
        return self.cube(method, labels, lambda r: [r.scores.get(k, float("nan")) for k in keys], len(keys))


def control_intervals(method: MethodResult) -> dict[str, list[float]]:
    """A 95% interval for each score's mean at each control (``score@label``, the summary's own
    keys), over the method's prompts and seeds: the error bars of its sweep figure and the point
    table of its report section."""
    seeds = method.seeds if len(method.seeds) > 1 else [0]
    prompts = list(dict.fromkeys(r.prompt for r in method.records))
    design = Design(prompts, seeds, stats.Draws.make(len(seeds), max(1, len(prompts))))
    labels = [p.label for p in method.points]
    keys = sorted({k for p in method.points for k in p.scores})
    if not prompts or not keys:
        return {}
    means = design.draws.replicate_means(design.score_cube(method, keys, labels))  # (B, controls, scores)
    return {f"{k}@{label}": list(stats.percentile_interval(means[:, c, i])) for c, label in enumerate(labels) for i, k in enumerate(keys)}


def best_control(cube: stats.Cube, labels: list[str], axis: int = 0, higher_is_better: bool = True) -> str | None:
    """The label whose mean (over the cube's seeds and prompts) on ``axis`` is best: a choice, made
    on whatever prompts the cube holds (give it the dev half). None when every mean is NaN; ties go
    to the first label."""
    means = stats.point_means(cube)[:, axis]  # (controls,)
    if not np.isfinite(means).any():
        return None
    signed = np.where(np.isfinite(means), means if higher_is_better else -means, -np.inf)
    return labels[int(np.argmax(signed))]


def front_statistics(coords: list[tuple[float, ...]], n_axes: int, axes: list[str]) -> dict[str, stats.Statistic]:
    """The front measures of one method as functions of its per-control means (B, controls, axes)."""
    out: dict[str, stats.Statistic] = {
        "hypervolume": pareto.hypervolume_batch,
        "lambda_alignment": lambda means: pareto.lambda_alignment_batch(coords, means),
    }
    if pareto.corner_indices(coords, n_axes) is not None:
        out.update({f"gap.{a.split('.')[-1]}": (lambda means, i=i: pareto.corner_gaps_batch(coords, means)[:, i])
                    for i, a in enumerate(axes)})
    return out


@dataclass
class FrontEvidence:
    """The anchor's paired comparisons (``{other: {measure: comparison}}``) and each method's
    per-control interval on every axis (``{method: {label: {axis: [low, high]}}}``, the error
    bars of the figures)."""

    tests: dict[str, dict[str, Any]]
    points: dict[str, dict[str, dict[str, list[float]]]]


def front_evidence(results: RunResults, design: Design, coords: dict[str, list[tuple[float, ...]]], axes: list[str],
                   anchor: str, key: Callable[[str], str]) -> FrontEvidence:
    """Interval of every front measure per method (into ``method.intervals``), of every per-control
    mean, and the anchor's paired comparison with each other method."""
    sampled: dict[str, dict[str, stats.Sampled]] = {}
    points: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name, method in results.methods.items():
        labels = [p.label for p in method.points]
        cube = design.score_cube(method, axes, labels)
        sampled[name] = {m: stats.sample(cube, f, design.draws) for m, f in front_statistics(coords[name], len(axes), axes).items()}
        for measure, s in sampled[name].items():
            _record(method, key(measure), s.estimate())
        means = design.draws.replicate_means(cube)  # (B, controls, axes)
        points[name] = {label: {a: list(stats.percentile_interval(means[:, c, i])) for i, a in enumerate(axes)}
                        for c, label in enumerate(labels)}
    return FrontEvidence(_against_anchor(sampled, anchor, key, ratio_of={"hypervolume"}), points)


def answer_evidence(results: RunResults, design: Design, anchor: str, axes: list[str],
                    judges: tuple[list[str], list[str]] | None) -> dict[str, dict[str, Any]]:
    """Each other score's mean over a method's answers, log-loss (mean and median), degenerate
    answers and judge agreement, with intervals; the anchor against every other method."""
    columns = sorted({k for m in results.methods.values() for r in m.records for k in r.scores} - set(axes))
    measures: dict[str, tuple[Callable[[Record], float], bool]] = {c: (_score(c), False) for c in columns}
    if "perplexity" in columns:
        measures["log_loss"] = (_log_loss, False)
        measures["log_loss_median"] = (_log_loss, True)
    measures["degenerate"] = (lambda r: float(degenerate(r.output)), False)
    if judges is not None:
        measures["judge_agreement"] = (_agreement(*judges), False)
    sampled: dict[str, dict[str, stats.Sampled]] = {}
    for name, method in results.methods.items():
        labels = [p.label for p in method.points]
        sampled[name] = {}
        for measure, (value, median) in measures.items():
            cube = design.cube(method, labels, lambda r, f=value: [f(r)], 1)
            statistic = stats.median_of_rows() if median else stats.mean_over_controls()
            sampled[name][measure] = s = stats.sample(cube, statistic, design.draws, on_rows=median)
            method.summary[measure] = s.value
            _record(method, measure, s.estimate())
    return _against_anchor(sampled, anchor, lambda m: m)


def _against_anchor(sampled: dict[str, dict[str, stats.Sampled]], anchor: str, key: Callable[[str], str],
                    ratio_of: set[str] = frozenset()) -> dict[str, dict[str, Any]]:  # type: ignore[assignment]
    """The anchor's paired comparison with every other method on every measure both have."""
    return {other: {key(m): stats.compare_sampled(sampled[anchor][m], s, direction(m), m in ratio_of).to_json()
                    for m, s in measures.items() if m in sampled[anchor]}
            for other, measures in sampled.items() if other != anchor}


def _score(name: str) -> Callable[[Record], float]:
    return lambda r: r.scores.get(name, float("nan"))


def _log_loss(record: Record) -> float:
    """Mean per-token log-loss under the unsteered model: the log of the answer's perplexity."""
    value = record.scores.get("perplexity", float("nan"))
    return math.log(value) if math.isfinite(value) and value > 0 else float("nan")


def _agreement(first: list[str], second: list[str]) -> Callable[[Record], float]:
    def agree(record: Record) -> float:
        a, b = leading_style(record.scores, first), leading_style(record.scores, second)
        return float("nan") if a is None or b is None else float(a == b)
    return agree


def _record(method: MethodResult, measure: str, est: stats.Estimate) -> None:
    method.intervals[measure] = [est.low, est.high]
    method.n = {"prompts": est.n_prompts, "seeds": max(est.n_seeds, method.n.get("seeds", 0))}

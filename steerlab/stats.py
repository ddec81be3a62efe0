"""Intervals for every number the lab reports: a paired, hierarchical bootstrap.

Why a bootstrap, and why this one:

* **paired**: every method of a study answers the same prompts, so a comparison resamples the
  same prompts for both methods (a hard prompt is hard for both; the difference's interval is
  much narrower than two separate intervals would suggest);
* **hierarchical**: with several training seeds a number varies with the seed as well as with the
  prompts, and the seeds are few. Each replicate resamples seeds, then, within each drawn seed,
  prompts (Davison & Hinkley's two-stage bootstrap), so the interval carries both sources. A
  method that does not train (the base model, prompting) has one seed: every drawn seed maps to
  it, and only its prompts vary;
* **any statistic**: hypervolume, rank correlations and corner gaps are not means; the statistic
  is a function of the per-control means of each replicate (all replicates at once, a leading
  axis, so rank correlations and gaps run as array operations), so one mechanism serves them all;
* **deterministic**: a fixed resample count and generator seed, so a study with its seeds gives
  the same intervals twice (``RESAMPLES``, ``BOOTSTRAP_SEED``).

A sample is a ``Cube``: scores ``(seeds, prompts, controls, axes)`` with NaN where a record is
missing (a staged sweep answers some controls on some prompts only); means skip NaN.
Percentile intervals at 95% (``LEVEL``). Verdicts are read from the interval of a difference,
never from a point estimate: ``better`` when it lies above 0 for a higher-is-better number,
``worse`` when below, ``not distinguishable`` when it holds 0. A hypothesis ("the adapter beats
direct transfer by more than 20 points") is read the same way against its bound (``hypothesis``:
``supported`` / ``not supported`` / ``not distinguishable``), and a hypothesis made of several
claims holds when every claim does (``all_of``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
BOOTSTRAP_SEED = 20_261_202
LEVEL = 0.95

Statistic = Callable[[np.ndarray], np.ndarray]  # per-control means (B, controls, axes) -> (B,): one number per replicate
VERDICTS = ("better", "worse", "higher", "lower", "not distinguishable", "undefined")
HYPOTHESIS_VERDICTS = ("supported", "not supported", "not distinguishable", "undefined")


@dataclass(frozen=True)
class Cube:
    """One method's scores: ``values`` (seeds, prompts, controls, axes), NaN where missing."""

    values: np.ndarray

    @property
    def n_seeds(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_prompts(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class Draws:
    """The resampling plan every method of one comparison shares (that is what pairs them):
    ``seeds`` (B, S) indices with replacement, ``prompts`` (B, S, P) indices with replacement,
    one prompt draw per drawn seed."""

    seeds: np.ndarray
    prompts: np.ndarray

    @classmethod
    def make(cls, n_seeds: int, n_prompts: int, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> "Draws":
        rng = np.random.default_rng(seed)
        seeds = rng.integers(0, n_seeds, size=(resamples, n_seeds)) if n_seeds > 1 else np.zeros((resamples, 1), dtype=int)
        prompts = rng.integers(0, n_prompts, size=(resamples, n_seeds, n_prompts))
        return cls(seeds, prompts)

    def replicates(self, cube: Cube) -> np.ndarray:
        """Every replicate's resampled rows, seeds and prompts pooled: (B, S * P, controls, axes).
        A cube with one seed (an untrained method) uses it for every drawn seed."""
        if cube.n_seeds not in (1, self.seeds.shape[1]):
            raise ValueError(f"a cube with {cube.n_seeds} seeds cannot follow a plan drawn for {self.seeds.shape[1]}")
        if cube.n_prompts != self.prompts.shape[2]:
            raise ValueError(f"a cube with {cube.n_prompts} prompts cannot follow a plan drawn for {self.prompts.shape[2]}")
        seeds = self.seeds if cube.n_seeds == self.seeds.shape[1] else np.zeros_like(self.seeds)
        drawn = cube.values[seeds[:, :, None], self.prompts]  # (B, S, P, controls, axes)
        return drawn.reshape(drawn.shape[0], -1, *drawn.shape[3:])

    def replicate_means(self, cube: Cube) -> np.ndarray:
        """Per-control means of every replicate: (B, controls, axes)."""
        return _nanmean(self.replicates(cube), axis=1)


def harmonic_mean(parts: tuple[float, ...]) -> float:
    """AxBench's combination of 0-2 scores: their harmonic mean, 0 when any is 0 (an answer that
    fails one criterion fails), NaN when any is unknown."""
    if any(math.isnan(p) for p in parts):
        return math.nan
    return 0.0 if min(parts) <= 0 else len(parts) / sum(1 / p for p in parts)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice is NaN, which is what we want
        return np.nanmean(values, axis=axis)


def pooled(cube: Cube) -> np.ndarray:
    """Every row of the cube, seeds and prompts pooled: (S * P, controls, axes)."""
    return cube.values.reshape(-1, *cube.values.shape[2:])


def point_means(cube: Cube) -> np.ndarray:
    """Per-control means over every seed and prompt: (controls, axes)."""
    return _nanmean(pooled(cube), axis=0)


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval and the n behind it."""

    value: float
    low: float
    high: float
    n_prompts: int
    n_seeds: int

    def text(self, digits: int = 3) -> str:
        """``0.064 [0.058, 0.071]``."""
        f = lambda v: "nan" if not math.isfinite(v) else f"{v:.{digits}f}"  # noqa: E731
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]"

    def text_n(self, digits: int = 3) -> str:
        """``0.064 [0.058, 0.071] (n 12x3)``: the number, its interval, prompts x seeds behind it."""
        return f"{self.text(digits)} (n {self.n_prompts}x{self.n_seeds})"

    def to_json(self) -> dict[str, object]:
        return {"value": _finite(self.value), "interval": [_finite(self.low), _finite(self.high)],
                "n_prompts": self.n_prompts, "n_seeds": self.n_seeds}


@dataclass(frozen=True)
class Comparison:
    """Method A against method B on one number: the paired difference A - B (and A / B where a
    ratio means something), the verdict read from the difference's interval, and how many
    prompts per cell would make the observed difference distinguishable."""

    difference: Estimate
    ratio: Estimate | None
    verdict: str
    higher_is_better: bool | None
    prompts_needed: float

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"difference": self.difference.to_json(), "verdict": self.verdict,
                                  "higher_is_better": self.higher_is_better, "prompts_needed": _finite(self.prompts_needed)}
        if self.ratio is not None:
            out["ratio"] = self.ratio.to_json()
        return out


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def percentile_interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of the finite replicates; NaN when more than 1% of them are
    undefined (a statistic that often cannot be computed has no honest interval)."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < 0.99 * len(replicates) or not len(finite):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Sampled:
    """A statistic of one cube: its value on all the data and on every replicate (computed once,
    then reused by every comparison the method takes part in)."""

    value: float
    replicates: np.ndarray
    n_prompts: int
    n_seeds: int

    def estimate(self) -> Estimate:
        return Estimate(self.value, *percentile_interval(self.replicates), self.n_prompts, self.n_seeds)


def sample(cube: Cube, statistic: Statistic, draws: Draws, on_rows: bool = False) -> Sampled:
    """``statistic`` of the cube's per-control means (``on_rows``: of its pooled rows (B, S * P,
    controls, axes), for a statistic that is not a function of means, e.g. a median), on the
    data and on every replicate of ``draws``."""
    data = pooled(cube) if on_rows else point_means(cube)
    value = float(statistic(data[None])[0])
    replicates = np.asarray(statistic(draws.replicates(cube) if on_rows else draws.replicate_means(cube)), dtype=float)
    return Sampled(value, replicates, cube.n_prompts, cube.n_seeds)


def estimate(cube: Cube, statistic: Statistic, draws: Draws, on_rows: bool = False) -> Estimate:
    """``statistic`` with its bootstrap interval (see ``sample``)."""
    return sample(cube, statistic, draws, on_rows).estimate()


def verdict(low: float, high: float, higher_is_better: bool | None) -> str:
    """``better`` / ``worse`` / ``not distinguishable`` from the interval of A - B alone
    (``higher`` / ``lower`` for a number with no better direction, such as length)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "undefined"
    if low <= 0 <= high:
        return "not distinguishable"
    up = low > 0
    if higher_is_better is None:
        return "higher" if up else "lower"
    return "better" if up == higher_is_better else "worse"


def hypothesis(interval: Estimate, above: float | None = None, below: float | None = None) -> str:
    """A claim that a number lies ``above`` (or ``below``) a bound, read from its interval alone:
    ``supported`` when the whole interval is on the claimed side, ``not supported`` when it is
    wholly on the other, ``not distinguishable`` when it holds the bound (a point estimate past
    the bound with an interval across it is not evidence either way)."""
    if (above is None) == (below is None):
        raise ValueError("a hypothesis needs exactly one of 'above' or 'below'")
    low, high = interval.low, interval.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return "undefined"
    if above is not None:
        return "supported" if low > above else "not supported" if high < above else "not distinguishable"
    return "supported" if high < below else "not supported" if low > below else "not distinguishable"  # type: ignore[operator]


def all_of(*verdicts: str) -> str:
    """A hypothesis made of several claims: ``not supported`` when any claim is, ``supported``
    when every claim is, ``undefined`` when one cannot be read and none fails, else ``not distinguishable``."""
    if "not supported" in verdicts:
        return "not supported"
    if "undefined" in verdicts or not verdicts:
        return "undefined"
    return "supported" if all(v == "supported" for v in verdicts) else "not distinguishable"


def prompts_needed(difference: Estimate) -> float:
    """Prompts per cell at which the observed difference would clear its interval: the half-width
    shrinks as 1 / sqrt(n), so n * (half-width / |difference|)^2 (inf for no difference)."""
    half = (difference.high - difference.low) / 2
    if not math.isfinite(half) or not math.isfinite(difference.value):
        return float("nan")
    if difference.value == 0:
        return float("inf")
    return float(math.ceil(difference.n_prompts * (half / abs(difference.value)) ** 2))


def compare(a: Cube, b: Cube, statistic: Statistic, draws: Draws, higher_is_better: bool | None = True,
            with_ratio: bool = False, statistic_b: Statistic | None = None, on_rows: bool = False) -> Comparison:
    """A against B on ``statistic``, both resampled with the same ``draws`` (paired).
    ``statistic_b``: B's own form of the statistic where it depends on the method (a front
    measure reads each method's own controls); ``on_rows`` as for ``sample``."""
    if a.n_prompts != b.n_prompts:
        raise ValueError(f"paired comparison needs the same prompts ({a.n_prompts} against {b.n_prompts})")
    return compare_sampled(sample(a, statistic, draws, on_rows), sample(b, statistic_b or statistic, draws, on_rows),
                           higher_is_better, with_ratio)


def compare_sampled(a: Sampled, b: Sampled, higher_is_better: bool | None = True, with_ratio: bool = False) -> Comparison:
    """A against B from their statistics sampled with the same draws: the paired difference (and
    ratio), the verdict read from the difference's interval, and the prompts needed."""
    n_prompts, n_seeds = a.n_prompts, max(a.n_seeds, b.n_seeds)
    diff = Estimate(a.value - b.value, *percentile_interval(a.replicates - b.replicates), n_prompts, n_seeds)
    ratio = None
    if with_ratio:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(b.replicates > 0, a.replicates / np.where(b.replicates > 0, b.replicates, 1.0), np.nan)
        ratio = Estimate(a.value / b.value if b.value > 0 else float("nan"), *percentile_interval(ratios), n_prompts, n_seeds)
    return Comparison(diff, ratio, verdict(diff.low, diff.high, higher_is_better), higher_is_better, prompts_needed(diff))


def mean_over_controls(axis: int = 0) -> Statistic:
    """The mean over controls of one axis's per-control means (a method's overall mean score)."""
    return lambda means: _nanmean(means[..., axis], axis=-1)


def median_of_rows(axis: int = 0) -> Statistic:
    """The median of one axis over every row and control (use with ``on_rows``)."""
    def statistic(rows: np.ndarray) -> np.ndarray:  # (B, N, controls, axes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(rows[..., axis].reshape(rows.shape[0], -1), axis=1)

    return statistic


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (a judge's accuracy on its
    held-out texts): unlike the normal approximation it stays inside [0, 1] and keeps its
    coverage near 0 and 1 and for small n. (nan, nan) when n is 0."""
    if n <= 0:
        return math.nan, math.nan
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)

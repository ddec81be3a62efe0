"""The bootstrap behind every interval: checked against scipy on one-level data, paired and
hierarchical where it claims to be, deterministic, and verdicts that never disagree with their
intervals. Hypervolume checked against inclusion-exclusion written here, independently."""

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from steerlab import stats
from steerlab.analysis import pareto


def cube(values: np.ndarray) -> stats.Cube:
    """(seeds, prompts) scores of one control and one axis as a cube."""
    return stats.Cube(np.asarray(values, dtype=float)[:, :, None, None])


def test_a_one_level_interval_matches_scipys_percentile_bootstrap():
    rng = np.random.default_rng(1)
    data = rng.exponential(2.0, size=40)
    ours = stats.estimate(cube(data[None]), stats.mean_over_controls(), stats.Draws.make(1, 40, resamples=4000))
    theirs = scipy_stats.bootstrap((data,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95,
                                   random_state=np.random.default_rng(2)).confidence_interval
    width = theirs.high - theirs.low
    assert ours.value == pytest.approx(data.mean())
    assert abs(ours.low - theirs.low) < 0.1 * width and abs(ours.high - theirs.high) < 0.1 * width
    assert (ours.n_prompts, ours.n_seeds) == (40, 1)


def test_the_same_data_give_the_same_interval_twice():
    data = np.random.default_rng(3).normal(size=(3, 20))
    one = stats.estimate(cube(data), stats.mean_over_controls(), stats.Draws.make(3, 20))
    two = stats.estimate(cube(data), stats.mean_over_controls(), stats.Draws.make(3, 20))
    assert one == two


def test_seed_to_seed_variation_widens_the_interval():
    rng = np.random.default_rng(4)
    prompts = rng.normal(size=30)
    same = np.stack([prompts] * 3)
    shifted = same + np.array([[-1.0], [0.0], [1.0]])  # each training seed moves every answer
    draws = stats.Draws.make(3, 30)
    narrow = stats.estimate(cube(same), stats.mean_over_controls(), draws)
    wide = stats.estimate(cube(shifted), stats.mean_over_controls(), draws)
    assert (wide.high - wide.low) > 2 * (narrow.high - narrow.low)


def test_pairing_over_prompts_removes_the_prompts_own_difficulty():
    rng = np.random.default_rng(5)
    difficulty = rng.normal(scale=3.0, size=(1, 50))
    a, b = cube(difficulty + 0.5 + rng.normal(scale=0.2, size=(1, 50))), cube(difficulty + rng.normal(scale=0.2, size=(1, 50)))
    draws = stats.Draws.make(1, 50)
    paired = stats.compare(a, b, stats.mean_over_controls(), draws)
    assert paired.verdict == "better" and paired.difference.low > 0.3
    alone_a = stats.estimate(a, stats.mean_over_controls(), draws)
    assert (alone_a.high - alone_a.low) > 5 * (paired.difference.high - paired.difference.low)


def test_an_untrained_method_with_one_seed_is_compared_with_a_three_seed_one():
    rng = np.random.default_rng(6)
    trained, untrained = cube(rng.normal(1.0, size=(3, 25))), cube(rng.normal(0.0, size=(1, 25)))
    result = stats.compare(trained, untrained, stats.mean_over_controls(), stats.Draws.make(3, 25))
    assert result.difference.n_seeds == 3 and result.verdict == "better"


@pytest.mark.parametrize("higher_is_better", [True, False, None])
def test_no_verdict_disagrees_with_its_interval(higher_is_better):
    rng = np.random.default_rng(7)
    for trial in range(40):
        a = cube(rng.normal(rng.normal(scale=0.3), size=(2, 15)))
        b = cube(rng.normal(size=(2, 15)))
        result = stats.compare(a, b, stats.mean_over_controls(), stats.Draws.make(2, 15, resamples=300, seed=trial),
                               higher_is_better=higher_is_better)
        low, high = result.difference.low, result.difference.high
        up = {True: "better", False: "worse", None: "higher"}[higher_is_better]
        down = {True: "worse", False: "better", None: "lower"}[higher_is_better]
        expected = up if low > 0 else down if high < 0 else "not distinguishable"
        assert result.verdict == expected


def test_prompts_needed_scales_the_half_width_to_the_difference():
    difference = stats.Estimate(0.1, -0.1, 0.3, 36, 3)  # half-width 0.2 at 36 prompts: 4x the prompts halves it
    assert stats.prompts_needed(difference) == 144


def test_a_median_on_rows_is_not_moved_by_one_wild_answer():
    values = np.full((1, 21), 2.0)
    values[0, 0] = 25.0
    c = cube(values)
    draws = stats.Draws.make(1, 21)
    assert stats.estimate(c, stats.median_of_rows(), draws, on_rows=True).value == 2.0
    assert stats.estimate(c, stats.mean_over_controls(), draws).value > 3.0


def test_a_statistic_undefined_in_many_replicates_has_no_interval():
    values = np.zeros((1, 10))
    values[0, 0] = 1.0  # a ratio over replicates that usually miss the one non-zero prompt
    result = stats.compare(cube(values), cube(values), stats.mean_over_controls(), stats.Draws.make(1, 10), with_ratio=True)
    assert result.ratio is not None and np.isnan(result.ratio.low)
    assert result.verdict == "not distinguishable"


def inclusion_exclusion_hypervolume(points: list[tuple[float, ...]]) -> float:
    """Volume of the union of boxes [0, p] (maximising, reference 0) by inclusion-exclusion."""
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(points, k):
            corner = np.min(np.array(subset), axis=0)
            total += (-1) ** (k + 1) * float(np.prod(corner))
    return total


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_equals_inclusion_exclusion_on_small_fronts(seed):
    rng = np.random.default_rng(seed)
    pts = [tuple(p) for p in rng.uniform(0.05, 1.0, size=(int(rng.integers(1, 6)), 3))]
    assert pareto.hypervolume(np.array(pts)) == pytest.approx(inclusion_exclusion_hypervolume(pts), rel=1e-9)


def test_a_hypothesis_is_read_from_where_the_interval_lies_against_its_bound():
    def at(low: float, high: float) -> stats.Estimate:
        return stats.Estimate((low + high) / 2, low, high, 20, 1)

    assert stats.hypothesis(at(0.25, 0.40), above=0.2) == "supported"
    assert stats.hypothesis(at(0.05, 0.45), above=0.2) == "not distinguishable"  # the point 0.25 is past the bound, the interval is not
    assert stats.hypothesis(at(0.00, 0.15), above=0.2) == "not supported"
    assert stats.hypothesis(at(0.00, 0.25), below=0.3) == "supported"
    assert stats.hypothesis(at(0.35, 0.50), below=0.3) == "not supported"
    assert stats.hypothesis(at(float("nan"), 0.5), above=0.0) == "undefined"
    with pytest.raises(ValueError):
        stats.hypothesis(at(0.0, 1.0))


def test_a_hypothesis_of_several_claims_holds_only_when_every_claim_does():
    assert stats.all_of("supported", "supported") == "supported"
    assert stats.all_of("supported", "not distinguishable") == "not distinguishable"
    assert stats.all_of("not distinguishable", "not supported") == "not supported"
    assert stats.all_of("supported", "undefined") == "undefined"


def test_an_estimate_prints_its_interval_and_the_prompts_and_seeds_behind_it():
    assert stats.Estimate(0.0641, 0.0583, 0.0712, 12, 3).text_n() == "0.064 [0.058, 0.071] (n 12x3)"

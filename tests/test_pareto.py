"""Front measures on hand-made points (maximising every axis)."""

import numpy as np
import pytest

from steerlab.analysis import pareto
from steerlab.analysis.pareto import corner_effects
from steerlab.controls import Simplex

AXES = ["judge.a", "judge.b", "judge.c"]


def scores(points):
    return [dict(zip(AXES, p)) for p in points]


def test_hypervolume_of_two_boxes_minus_their_overlap():
    pts = np.array([[0.5, 0.2, 0.3], [0.1, 0.8, 0.1], [0.4, 0.1, 0.2]])
    assert pareto.hypervolume(pts) == pytest.approx(0.5 * 0.2 * 0.3 + 0.1 * 0.8 * 0.1 - 0.1 * 0.2 * 0.1)
    assert len(pareto.nondominated(pts)) == 2


def test_coverage_counts_weakly_dominated_points():
    a = np.array([[0.5, 0.5, 0.5]])
    b = np.array([[0.4, 0.5, 0.1], [0.6, 0.1, 0.1]])
    assert pareto.coverage(a, b) == 0.5 and pareto.coverage(b, a) == 0.0


def test_lambda_alignment_is_one_when_each_score_follows_its_weight():
    grid = Simplex(["a", "b", "c"], 0.5).default_grid()
    assert pareto.lambda_alignment(grid, scores([[0.1 + c[0], 0.2 + c[1], c[2]] for c in grid]), AXES) == pytest.approx(1.0)
    assert pareto.lambda_alignment(grid, scores([[1 - c[0], c[1], c[2]] for c in grid]), AXES) < 1.0


def test_corner_effects_compare_each_style_at_its_corner_with_the_other_corners():
    corners = Simplex(["a", "b", "c"]).corners()
    effects = corner_effects(corners, scores([[0.6, 0.2, 0.2], [0.2, 0.5, 0.3], [0.2, 0.2, 0.4]]), AXES)
    assert [round(e["gap"], 3) for e in effects] == [0.4, 0.3, 0.15]


def test_simplex_grid_has_the_papers_15_points_with_corners_first():
    space = Simplex(["a", "b", "c"], 0.25)
    grid = space.default_grid()
    assert len(grid) == 15 and all(abs(sum(p) - 1) < 1e-9 for p in grid)
    assert sorted(grid[:3]) == [(0, 0, 1), (0, 1, 0), (1, 0, 0)]


@pytest.mark.parametrize(("value", "message"), [
    ([0.5, 0.6, 0.0], "sum to 1"), ([0.5, 0.5], "expected 3 weights"), ([float("nan"), 0.5, 0.5], "finite"),
    ([-0.5, 1.0, 0.5], ">= 0"), ({"a": 0.5, "z": 0.5}, "unknown dimension 'z'"), ([True, 0, 0], "expected numbers"),
])
def test_a_bad_preference_vector_says_what_was_expected(value, message):
    with pytest.raises(ValueError, match=message):
        Simplex(["a", "b", "c"]).check(value)


def test_simplex_parses_named_or_positional_weights_and_rejects_bad_steps():
    space = Simplex(["helpful", "humorous", "philosophical"])
    assert space.parse("humorous=1") == (0.0, 1.0, 0.0)
    assert space.parse("0.2,0.3,0.5") == (0.2, 0.3, 0.5)
    for step in (0.0, 0.3, -0.25, float("nan")):
        with pytest.raises(ValueError, match="grid step"):
            Simplex(["a", "b"], step)


def _method(name, rows, coords):
    from steerlab.results import MethodResult, SweepPoint

    points = [SweepPoint(c, str(c), 1, {**dict(zip(AXES, r[:3])), "perplexity": r[3]}) for r, c in zip(rows, coords)]
    return MethodResult(name, name, {"kind": "simplex"}, {}, points, [])


def test_ternary_marks_the_corner_controls_even_when_a_point_is_dropped(tmp_path):
    from steerlab.analysis.compare import _plot_ternary
    from steerlab.controls import corner_of

    assert [corner_of(c) for c in [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.0), ()]] == [0, 2, None, None]
    coords = [(1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.0, 1.0, 0.0)]
    rows = [[0.5, 0.3, 0.2, 2.0], [float("nan"), 0.3, 0.3, 2.5], [0.3, 0.4, 0.3, 3.0]]  # the NaN point is not drawn
    path, caption = _plot_ternary({"m": _method("m", rows, coords)}, {"m": coords}, AXES, tmp_path / "t.png")
    assert path.exists() and "rescaled" in caption


def test_the_comparison_shows_the_scores_the_fronts_leave_out():
    from steerlab.run.report import other_scores_table
    from steerlab.results import RunResults

    coords = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    results = RunResults({}, {"m": _method("m", [[0.5, 0.3, 0.2, 2.0], [0.3, 0.4, 0.3, 3.0]], coords)})
    table = "\n".join(other_scores_table(results, AXES))
    assert "| method | perplexity |" in table and "| m | 2.500 |" in table
    assert other_scores_table(results, [*AXES, "perplexity"]) == []


def test_front_size_counts_the_non_dominated_points_and_spacing_is_schotts_by_hand():
    pts = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.2, 0.2), (0.7, 0.4)]  # (0.2, 0.2) is dominated
    scores = [{"a": x, "b": y} for x, y in pts]
    summary = pareto.front_summary([(1.0, 0.0)] * len(pts), scores, ["a", "b"])
    assert summary["front_size"] == 4.0
    front = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.7, 0.4)]
    nearest = [min(abs(p[0] - q[0]) + abs(p[1] - q[1]) for q in front if q != p) for p in front]
    mean = sum(nearest) / len(nearest)
    schott = (sum((d - mean) ** 2 for d in nearest) / (len(nearest) - 1)) ** 0.5
    assert summary["spacing"] == pytest.approx(schott)


def test_lambda_alignment_of_every_replicate_equals_scipys_spearman_one_by_one():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    coords = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)]
    means = rng.uniform(size=(20, 6, 3))
    batch = pareto.lambda_alignment_batch(coords, means)
    for b in range(20):
        rhos = [spearmanr([c[i] for c in coords], means[b, :, i]).statistic for i in range(3)]
        assert batch[b] == pytest.approx(np.mean(rhos))

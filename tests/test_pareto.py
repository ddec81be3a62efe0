"""Front measures on hand-made points (maximising every axis)."""

import numpy as np
import pytest

from steerlab import pareto
from steerlab.compare import corner_effects
from steerlab.simplex import check_preference, corners_and_centre, simplex_grid

AXES = ["judge.a", "judge.b", "judge.c"]


def rows(points, controls=None):
    controls = controls or [[1.0, 0.0, 0.0]] * len(points)
    return [{"control": c, **dict(zip(AXES, p))} for c, p in zip(controls, points)]


def test_hypervolume_of_two_boxes_minus_their_overlap():
    pts = np.array([[0.5, 0.2, 0.3], [0.1, 0.8, 0.1], [0.4, 0.1, 0.2]])
    assert pareto.hypervolume(pts) == pytest.approx(0.5 * 0.2 * 0.3 + 0.1 * 0.8 * 0.1 - 0.1 * 0.2 * 0.1)
    assert len(pareto.nondominated(pts)) == 2


def test_coverage_counts_weakly_dominated_points():
    a = np.array([[0.5, 0.5, 0.5]])
    b = np.array([[0.4, 0.5, 0.1], [0.6, 0.1, 0.1]])
    assert pareto.coverage(a, b) == 0.5 and pareto.coverage(b, a) == 0.0


def test_lambda_alignment_is_one_when_each_score_follows_its_weight():
    grid = simplex_grid(3, 0.5)
    assert pareto.lambda_alignment(rows([[0.1 + c[0], 0.2 + c[1], c[2]] for c in grid], grid), AXES) == pytest.approx(1.0)
    assert pareto.lambda_alignment(rows([[0.3, 0.3, 0.3] for _ in grid], grid), AXES) != pareto.lambda_alignment(
        rows([[1 - c[0], c[1], c[2]] for c in grid], grid), AXES)


def test_corner_effects_compare_each_style_at_its_corner_with_the_other_corners():
    corners = corners_and_centre(3)[:3]
    effects = corner_effects(rows([[0.6, 0.2, 0.2], [0.2, 0.5, 0.3], [0.2, 0.2, 0.4]], corners), AXES)
    assert [round(e["gap"], 3) for e in effects] == [0.4, 0.3, 0.15]


def test_simplex_grid_has_the_papers_15_points_with_corners_first():
    grid = simplex_grid(3, 0.25)
    assert len(grid) == 15 and all(abs(sum(p) - 1) < 1e-9 for p in grid)
    assert sorted(map(tuple, grid[:3])) == [(0, 0, 1), (0, 1, 0), (1, 0, 0)]
    with pytest.raises(ValueError, match="sum to 1"):
        check_preference([0.5, 0.6, 0.0], 3)
    with pytest.raises(ValueError, match="list of 3 numbers"):
        check_preference([0.5, 0.5], 3)

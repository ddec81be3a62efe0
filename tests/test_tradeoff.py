"""scripts/tradeoff.py measures a run's methods with the reports' own front functions."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_tradeoff():
    spec = importlib.util.spec_from_file_location("tradeoff", ROOT / "scripts" / "tradeoff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tradeoff_rows_reproduce_a_published_reports_points_computed_independently(tmp_path):
    """Hypervolume by inclusion-exclusion, alignment by scipy's Spearman and the corner gaps by
    hand, all from the published per-control points (not from the summary the code wrote)."""
    from scipy.stats import spearmanr

    from tests.test_stats import inclusion_exclusion_hypervolume

    run = ROOT / "docs" / "results" / "chat3d_ablation"
    published = json.loads((run / "results.json").read_text())
    axes = published["comparison"]["axes"]
    rows = {r["setting"]: r for r in load_tradeoff().rows_of(run)}
    assert set(rows) == set(published["methods"]) - {"base", "prompting"}
    for name, row in rows.items():
        points = published["methods"][name]["points"]
        scores = [[p["scores"][a] for a in axes] for p in points]
        assert row["hypervolume"] == pytest.approx(inclusion_exclusion_hypervolume([tuple(s) for s in scores]), rel=1e-9)
        rhos = [spearmanr([p["control"][i] for p in points], [s[i] for s in scores]).statistic for i in range(len(axes))]
        assert row["alignment"] == pytest.approx(sum(rhos) / len(rhos))
        corner = {p["control"].index(1.0): s for p, s in zip(points, scores) if max(p["control"]) == 1.0}
        gaps = [corner[i][i] - sum(corner[j][i] for j in corner if j != i) / (len(axes) - 1) for i in range(len(axes))]
        assert row["smallest_gap"] == pytest.approx(min(gaps))


def test_tradeoff_reads_a_run_made_with_only(tmp_path):
    """A run of some methods (``--only``) has no results.json: each method's result.json is read."""
    source = ROOT / "docs" / "results" / "chat3d_fluency"
    rows = load_tradeoff().rows_of(source)
    assert [r["setting"] for r in rows] == ["capacity_normalised"] and rows[0]["method"] == "panacea"
    assert 0 < rows[0]["hypervolume"] < 1 and rows[0]["perplexity"] > 1


def test_tradeoff_names_a_folder_that_holds_no_run_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["tradeoff.py", str(tmp_path), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        load_tradeoff().main()
    assert exit_info.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err and not (tmp_path / "out").exists()

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


def test_tradeoff_rows_reproduce_a_published_report(tmp_path):
    run = ROOT / "docs" / "results" / "chat3d_ablation"
    published = json.loads((run / "results.json").read_text())
    rows = {r["setting"]: r for r in load_tradeoff().rows_of(run)}
    assert set(rows) == set(published["methods"]) - {"base", "prompting"}
    for name, row in rows.items():
        summary = published["methods"][name]["summary"]
        assert row["hypervolume"] == pytest.approx(summary["hypervolume"])
        assert row["alignment"] == pytest.approx(summary["lambda_alignment"])
        assert row["smallest_gap"] == pytest.approx(min(c["gap"] for c in published["comparison"]["corners"][name]))


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

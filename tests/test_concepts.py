"""The concept comparison (AxBench-style): scores on hand-made answers, and the view over a tiny run."""

import json
import os

import pytest

from steerlab.analysis.concepts import References, answer_scores
from steerlab.cli import main
from steerlab.run.results import Record

REF = References(perplexity=2.0, distinct3=0.9, relevance=0.5, values={"cats": 0.5, "concise": 100.0})


def record(**scores) -> Record:
    return Record("Why?", 0.0, "+0", "text", scores)


def test_an_answer_as_good_as_the_reference_with_full_concept_scores_two_everywhere():
    s = answer_scores(record(**{"judge.cats": 1.0, "relevance": 0.5, "perplexity": 2.0, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert s == pytest.approx({"concept_score": 2.0, "instruction": 2.0, "fluency": 2.0, "harmonic": 2.0})


def test_the_harmonic_mean_is_zero_when_any_score_is_zero_and_scores_fall_as_described():
    broken = answer_scores(record(**{"judge.cats": 0.9, "relevance": 0.5, "perplexity": 8.0, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert broken["fluency"] == 0.0 and broken["harmonic"] == 0.0  # 4x the reference perplexity
    half = answer_scores(record(words=50.0, relevance=0.25, perplexity=4.0, distinct3=0.9), "concise", "-words", REF)
    assert half["concept_score"] == pytest.approx(1.0) and half["instruction"] == pytest.approx(1.0)
    assert half["fluency"] == pytest.approx(1.0)  # perplexity 2x the reference: half-way to 4x
    assert half["harmonic"] == pytest.approx(1.0)


COMPARE = """
[compare]
reference = "base"
dev_share = 0.5

[compare.concepts]
cats = "judge.cats"
concise = "-words"
"""


def test_the_view_over_a_run_chooses_on_dev_reports_on_test_and_can_be_redone(study_dir, capsys):
    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    text = text.replace('[methods.actdiff]\n', '[methods.actdiff]\nconcept = "cats"\n').replace("[quick]", COMPARE + "\n[quick]")
    path.write_text(text)
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", "methods.actdiff.layer_sweep=[]"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    block = json.loads((run_dir / "results.json").read_text())["concepts"]
    rows = {(r["method"], r["concept"]): r for r in block["rows"]}
    assert set(rows) == {("actdiff", "cats"), ("base", "cats"), ("base", "concise")}
    assert rows[("actdiff", "cats")]["control"] != "+0"  # the neutral control is not a candidate
    for r in rows.values():
        assert 0.0 <= r["harmonic"] <= 2.0 and r["n_test"] >= 1
        assert r["train_seconds"] >= 0.0
    assert set(block["winners"]) == {"cats", "concise"}
    assert "## Concept comparison" in (run_dir / "report.md").read_text()
    capsys.readouterr()
    assert main(["compare", str(run_dir)]) == 0
    assert json.loads((run_dir / "results.json").read_text())["concepts"]["rows"] == block["rows"]
    assert "| actdiff | cats |" in capsys.readouterr().out


def test_a_concept_the_compare_table_does_not_list_is_refused(study_dir, capsys):
    path = study_dir / "tiny.toml"
    path.write_text(path.read_text().replace('[methods.actdiff]\n', '[methods.actdiff]\nconcept = "dogs"\n'))
    assert main(["run", str(path), "--out", str(study_dir / "runs")]) == 2
    assert "concept 'dogs'" in capsys.readouterr().err


def test_a_staged_sweep_generates_other_strengths_on_dev_only_and_reports_the_same_table(study_dir):
    """[compare] test_chosen_only: a strength entry is generated at every control on the dev
    requests and only at its chosen (and free neutral) control on the test requests; the concept
    table is the one a full sweep gives."""
    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    base_table = "[methods.base]\n"
    assert text.count(base_table) == 1
    body, _, rest = text.partition(base_table)
    base_body, sep, after = rest.partition("\n[")  # move [methods.base] first: the reference must run before the entries it ranks
    text = body.replace("[methods.actdiff]\n", base_table + base_body + "\n\n[methods.actdiff]\nconcept = \"cats\"\n", 1) + sep + after
    path.write_text(text.replace("[quick]", COMPARE + "\n[quick]"))
    blocks, records = {}, {}
    for staged in (True, False):
        out = study_dir / f"runs-{staged}"
        args = ["run", str(path), "--out", str(out), "--no-progress", "--set", "methods.actdiff.layer_sweep=[]",
                "--set", f"compare.test_chosen_only={str(staged).lower()}"]
        assert main(args) == 0
        run_dir = next(out.iterdir())
        results = json.loads((run_dir / "results.json").read_text())
        blocks[staged], records[staged] = results["concepts"], results["methods"]["actdiff"]["records"]
    dev = {"Hello!"}  # by the stable hash at dev_share 0.5; the other two prompts are test
    chosen = next(r["control"] for r in blocks[True]["rows"] if r["method"] == "actdiff")
    assert len(records[False]) == 15  # 5 controls x 3 prompts
    assert {(r["prompt"] in dev) or r["label"] in (chosen, "+0") for r in records[True]} == {True}
    assert len(records[True]) == 5 * 1 + 2 * 2
    for a, b in zip(blocks[True]["rows"], blocks[False]["rows"], strict=True):
        assert (a["method"], a["concept"], a["control"], a["n_test"]) == (b["method"], b["concept"], b["control"], b["n_test"])
        for key in ("concept_score", "instruction", "fluency", "harmonic"):
            assert a[key] == pytest.approx(b[key], abs=1e-4)

"""The concept comparison (AxBench-style): scores on hand-made answers, and the view over a tiny run."""

import json
import os

import numpy as np
import pytest

from steerlab.analysis.concepts import References, answer_scores
from steerlab.analysis.scales import Scale, Scales
from steerlab.cli import main
from steerlab.results import Record

# Fixed scales for the tests (the builder calibrates real ones): instruction levels at relevance
# 0.2 / 0.4; fluency the lower of log-perplexity (cuts ln 8, ln 4) and distinct trigrams (0.4 / 0.7).
SCALES = Scales("tiny-llama", {"instruction": (Scale("relevance", True, (0.2, 0.4)),),
                               "fluency": (Scale("log_perplexity", False, (float(np.log(8.0)), float(np.log(4.0)))),
                                           Scale("distinct3", True, (0.4, 0.7)))})
REF = References(values={"cats": 0.5, "concise": 100.0}, scales=SCALES)


def write_scales(folder) -> None:
    """The test scales as a study's scales.json (what `steerlab data build compare-scales` writes;
    conftest's study folder has the same file)."""
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "scales.json").write_text(json.dumps(SCALES.to_json()))


def test_the_test_scales_are_the_study_folders(study_dir):
    from steerlab.analysis.scales import load_scales

    assert load_scales(study_dir / "data" / "scales.json").components == SCALES.components


def record(**scores) -> Record:
    return Record("Why?", 0.0, "+0", "text", scores)


def test_an_answer_past_every_cut_with_full_concept_scores_two_everywhere():
    s = answer_scores(record(**{"judge.cats": 1.0, "relevance": 0.5, "perplexity": 2.0, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert s == pytest.approx({"concept_score": 2.0, "instruction": 2.0, "fluency": 2.0, "harmonic": 2.0})


def test_instruction_and_fluency_are_levels_on_the_fixed_cuts_not_on_the_reference():
    """The same answer gets the same levels whatever the reference's answers look like: no
    median of the unsteered model enters instruction or fluency."""
    answer = record(**{"judge.cats": 1.0, "relevance": 0.3, "perplexity": 6.0, "distinct3": 0.9})
    other = References(values={"cats": 0.01, "concise": 5.0}, scales=SCALES)
    for ref in (REF, other):
        s = answer_scores(answer, "cats", "judge.cats", ref)
        assert (s["instruction"], s["fluency"]) == (1.0, 1.0)  # relevance between 0.2 and 0.4; perplexity between 4 and 8
        assert s["harmonic"] == pytest.approx(3 / (1 / 2 + 1 + 1))
    looped = answer_scores(record(**{"judge.cats": 1.0, "relevance": 0.5, "perplexity": 1.5, "distinct3": 0.2}), "cats", "judge.cats", REF)
    assert looped["fluency"] == 0.0 and looped["harmonic"] == 0.0  # a loop: predictable, but fluency takes the lower cue


def test_the_harmonic_mean_is_zero_when_any_score_is_zero_and_scores_fall_as_described():
    broken = answer_scores(record(**{"judge.cats": 0.9, "relevance": 0.5, "perplexity": 9.0, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert broken["fluency"] == 0.0 and broken["harmonic"] == 0.0  # past both log-perplexity cuts
    half = answer_scores(record(words=50.0, relevance=0.25, perplexity=5.0, distinct3=0.9), "concise", "-words", REF)
    assert half["concept_score"] == pytest.approx(1.0) and half["instruction"] == 1.0
    assert half["fluency"] == 1.0
    assert half["harmonic"] == pytest.approx(1.0)


COMPARE = """
[compare]
reference = "base"
dev_share = 0.5
scales = "data/scales.json"

[compare.concepts]
cats = "judge.cats"
concise = "-words"
"""


def test_the_view_over_a_run_chooses_on_dev_reports_on_test_and_can_be_redone(study_dir, capsys):
    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    text = text.replace('[methods.actdiff]\n', '[methods.actdiff]\nconcept = "cats"\n').replace("[quick]", COMPARE + "\n[quick]")
    path.write_text(text)
    write_scales(study_dir)
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
    report = (run_dir / "report.md").read_text()
    assert "## Concept comparison" in report and "levels 0/1/2 on fixed scales" in report and "relevance cuts 0.200 / 0.400" in report
    assert "**Where prompting wins**" in report
    capsys.readouterr()
    assert main(["compare", str(run_dir)]) == 0
    assert json.loads((run_dir / "results.json").read_text())["concepts"]["rows"] == block["rows"]
    assert "| actdiff | cats |" in capsys.readouterr().out


def test_the_unsteered_answers_earn_only_the_levels_their_own_features_reach(study_dir):
    """Before the fixed scales, instruction and fluency were 2 x (score / the base's median): the
    base scored about 2 on both by construction. Now a tiny random model's unsteered answers
    (byte soup, unrelated to the request) get the levels the fixed cuts give their features,
    computed here by hand, and not the top level."""
    from steerlab.analysis.concepts import is_dev

    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    path.write_text(text.replace("[quick]", COMPARE + "\n[quick]"))
    write_scales(study_dir)
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", "methods.actdiff.layer_sweep=[]"]) == 0
    results = json.loads((next(out.iterdir()) / "results.json").read_text())
    test = [r["scores"] for r in results["methods"]["base"]["records"] if not is_dev(r["prompt"], 0.5)]
    by_hand = lambda v, cuts, up: sum((v > c) if up else (v < c) for c in cuts)  # noqa: E731
    instruction = np.mean([by_hand(s["relevance"], (0.2, 0.4), True) for s in test])
    fluency = np.mean([min(by_hand(np.log(s["perplexity"]), (np.log(8.0), np.log(4.0)), False), by_hand(s["distinct3"], (0.4, 0.7), True))
                       for s in test])
    row = next(r for r in results["concepts"]["rows"] if (r["method"], r["concept"]) == ("base", "cats"))
    assert row["instruction"] == pytest.approx(instruction) and row["fluency"] == pytest.approx(fluency)
    assert row["instruction"] < 2.0 and max(s["relevance"] for s in test) < 0.4  # byte soup does not address the request
    assert results["concepts"]["scales"]["instruction"] == [{"feature": "relevance", "cuts": [0.2, 0.4]}]


def test_a_compare_study_without_scales_is_refused_naming_the_file_and_key(study_dir, capsys):
    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    path.write_text(text.replace("[quick]", COMPARE.replace('scales = "data/scales.json"\n', "") + "\n[quick]"))
    assert main(["run", str(path), "--out", str(study_dir / "runs")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "[compare] key 'scales'" in err and "compare-scales" in err
    path.write_text(text.replace("[quick]", COMPARE + "\n[quick]"))
    (study_dir / "data" / "scales.json").unlink()  # named, but not written
    assert main(["run", str(path), "--out", str(study_dir / "runs")]) == 2
    err = capsys.readouterr().err
    assert "key 'scales'" in err and "scales.json" in err and "not found" in err


def test_scales_calibrated_under_another_model_are_refused(study_dir, capsys):
    import dataclasses

    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    path.write_text(text.replace("[quick]", COMPARE + "\n[quick]"))
    (study_dir / "data" / "scales.json").write_text(json.dumps(dataclasses.replace(SCALES, model="smollm2-135m-instruct").to_json()))
    assert main(["run", str(path), "--out", str(study_dir / "runs")]) == 2
    err = capsys.readouterr().err
    assert "key 'scales'" in err and "'smollm2-135m-instruct'" in err and "--model tiny-llama" in err


def test_recomparing_a_run_whose_scales_are_gone_says_which_file_is_missing(study_dir, capsys):
    path = study_dir / "tiny.toml"
    text = path.read_text().replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "fluency", "relevance", "judge"]')
    path.write_text(text.replace("[quick]", COMPARE + "\n[quick]").replace("[methods.actdiff]\n", "[methods.actdiff]\nconcept = \"cats\"\n"))
    write_scales(study_dir)
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--quick", "--set", "methods.actdiff.layer_sweep=[]"]) == 0
    (study_dir / "data" / "scales.json").unlink()
    capsys.readouterr()
    assert main(["compare", str(next(out.iterdir()))]) == 2
    err = capsys.readouterr().err
    assert "key 'scales'" in err and "scales.json" in err and "not found" in err


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
    write_scales(study_dir)
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


def test_a_missing_score_counts_as_zero_and_zeroes_the_harmonic_mean():
    """AxBench's rule: the harmonic mean is 0 when any of concept / instruction / fluency is 0,
    and a score the answer lacks (no relevance) is 0, not skipped."""
    s = answer_scores(record(**{"judge.cats": 1.0, "perplexity": 2.0, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert s["instruction"] == 0.0 and s["fluency"] == 2.0 and s["harmonic"] == 0.0
    no_fluency = answer_scores(record(**{"judge.cats": 1.0, "relevance": 0.5, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert no_fluency["fluency"] == 0.0 and no_fluency["harmonic"] == 0.0  # no perplexity: log-perplexity level 0
    assert s["instruction"] == 0.0 and s["concept_score"] == 2.0 and s["fluency"] == 2.0 and s["harmonic"] == 0.0
    off_concept = answer_scores(record(**{"judge.cats": 0.0, "relevance": 0.5, "perplexity": 2.0, "distinct3": 0.9}), "cats", "judge.cats", REF)
    assert off_concept["harmonic"] == 0.0


# ---- who wins a concept: the candidate chosen on dev, the verdict read from paired test intervals ----

def harmonic_rows(dev: dict[str, float], test: dict[str, np.ndarray], kinds: dict[str, str] | None = None):
    """Rows and test cubes of one concept: each method's dev harmonic mean, and its per-request test harmonic means."""
    from steerlab import stats

    cubes, rows = {}, []
    for name, values in test.items():
        cube = np.zeros((1, len(values), 1, 4))
        cube[0, :, 0, 3] = values
        cubes[(name, "cats")] = stats.Cube(cube)
        rows.append({"method": name, "kind": (kinds or {}).get(name, "actdiff"), "concept": "cats", "dev_harmonic": dev[name],
                     "harmonic": float(values.mean()), "harmonic_interval": [0.0, 2.0]})
    return rows, cubes


def test_the_winner_is_the_dev_candidate_and_its_verdict_follows_the_paired_interval():
    from steerlab.analysis.concepts import winners
    from steerlab.analysis.evidence import Design

    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, size=40)
    design = Design.over([f"r{i}" for i in range(40)], [0])
    noisy = base + 0.15 + np.tile([1.0, -1.0], 20)  # 0.15 higher on average, by +1.15 or -0.85 request by request
    rows, cubes = harmonic_rows({"a": 1.3, "b": 1.2}, {"a": noisy, "b": base})
    win = winners(rows, cubes, design)["cats"]
    difference = win["versus"]["b"]["difference"]
    assert win["method"] == "a" and difference["value"] == pytest.approx(0.15) and difference["interval"][0] < 0
    assert win["verdict"] == "not distinguishable from `b`"
    rows, cubes = harmonic_rows({"a": 1.3, "b": 1.2}, {"a": base + 0.15, "b": base})
    assert winners(rows, cubes, design)["cats"]["verdict"] == "better than every other method"
    rows, cubes = harmonic_rows({"a": 1.3, "b": 1.2}, {"a": base - 0.3, "b": base})
    assert winners(rows, cubes, design)["cats"]["verdict"] == "worse than `b`"


def test_the_winner_and_the_prompting_comparison_are_chosen_on_dev_not_on_test():
    from steerlab.analysis.concepts import winners
    from steerlab.analysis.evidence import Design

    design = Design.over([f"r{i}" for i in range(30)], [0])
    flat = np.linspace(0.5, 1.5, 30)
    kinds = {"prompt": "prompting", "vec_a": "actdiff", "vec_b": "iav"}
    rows, cubes = harmonic_rows({"prompt": 1.0, "vec_a": 1.4, "vec_b": 1.1}, {"prompt": flat, "vec_a": flat - 0.2, "vec_b": flat + 0.4}, kinds)
    win = winners(rows, cubes, design)["cats"]
    assert win["method"] == "vec_a"  # vec_b is higher on test: test does not choose
    assert win["prompting"]["steering"] == "vec_a" and win["prompting"]["comparison"]["verdict"] == "better"
    rows, cubes = harmonic_rows({"prompt": 1.0, "vec_a": 1.4, "vec_b": 1.1}, {"prompt": flat, "vec_a": flat + 0.5, "vec_b": flat - 0.5}, kinds)
    assert winners(rows, cubes, design)["cats"]["method"] == "vec_a"


def test_the_prompting_line_names_where_prompting_wins_from_the_paired_verdicts():
    from steerlab.analysis.concepts import prompting_line

    read = lambda verdict: {"prompting": {"comparison": {"verdict": verdict}}}  # noqa: E731
    line = prompting_line({"helpful": read("better"), "humorous": read("not distinguishable"), "philosophical": read("worse"), "concise": {}})
    assert "better on helpful;" in line and "worse on philosophical;" in line and "not distinguishable on humorous." in line
    assert "better on none;" in prompting_line({"humorous": read("worse")})
    assert "no concept" in prompting_line({"concise": {}})


def test_each_training_seed_is_reported_at_the_control_its_own_dev_answers_chose():
    """A fanned-out run's pieces choose their test control on their own seed's dev answers
    (ChosenOnDev), so two seeds can generate the test requests at different strengths. The table
    must read each seed at its own choice: a choice pooled over seeds named a control one seed
    never generated on test, and the row's interval came out undefined (compare on the H200,
    2026-12-04)."""
    from steerlab.analysis.concepts import choose_per_seed, control_text, is_dev, score_cube
    from steerlab.analysis.evidence import Design
    from steerlab.results import MethodResult

    prompts = [f"request {i}" for i in range(40)]
    dev = [p for p in prompts if is_dev(p, 0.5)]
    test = [p for p in prompts if not is_dev(p, 0.5)]
    good = {"judge.cats": 0.9, "relevance": 0.5, "perplexity": 2.0, "distinct3": 0.9}
    weak = {**good, "judge.cats": 0.2}
    favourite = {0: "+1", 1: "+2"}  # seed 0 does best at +1 on dev, seed 1 at +2
    records = [Record(p, 0.0, label, "text", good if label == favourite[seed] else weak, seed)
               for seed in (0, 1) for p in dev for label in ("+1", "+2")]
    records += [Record(p, 0.0, favourite[seed], "text", good, seed) for seed in (0, 1) for p in test]  # test: the chosen control only
    method = MethodResult("vec", "actdiff", {}, {}, [], records, seeds=[0, 1])
    scored = [(r, answer_scores(r, "cats", "judge.cats", REF)) for r in records]
    chosen = choose_per_seed(method, ["+1", "+2"], scored, 0.5)
    assert chosen == favourite and control_text(chosen) == "+1 (seed 0) / +2 (seed 1)"
    cube = score_cube(Design.over(test, [0, 1]), method, chosen, "cats", "judge.cats", REF)
    assert cube.values.shape == (2, len(test), 1, 4) and np.isfinite(cube.values).all()
    assert cube.values[..., 3] == pytest.approx(3 / (1 / 1.8 + 1 / 2 + 1 / 2))  # concept 1.8, instruction and fluency 2
    one_seed = MethodResult("vec", "actdiff", {}, {}, [], [r for r in records if r.seed == 0], seeds=[0])
    single = choose_per_seed(one_seed, ["+1", "+2"], [(r, s) for r, s in scored if r.seed == 0], 0.5)
    assert single == {None: "+1"} and control_text(single) == "+1"

"""Judges a reader can weigh: the likelihood judge on another (base) model, two of them in one
study, and the core ``judges`` report (held-out accuracy with a Wilson interval, agreement with
Cohen's kappa, judges not shown above chance left out of every table)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from conftest import write_jsonl
from steerlab.analysis.judges import Judge, agreement, is_hidden, judges_section, wilson
from steerlab.errors import ConfigError
from steerlab.results import MethodResult, Record, RunResults, Section

STYLES = {"kind": {"system": "Be kind and warm."}, "terse": {"system": "zzzz zzzz zzzz"}}


def test_the_wilson_interval_is_the_textbook_one_and_stays_inside_zero_and_one():
    low, high = wilson(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # Wilson (1927), z = 1.96
    assert wilson(0, 12)[0] == pytest.approx(0.0, abs=1e-12) and wilson(12, 12)[1] == pytest.approx(1.0)
    assert 0.7 < wilson(12, 12)[0] < 1.0
    assert all(math.isnan(v) for v in wilson(0, 0))


def judge_section(prefix: str, n: int, correct: int, chance: float = 0.5) -> Section:
    return Section(data={"judge": {"prefix": prefix, "classes": ["kind", "terse"], "model": "m", "n": n, "correct": correct, "chance": chance}})


def records(leads: list[tuple[str, str]]) -> list[Record]:
    """One answer per pair: judge ``lm`` leads with the first class, ``lm_b`` with the second."""
    score = lambda lead: {"kind": 0.8, "terse": 0.2} if lead == "kind" else {"kind": 0.3, "terse": 0.7}  # noqa: E731
    return [Record(f"p{i}", 0.0, "+0", "text", {**{f"lm.{k}": v for k, v in score(a).items()},
                                                **{f"lm_b.{k}": v for k, v in score(b).items()}}) for i, (a, b) in enumerate(leads)]


def run_with(leads: list[tuple[str, str]], sections: dict[str, Section]) -> RunResults:
    method = MethodResult("base", "base", {}, {}, [], records(leads))
    return RunResults({"name": "t"}, {"base": method}, sections)


def test_a_judge_not_shown_above_chance_is_hidden_and_agreement_is_share_and_kappa():
    leads = [("kind", "kind")] * 6 + [("terse", "terse")] * 3 + [("kind", "terse")] * 3
    results = run_with(leads, {"lm_judge": judge_section("lm", 40, 36), "lm_b_judge": judge_section("lm_b", 40, 22)})
    section = judges_section(results)
    assert section.data["hidden"] == ["lm_b"]  # 22/40 = 0.55 [0.40, 0.69]: not above chance 0.5
    assert section.data["judges"]["lm_judge"]["usable"] and not section.data["judges"]["lm_b_judge"]["usable"]
    agreed = section.data["agreement"][0]
    first, second = [a for a, _ in leads], [b for _, b in leads]
    assert agreed["n"] == 12 and agreed["share"] == pytest.approx(9 / 12)
    assert agreed["kappa"] == pytest.approx(cohen_kappa_score(first, second))
    assert "**no** (not shown above chance" in section.markdown and "`lm_b.*`" in section.markdown
    assert is_hidden("lm_b.kind@+0.4", {"lm_b"}) and not is_hidden("lm.kind", {"lm_b"}) and not is_hidden("judge_agreement", {"judge"})
    assert judges_section(run_with(leads, {})) is None  # no judge, no section


def test_agreement_counts_only_answers_both_judges_scored():
    results = run_with([("kind", "terse")] * 4, {})
    results.methods["base"].records[0].scores.pop("lm_b.kind")
    a = Judge("lm_judge", "lm", ["kind", "terse"], "m", 10, 9, 0.5)
    b = Judge("b", "lm_b", ["kind", "terse"], "m", 10, 9, 0.5)
    assert (agreement(results, a, b).n, agreement(results, a, b).agree) == (3, 0)


def test_agreement_on_steered_answers_leaves_out_the_base_entry_and_control_zero():
    """The base entry agrees everywhere, a steered method's control 0 agrees, its control 1 never does:
    over all answers the judges look fairly aligned, over the steered ones they never agree."""
    results = run_with([("kind", "kind")] * 4, {"lm_judge": judge_section("lm", 40, 36), "lm_b_judge": judge_section("lm_b", 40, 36)})
    unsteered, disagree = records([("terse", "terse")] * 2), records([("kind", "terse")] * 3)
    results.methods["actdiff"] = MethodResult("actdiff", "actdiff", {}, {}, [], [
        Record(r.prompt, 0.0, "+0", r.output, r.scores) for r in unsteered] + [
        Record(r.prompt, 1.0, "+1", r.output, r.scores) for r in disagree])
    a = Judge("lm_judge", "lm", ["kind", "terse"], "m", 10, 9, 0.5)
    b = Judge("lm_b_judge", "lm_b", ["kind", "terse"], "m", 10, 9, 0.5)
    everything, steered = agreement(results, a, b), agreement(results, a, b, steered_only=True)
    assert (everything.n, everything.agree) == (9, 6) and (steered.n, steered.agree) == (3, 0)
    (pair,) = judges_section(results).data["agreement"]
    assert pair["n"] == 9 and pair["steered"]["n"] == 3 and pair["steered"]["share"] == 0.0


def test_a_base_model_judge_reads_the_plain_frame_and_scores_the_answer_after_a_space(registry, tmp_path, monkeypatch):
    from steerlab.metrics import likelihood
    from steerlab.model.zoo import load_model

    gemma = load_model("tiny-gemma3", registry.models, device="cpu")
    assert not gemma.has_chat_template
    seen, real = [], likelihood.batched_sequence_logprobs

    def capture(model, rows, batch_size):
        seen.extend(rows)
        return real(model, rows, batch_size)

    monkeypatch.setattr(likelihood, "batched_sequence_logprobs", capture)
    probs = likelihood.posteriors(gemma, {k: v["system"] for k, v in STYLES.items()}, ["Why?"], ["zzzz"], 4)
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1.0)
    context, target = (gemma.tokenizer.decode(ids) for ids in seen[0])
    assert context.endswith("Be kind and warm.\n\nQuestion: Why?\nAnswer:") and target == " zzzz"


STUDY = """
[study]
name = "judges"
model = "tiny-llama"
seed = 0

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 6
batch_size = 4

[metrics]
use = ["length", "lm_judge", "lm_judge_gemma"]

[metrics.lm_judge]
styles = "data/lm_styles.json"
data = "data/lm_judge.jsonl"

[metrics.lm_judge_gemma]
metric = "lm_judge"
model = "tiny-gemma3"
tag = "gemma"
styles = "data/lm_styles.json"
data = "data/lm_judge.jsonl"

[methods.actdiff]
pairs = "data/pairs.jsonl"
layer = 1
controls = [-1.0, 0.0, 1.0]
"""


def judged_study(study_dir: Path, text: str = STUDY) -> Path:
    (study_dir / "data" / "lm_styles.json").write_text(json.dumps(STYLES))
    write_jsonl(study_dir / "data" / "lm_judge.jsonl", [{"text": t, "label": label, "prompt": "Why?"}
                                                        for label, t in [("kind", "Gladly! Here you go."), ("terse", "zzzz zzzz"),
                                                                         ("kind", "Happy to help."), ("terse", "zzzz")]])
    path = study_dir / "judges.toml"
    path.write_text(text)
    return path


def test_two_likelihood_judges_run_in_one_study_and_the_judges_report_weighs_them(study_dir):
    from steerlab.cli import main

    path = judged_study(study_dir)
    assert main(["run", str(path), "--out", str(study_dir / "runs"), "--no-progress"]) == 0
    run_dir = sorted((study_dir / "runs").iterdir(), key=os.path.getmtime)[-1]
    results = json.loads((run_dir / "results.json").read_text())
    record = results["methods"]["actdiff"]["records"][0]
    assert {"lm.kind", "lm.terse", "lm_gemma.kind", "lm_gemma.terse"} <= set(record["scores"])
    assert results["metrics"]["lm_judge_gemma"]["data"]["judge"]["model"] == "tiny-gemma3"
    judges = results["reports"]["judges"]["data"]
    assert set(judges["judges"]) == {"lm_judge", "lm_judge_gemma"} and judges["judges"]["lm_judge"]["n"] == 4
    leads = [[max(("kind", "terse"), key=lambda c: r["scores"][f"{p}.{c}"]) for r in results["methods"]["actdiff"]["records"]]
             for p in ("lm", "lm_gemma")]
    (pair,) = judges["agreement"]
    assert pair["n"] == len(leads[0]) and pair["share"] == pytest.approx(sum(a == b for a, b in zip(*leads)) / len(leads[0]))
    report = (run_dir / "report.md").read_text()
    assert "## Report `judges`" in report
    method_part = report.split("## Method `actdiff`")[1]
    for judge in judges["judges"].values():  # a judge not shown above chance appears in no table of the report
        assert (f"| {judge['prefix']}.kind" in method_part) == judge["usable"]


@pytest.mark.parametrize("change, bad, message", [
    ('tag = "gemma"', 'tag = "Gem-ma"', r"judges.toml: \[metrics.lm_judge_gemma\].*'tag'"),
    ('metric = "lm_judge"', "metric = 3", r"judges.toml: \[metrics.lm_judge_gemma\] key 'metric'"),
    ('metric = "lm_judge"', 'metric = "lm_judgy"', r"lm_judgy"),
    ('tag = "gemma"', 'tag = "gemma"\ntruth = "data/missing.jsonl"', r"missing.jsonl"),
])
def test_bad_judge_keys_are_config_errors_naming_file_table_and_key(study_dir, registry, change, bad, message):
    from steerlab.study.loader import load_study

    path = judged_study(study_dir, STUDY.replace(change, bad))
    with pytest.raises(ConfigError, match=message):
        load_study(path, registry)

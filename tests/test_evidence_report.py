"""The Pareto comparison end to end on a tiny model with two training seeds: intervals and
verdicts in results.json, every verdict in agreement with its interval, every interval the
report prints equal to results.json's, and the same seeds giving the same intervals twice."""

import json
import os
import re
from pathlib import Path

import pytest

from steerlab.cli import main
from steerlab.figures import fmt
from tests.conftest import write_jsonl

STUDY = """
[study]
name = "front"
model = "tiny-llama"
seeds = [0, 1]

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 5
batch_size = 8

[metrics]
use = ["length", "fluency", "judge"]

[metrics.judge]
data = "data/judge.jsonl"

[pareto]
axes = ["judge.cats", "judge.banks"]
anchor = "panacea"

[methods.panacea]
data = "data/sft2.jsonl"
dimensions = ["cats", "banks"]
rank = 2
per_dimension = 1
max_tokens = 48
lr = 0.05
steps = 2
grid_step = 0.5

[methods.prompting]
styles = "data/styles2.json"
dimensions = ["cats", "banks"]
grid_step = 0.5

[methods.base]
"""


@pytest.fixture(scope="module")
def front_runs(tmp_path_factory) -> tuple[Path, Path]:
    from tests.conftest import make_study

    folder = make_study(tmp_path_factory.mktemp("front"))
    write_jsonl(folder / "data/eval.jsonl", [{"text": t} for t in ["Why is the sky blue?", "Name a fruit.", "Hello!", "What is a bank?",
                                                                  "Tell me about cats.", "How do loans work?"]])
    write_jsonl(folder / "data/sft2.jsonl", [{"prompt": p, "style": s, "response": f"{r} {p.lower()}"} for p in ["Why?", "How so?", "What now?"]
                                             for s, r in (("cats", "Cats nap and purr:"), ("banks", "Banks lend money:"))])
    (folder / "data/styles2.json").write_text(json.dumps({"cats": {"describe": "about cats"}, "banks": {"describe": "about banks"}}))
    (folder / "front.toml").write_text(STUDY)
    runs = []
    for out in ("one", "two"):
        assert main(["run", str(folder / "front.toml"), "--out", str(folder / out), "--no-progress"]) == 0
        runs.append(sorted((folder / out).iterdir(), key=os.path.getmtime)[-1])
    return runs[0], runs[1]


def test_the_comparison_carries_intervals_n_and_a_verdict_for_every_measure(front_runs):
    results = json.loads((front_runs[0] / "results.json").read_text())
    block = results["comparison"]
    assert block["design"]["seeds"] == [0, 1] and block["design"]["prompts"] == 6
    panacea = results["methods"]["panacea"]
    assert panacea["n"] == {"prompts": 6, "seeds": 2} and results["methods"]["base"]["n"]["seeds"] == 1
    for measure in ("hypervolume", "lambda_alignment", "gap.cats", "gap.banks", "log_loss", "log_loss_median", "degenerate", "words"):
        assert len(panacea["intervals"][measure]) == 2, measure
    tests = block["versus"]["prompting"]["tests"]
    assert set(tests) == {"hypervolume", "lambda_alignment", "gap.cats", "gap.banks"}
    assert "ratio" in tests["hypervolume"] and tests["hypervolume"]["difference"]["n_prompts"] == 6
    assert {"log_loss", "degenerate", "distinct3", "words"} <= set(block["answers"]["base"])


def test_no_verdict_in_results_disagrees_with_its_interval(front_runs):
    block = json.loads((front_runs[0] / "results.json").read_text())["comparison"]
    tests = [t for v in block["versus"].values() for t in v.get("tests", {}).values()] + \
            [t for answers in block["answers"].values() for t in answers.values()]
    assert tests
    for t in tests:
        low, high = t["difference"]["interval"]
        if low is None or high is None:
            assert t["verdict"] == "undefined"
        elif low <= 0 <= high:
            assert t["verdict"] == "not distinguishable"
        else:
            up = {True: "better", False: "worse", None: "higher"}[t["higher_is_better"]]
            down = {True: "worse", False: "better", None: "lower"}[t["higher_is_better"]]
            assert t["verdict"] == (up if low > 0 else down)


def test_the_same_seeds_give_the_same_intervals_twice(front_runs):
    one, two = (json.loads((run / "results.json").read_text()) for run in front_runs)
    assert one["comparison"]["versus"] == two["comparison"]["versus"]
    assert one["comparison"]["answers"] == two["comparison"]["answers"]
    assert {n: m["intervals"] for n, m in one["methods"].items()} == {n: m["intervals"] for n, m in two["methods"].items()}


def test_every_interval_the_report_prints_is_the_one_in_results_json(front_runs):
    results = json.loads((front_runs[0] / "results.json").read_text())
    report = (front_runs[0] / "report.md").read_text()
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] in results["methods"]:
            rows.setdefault(cells[0], []).append(cells)
    front = report.split("## Comparison", 1)[1]
    header = next(line for line in front.splitlines() if line.startswith("| method | hypervolume"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    checked = 0
    for name, method in results["methods"].items():
        cells = next(r for r in rows[name] if len(r) == len(columns))
        for column, cell in zip(columns[1:], cells[1:]):
            interval = method["intervals"].get(column)
            value = method["summary"][column]
            expected = fmt(float("nan") if value is None else value)
            if interval:
                expected += f" [{fmt(float('nan') if interval[0] is None else interval[0])}, {fmt(float('nan') if interval[1] is None else interval[1])}]"
                checked += 1
            assert cell == expected, (name, column)
    assert checked >= 6
    for other, v in results["comparison"]["versus"].items():
        diff = v["tests"]["hypervolume"]["difference"]
        assert re.search(rf"\| {other} \|.*\| {re.escape(fmt(diff['value']))} \[{re.escape(fmt(diff['interval'][0]))}, "
                         rf"{re.escape(fmt(diff['interval'][1]))}\] \| {v['tests']['hypervolume']['verdict']} \|", report), other

"""The winning setting of a study that picks one ([pareto] candidates): read from the paired
hypervolume intervals against the anchor on every judge, built here from records (no model)."""

from types import SimpleNamespace

import numpy as np
import pytest

from steerlab.analysis.evidence import Design, front_evidence
from steerlab.analysis.pick import pick_setting
from steerlab.errors import ConfigError
from steerlab.results import MethodResult, Record, RunResults, SweepPoint
from steerlab.study.loader import _check_candidates
from steerlab.study.schema import DataSettings, ParetoSettings

PROMPTS = [f"request {i}" for i in range(40)]
CORNERS = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
JUDGE, LM = ["judge.a", "judge.b", "judge.c"], ["lm.a", "lm.b", "lm.c"]
DIFFICULTY = np.random.default_rng(0).uniform(-0.1, 0.1, size=len(PROMPTS))  # shared by every method: what pairing removes


def method(name: str, judge_corner: float, lm_corner: float, noise: float = 0.0, seed: int = 1) -> MethodResult:
    """At each corner control, its own style scores ``*_corner`` and the others 0.2, plus each
    prompt's shared difficulty and (``noise``) the method's own noise, per answer."""
    rng = np.random.default_rng(seed)
    records, points = [], []
    for k, corner in enumerate(CORNERS):
        label, mine = f"corner{k}", []
        for p, prompt in enumerate(PROMPTS):
            scores = {}
            for axes, level in ((JUDGE, judge_corner), (LM, lm_corner)):
                for i, axis in enumerate(axes):
                    scores[axis] = (level if i == k else 0.2) + DIFFICULTY[p] + (rng.normal(0, noise) if i == k else 0.0)
            mine.append(Record(prompt, list(corner), label, "", scores, 0))
        records += mine
        points.append(SweepPoint.from_records(list(corner), label, mine))
    return MethodResult(name, "panacea", {}, {}, points, records, seeds=[0])


def comparison(**methods: MethodResult) -> dict:
    """The comparison block ``steerlab.analysis.compare`` writes, its front tests from the records."""
    results = RunResults({"seed": 0}, {"soups": method("soups", 0.6, 0.6, seed=0), **methods})
    design, coords = Design.of(results), {n: CORNERS for n in results.methods}
    block = {"anchor": "soups", "axes": JUDGE, "tag": "", "versus": {n: {} for n in methods}}
    block["also"] = {"anchor": "soups", "axes": LM, "tag": "lm", "versus": {n: {} for n in methods}}
    for target, axes, key in ((block, JUDGE, lambda m: m), (block["also"], LM, lambda m: f"{m}[lm]")):
        for other, tests in front_evidence(results, design, coords, axes, "soups", key).tests.items():
            target["versus"][other]["tests"] = tests
    return block


def test_the_winner_is_better_on_one_judge_and_worse_on_none_not_the_highest_point_on_one():
    """`lopsided` has the highest hypervolume by the first judge, which the old rule picked, and
    the lowest by the second; `sharp` is better by the first and not distinguishable by the second."""
    block = comparison(sharp=method("sharp", 0.7, 0.6, noise=0.05, seed=2), lopsided=method("lopsided", 0.8, 0.4, seed=3))
    pick = pick_setting(block, ["sharp", "lopsided"])
    lopsided, sharp = pick["candidates"]["lopsided"], pick["candidates"]["sharp"]
    assert lopsided["judge"]["difference"]["value"] > sharp["judge"]["difference"]["value"] > 0
    assert (lopsided["judge"]["verdict"], lopsided["lm"]["verdict"]) == ("better", "worse")
    assert (sharp["judge"]["verdict"], sharp["lm"]["verdict"]) == ("better", "not distinguishable")
    assert pick["qualifies"] == {"sharp": True, "lopsided": False} and pick["winner"] == "sharp"


def test_a_higher_point_whose_interval_holds_zero_wins_nothing():
    block = comparison(noisy=method("noisy", 0.62, 0.6, noise=0.3, seed=4))
    pick = pick_setting(block, ["noisy"])
    judged = pick["candidates"]["noisy"]["judge"]
    low, high = judged["difference"]["interval"]
    assert judged["difference"]["value"] > 0 and low < 0 < high and judged["verdict"] == "not distinguishable"
    assert pick["winner"] is None and "no winner" in pick["reason"]


def test_the_candidate_difference_is_the_anchors_test_turned_round():
    block = comparison(sharp=method("sharp", 0.7, 0.6, seed=2))
    stored = block["versus"]["sharp"]["tests"]["hypervolume"]
    turned = pick_setting(block, ["sharp"])["candidates"]["sharp"]["judge"]
    assert turned["difference"]["value"] == pytest.approx(-stored["difference"]["value"])
    assert turned["difference"]["interval"] == pytest.approx([-stored["difference"]["interval"][1], -stored["difference"]["interval"][0]])
    assert stored["verdict"] == "worse" and turned["verdict"] == "better"


@pytest.mark.parametrize("split", ["all", "test"])
def test_a_pick_is_refused_unless_the_study_runs_on_the_dev_prompts_only(tmp_path, split):
    pareto = ParetoSettings(axes=JUDGE, anchor="soups", candidates=["sharp"])
    methods = [SimpleNamespace(name="soups"), SimpleNamespace(name="sharp")]
    with pytest.raises(ConfigError, match="chosen on the dev prompts only"):
        _check_candidates(tmp_path / "s.toml", pareto, DataSettings(eval="e.jsonl", split=split), methods)
    _check_candidates(tmp_path / "s.toml", pareto, DataSettings(eval="e.jsonl", split="dev"), methods)
    with pytest.raises(ConfigError, match="no method 'nope'"):
        _check_candidates(tmp_path / "s.toml", ParetoSettings(axes=JUDGE, anchor="soups", candidates=["nope"]),
                          DataSettings(eval="e.jsonl", split="dev"), methods)


def test_the_report_gives_every_difference_with_its_interval_and_names_the_winner():
    from steerlab.run.report import pick_section

    block = comparison(sharp=method("sharp", 0.7, 0.6, noise=0.05, seed=2), lopsided=method("lopsided", 0.8, 0.4, seed=3))
    text = "\n".join(pick_section({**pick_setting(block, ["sharp", "lopsided"]), "split": "dev", "prompts": 40}))
    assert "| candidate | HV minus `soups` (judge) | HV minus `soups` (lm) | qualifies |" in text
    assert "| `lopsided` | 0." in text and "(better) |" in text and "(worse) | no |" in text
    assert "Winner: **`sharp`**" in text and "split `dev`" in text

"""A study that picks a winning setting (``[pareto] candidates``), read from intervals on every judge.

An ablation runs candidate settings beside an anchor (rewarded soups) on the dev prompts only
(``[data] split = "dev"``; the loader refuses a pick on any other split), and the setting it picks
is then reported by another study on the test prompts. The old rule took the highest hypervolume
by one judge, a point estimate: it picked the entry with the lowest hypervolume by the other
judge, and differences no interval could tell apart. The rule here reads, for each candidate and
each judge's axes, the paired difference candidate - anchor of the hypervolume (same prompts,
same draws; ``steerlab.analysis.evidence``):

* a candidate **qualifies** when it is better than the anchor on at least one judge and worse on
  none (its verdict on each is better / worse / not distinguishable, read from the interval);
* among those that qualify, the winner is the one whose worst judge is best: the highest smallest
  lower bound of the difference over the judges (the setting most surely ahead everywhere);
* when none qualifies there is no winner, and the report says so: the study's setting stays.
"""

from __future__ import annotations

import math
from typing import Any

FLIP = {"better": "worse", "worse": "better"}


def judge_blocks(comparison: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(judge tag, comparison block) for the main axes and for ``also`` (a second judge)."""
    blocks = [comparison] + ([comparison["also"]] if comparison.get("also") else [])
    return [(b.get("tag") or b["axes"][0].split(".")[0], b) for b in blocks]


def candidate_versus_anchor(block: dict[str, Any], candidate: str) -> dict[str, Any] | None:
    """Candidate - anchor on this block's hypervolume: the stored test is anchor - candidate, so
    the difference and its interval are negated and the verdict turned round."""
    tests = block.get("versus", {}).get(candidate, {}).get("tests", {})
    test = next((t for key, t in tests.items() if key.split("[")[0] == "hypervolume"), None)
    if test is None:
        return None
    d = test["difference"]
    low, high = d["interval"]
    negate = lambda v: -v if v is not None else None  # noqa: E731
    return {"difference": {**d, "value": negate(d["value"]), "interval": [negate(high), negate(low)]},
            "verdict": FLIP.get(test["verdict"], test["verdict"])}


def pick_setting(comparison: dict[str, Any], candidates: list[str]) -> dict[str, Any]:
    """The pick block: each candidate's paired hypervolume difference with the anchor per judge,
    whether it qualifies, the winner (or None) and a sentence saying why."""
    anchor = comparison["anchor"]
    table = {c: {tag: candidate_versus_anchor(block, c) for tag, block in judge_blocks(comparison)} for c in candidates}
    qualifies = {c: _qualifies(per_judge) for c, per_judge in table.items()}
    ready = [c for c in candidates if qualifies[c]]
    winner = max(ready, key=lambda c: _worst_low(table[c])) if ready else None
    judges = [tag for tag, _ in judge_blocks(comparison)]
    reason = (f"`{winner}` is better than `{anchor}` on {_named(table[winner], 'better')} and worse on none; of those that "
              f"qualify ({', '.join(f'`{c}`' for c in ready)}), its smallest lower bound over the judges is highest" if winner else
              f"no candidate is better than `{anchor}` on any judge's hypervolume without being worse on another: no winner, "
              "the setting in use stays")
    return {"anchor": anchor, "judges": judges, "candidates": table, "qualifies": qualifies, "winner": winner, "reason": reason}


def _qualifies(per_judge: dict[str, dict[str, Any] | None]) -> bool:
    verdicts = [t["verdict"] for t in per_judge.values() if t is not None]
    return len(verdicts) == len(per_judge) and "better" in verdicts and "worse" not in verdicts


def _worst_low(per_judge: dict[str, dict[str, Any] | None]) -> float:
    lows = [t["difference"]["interval"][0] for t in per_judge.values() if t is not None]
    return min((v for v in lows if v is not None), default=-math.inf)


def _named(per_judge: dict[str, dict[str, Any] | None], verdict: str) -> str:
    return ", ".join(tag for tag, t in per_judge.items() if t is not None and t["verdict"] == verdict)

"""What the IAV report checks before it compares anything: the headroom, the judges against
chance, GenARM's reward model against its required held-out pair accuracy, and the cost ratio
from the interleaved benchmark. Each is a small function over a run's results (or, for the
headroom, over a run folder that holds only the unsteered answers: ``early_headroom``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.api import in_dev_half, read_json, wilson_interval

# Which judge metric writes which score prefix: lm_judge -> lm.chosen, judge -> judge.chosen.
JUDGE_PREFIX = {"lm_judge": "lm", "judge": "judge"}
HEADROOM_MAX = 0.5
COST_FILE = "iav_cost.json"


@dataclass(frozen=True)
class Share:
    """A proportion with its 95% Wilson interval and n."""

    value: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, hits: int, n: int) -> "Share":
        low, high = wilson_interval(hits, n)
        return cls(hits / n if n else math.nan, low, high, n)

    def text(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n {self.n})"

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "interval": [self.low, self.high], "n": self.n}


def headroom(records: list[Any], prefix: str) -> Share | None:
    """The share of unsteered answers to the **test** prompts that the judge ``prefix`` already
    counts as the target (``PREFIX.chosen`` > 0.5); None when it scored none. ``records``: the
    unsteered method's, as objects (``.prompt``, ``.scores``) or JSON dicts."""
    scores = [(_get(r, "prompt"), _get(r, "scores").get(f"{prefix}.chosen")) for r in records]
    test = [s for p, s in scores if s is not None and not in_dev_half(p)]
    return Share.of(sum(s > 0.5 for s in test), len(test)) if test else None


def _get(record: Any, key: str) -> Any:
    return record[key] if isinstance(record, dict) else getattr(record, key)


def early_headroom(run_dir: str | Path, entry: str = "base") -> dict[str, dict[str, float]]:
    """The headroom per judge from a run that has only swept the unsteered model so far
    (``steerlab run studies/iav.toml --only base``): read it before spending time on training.
    ``{"lm": {"value", "interval", "n", "ok"}, ...}``; ok: value <= 0.5."""
    paths = sorted((Path(run_dir) / "methods" / entry).glob("**/result.json"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no methods/{entry}/result.json (run the study with --only {entry} first)")
    records = [r for path in paths for r in read_json(path)["records"]]
    out = {}
    for prefix in JUDGE_PREFIX.values():
        share = headroom(records, prefix)
        if share is not None:
            out[prefix] = {**share.to_json(), "ok": share.value <= HEADROOM_MAX}
    return out


@dataclass(frozen=True)
class JudgeCheck:
    """A judge's accuracy on its held-out texts against chance; ``usable`` when the whole
    interval lies above chance (a judge that cannot be told apart from chance fills no table)."""

    metric: str
    accuracy: Share | None
    chance: float

    @property
    def usable(self) -> bool:
        return self.accuracy is None or self.accuracy.low > self.chance

    def text(self) -> str:
        if self.accuracy is None:
            return f"`{self.metric}`: no held-out accuracy in this run (not checked against chance)"
        verdict = "above chance: used" if self.usable else "not above chance: **not used for any table**"
        return f"`{self.metric}`: accuracy {self.accuracy.text()} against chance {self.chance:.3f}: {verdict}"


def judge_check(metric: str, section: Any) -> JudgeCheck:
    """From a metric's report section: its accuracy, n (the confusion matrix's total) and chance
    (the share of the commonest true label, 1 / classes when none is given)."""
    if section is None or "accuracy" not in section.summary:
        return JudgeCheck(metric, None, math.nan)
    confusion = section.data.get("confusion") or []
    n = int(sum(sum(row) for row in confusion))
    chance = section.summary.get("chance", max((sum(row) for row in confusion), default=0) / n if n else math.nan)
    if not n:
        return JudgeCheck(metric, None, chance)
    return JudgeCheck(metric, Share.of(round(section.summary["accuracy"] * n), n), float(chance))


def reward_accuracies(results: Any, layout: Any, name: str) -> list[float]:
    """GenARM's reward model held-out pair accuracy per training seed: each seed's analysis file
    when the run folder has them, else the method's summary (their mean over seeds)."""
    method = results.methods[name]
    found = []
    for seed in method.seeds if len(method.seeds) > 1 else []:
        path = layout.for_seed(seed).analysis(name)
        if path.is_file():
            found.append(float(read_json(path)["summary"].get("heldout_accuracy", math.nan)))
    return found or [float(method.summary.get("heldout_accuracy", math.nan))]


@dataclass(frozen=True)
class Cost:
    """IAV's per-token decode cost as a share of GenARM's, from the interleaved benchmark (each
    repeat times both in the same batch, so each repeat gives one paired ratio) or, without it,
    from the sweeps' throughput."""

    ratio: float
    low: float
    high: float
    source: str
    detail: dict[str, Any]

    def claim(self, goal: float) -> str:
        """supported when every repeat's ratio is <= goal, not supported when none is, else not distinguishable."""
        if not math.isfinite(self.ratio):
            return "undefined"
        if self.high <= goal:
            return "supported"
        return "not supported" if self.low > goal else "not distinguishable"


def read_cost(layout: Any, by_kind: dict[str, Any]) -> Cost:
    path = Path(layout.root) / COST_FILE
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        ratios = [r for batch in data["batches"].values() for r in batch["ratios"]]  # every batch size, every repeat
        worst = max(data["batches"].items(), key=lambda kv: kv[1]["ratio"])
        return Cost(worst[1]["ratio"], min(ratios), max(ratios), f"`{COST_FILE}` (benchmarks/iav_cost.py, interleaved; the batch "
                    f"size where IAV is relatively dearest, {worst[0]})", data)
    speed = {k: by_kind[k].cost.get("decode_tokens_per_s", math.nan) if k in by_kind else math.nan for k in ("iav", "genarm")}
    ratio = speed["genarm"] / speed["iav"] if speed["iav"] and speed["genarm"] else math.nan
    return Cost(ratio, ratio, ratio, "the sweeps' decode throughput (one timing each, not interleaved: run "
                f"benchmarks/iav_cost.py --json RUN/{COST_FILE})", {"decode_tokens_per_s": speed})


def heldout_curves(results: Any, layout: Any, names: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Held-out pair accuracy per check of each entry at each training seed (``NAME@SEED``), from
    each seed's analysis file when the run folder has them, else the entry's own analysis."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for name in names:
        method = results.methods[name]
        for seed in method.seeds or [None]:
            path = layout.for_seed(seed).analysis(name) if len(method.seeds) > 1 else None
            data = read_json(path).get("data", {}) if path is not None and path.is_file() else method.analysis.data
            points = [(int(s), float(a)) for s, a in data.get("heldout_accuracy", [])]
            if points:
                curves[f"{name}@{seed}" if len(method.seeds) > 1 else name] = points
    return curves

"""The study-level verdict of the IAV study: IAV's win rate against GenARM's, and at what ratio of
decoding cost (``[study] reports = ["iav"]``).

The goal the study tests (IAV's own claim): within 2 points of GenARM's win rate at <= 0.6x its
per-token cost. Win rate: the mean of ``lm.chosen.win`` (else ``judge.chosen.win``: the steered
answer judged more 'chosen' than the unsteered answer to the same request; a tie is 0.5).

Before any comparison the report checks what would make one meaningless (``checks.py``):

* **headroom**: the share of unsteered test answers the judge already counts as the target; a
  target the model already shows leaves nothing to win (the first study's courteous answers);
  it must be <= 0.5;
* **judges against chance**: a judge whose held-out accuracy interval (Wilson, 95%) does not lie
  above chance fills no table; the win rate is read from the first usable judge;
* **GenARM's reward model**: its held-out pair accuracy must reach ``require_heldout_accuracy``
  (every seed's); below it GenARM's decoding is not used, and the report says so and why.

Each method's alpha is chosen on the dev half of the prompts (``PromptSplit``: the best dev win
rate over the steered alphas), and its win rate is reported on the test half with a 95% interval.
The win-rate half of the goal reads the paired difference IAV - GenARM on the test prompts:
supported when its whole interval lies above -2 points, not supported when wholly below, not
distinguishable otherwise. The cost half reads ``RUN/iav_cost.json`` (``benchmarks/iav_cost.py
--json``, interleaved: a paired ratio per repeat) when the run folder holds it, else the sweeps'
throughput (flagged). The goal is met when both halves are (``all_of``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from steerlab.api import (Cube, Design, Estimate, Figure, RunLayout, Section, all_of, best_control, compare, estimate, hypothesis,
                          markdown_table, mean_over_controls, new_figure, plot_heldout_accuracy, save_figure, verdict)

from steerlab_plugins.iav.checks import (HEADROOM_MAX, JUDGE_PREFIX, Cost, JudgeCheck, Share, early_headroom, headroom, heldout_curves, judge_check,
                                         read_cost, reward_accuracies)

__all__ = ["IAVReport", "early_headroom"]

# The likelihood judge first when it is usable, else the MiniLM judge.
WIN_KEYS = {"lm.chosen.win": "the likelihood judge (`lm_judge`)", "judge.chosen.win": "the MiniLM judge (`judge`)"}
KEY_METRIC = {f"{prefix}.chosen.win": metric for metric, prefix in JUDGE_PREFIX.items()}
GOAL_POINTS, GOAL_COST = 0.02, 0.6
GOAL_WORDS = {"supported": "met", "not supported": "not met", "not distinguishable": "not distinguishable", "undefined": "not measured"}
# Beside the win rate, the cost in fluency at each chosen alpha: the share of distinct word trigrams in
# an answer (``fluency`` metric). A judge of style can be won by an answer that repeats one styled line
# until the token cap; this number shows it, with its interval, and the paired IAV - GenARM gap.
REPETITION_KEY = "distinct3"


def judge_prefix(key: str | None) -> str:
    """``lm.chosen.win`` -> ``lm``: the judge whose headroom goes with a win-rate key."""
    return key.split(".")[0] if key else ""


def scored_keys(results: Any) -> set[str]:
    return {key for m in results.methods.values() for p in m.points for key in p.scores}


def win_key(results: Any, judges: dict[str, JudgeCheck] | None = None) -> str | None:
    """The first of ``WIN_KEYS`` that some method's sweep scored and whose judge is usable."""
    judges = judges or {}
    scored = scored_keys(results)
    return next((k for k in WIN_KEYS if k in scored and (KEY_METRIC[k] not in judges or judges[KEY_METRIC[k]].usable)), None)


def candidates(method: Any) -> list[str]:
    """The labels an alpha may be chosen from: the steered ones. Alpha 0 (the unsteered answer
    itself, a tie by definition) is left out, or an untrained method would "match" at 0.5."""
    steered = [p.label for p in method.points if p.control != 0]
    return steered or [p.label for p in method.points]


@dataclass
class Chosen:
    """One method's alpha chosen on dev, and its win rate there and on test."""

    label: str | None
    dev: Estimate
    test: Estimate
    cube: Cube | None  # its test win rates at the chosen alpha, for paired comparisons


def choose(method: Any, key: str, dev: Design, test: Design) -> Chosen:
    """The alpha with the best dev win rate; its win rate with intervals on dev and on test."""
    labels = candidates(method)
    label = best_control(dev.score_cube(method, [key], labels), labels) if dev.prompts else None
    if label is None or not test.prompts:
        missing = Estimate(math.nan, math.nan, math.nan, len(test.prompts), len(test.seeds))
        return Chosen(None, missing, missing, None)
    win = mean_over_controls()
    cube = test.score_cube(method, [key], [label])
    return Chosen(label, estimate(dev.score_cube(method, [key], [label]), win, dev.draws), estimate(cube, win, test.draws), cube)


def repetition_at(method: Any, label: str | None, test: Design) -> tuple[Estimate, Cube] | None:
    """Distinct-3 of a method's test answers at its chosen alpha, with its 95% interval (and the cube,
    for a paired gap); None when the sweep did not score it."""
    if label is None or not test.prompts or not any(REPETITION_KEY in p.scores for p in method.points if p.label == label):
        return None
    cube = test.score_cube(method, [REPETITION_KEY], [label])
    return estimate(cube, mean_over_controls(), test.draws), cube


def versus_unsteered(e: Estimate) -> str:
    """better / worse / not distinguishable against the unsteered answer (a win rate of 0.5)."""
    return verdict(e.low - 0.5, e.high - 0.5, True)


@dataclass(frozen=True)
class RewardCheck:
    """GenARM's reward model: held-out pair accuracy per seed against what its decoding requires."""

    accuracies: list[float]
    required: float

    @property
    def used(self) -> bool:
        return self.required <= 0 or all(math.isfinite(a) and a >= self.required for a in self.accuracies)

    def text(self) -> str:
        values = ", ".join("nan" if not math.isfinite(a) else f"{a:.3f}" for a in self.accuracies)
        if self.required <= 0:
            return f"GenARM reward model held-out pair accuracy: {values} (no requirement set)."
        if self.used:
            return f"GenARM reward model held-out pair accuracy: {values} per seed, at least the required {self.required:g}: its decoding is used."
        return (f"GenARM reward model held-out pair accuracy: {values} per seed, **below the required {self.required:g}: GenARM's "
                "decoding is not used in any table**, and IAV is not compared with it: a reward model that does not rank held-out "
                "pairs cannot guide decoding toward the preference (see GenARM's section for the margin and the pairs' lengths).")


def entries(results: Any, kind: str) -> list[str]:
    return [name for name, m in results.methods.items() if m.method == kind]


class IAVReport:
    name = "iav"
    description = ("IAV against GenARM: headroom, judges against chance, GenARM's reward-model accuracy, win rates (alpha chosen on "
                   "dev, reported on test), their paired gap, the interleaved cost ratio, the seed claim")

    def section(self, results: Any, layout: RunLayout) -> Section | None:
        iav_names, gen_names = entries(results, "iav"), entries(results, "genarm")
        if not iav_names or not gen_names:
            return None
        judges = {m: judge_check(m, results.metrics.get(m)) for m in JUDGE_PREFIX if m in results.metrics}
        key = win_key(results, judges)
        rooms = self._headroom(results)
        reward = RewardCheck(reward_accuracies(results, layout, gen_names[0]),
                             float(results.methods[gen_names[0]].summary.get("required_heldout_accuracy", 0.0)))
        cost = read_cost(layout, {m.method: m for m in results.methods.values()})
        dev, test, split = Design.of(results).halves()
        chosen = {name: choose(m, key, dev, test) for name, m in results.methods.items()} if key else {}
        iav, gen = (chosen.get(iav_names[0]), chosen.get(gen_names[0]) if reward.used else None)
        gap = compare(iav.cube, gen.cube, mean_over_controls(), test.draws).difference if iav and gen and iav.cube and gen.cube else None
        win_half = hypothesis(gap, above=-GOAL_POINTS) if gap is not None else "undefined"
        goal = all_of(win_half, cost.claim(GOAL_COST)) if gap is not None else "undefined"
        curves = heldout_curves(results, layout, iav_names + gen_names)
        repetition = {name: r for name, c in chosen.items() if (r := repetition_at(results.methods[name], c.label, test))}
        pair = (iav_names[0], gen_names[0]) if reward.used and iav_names[0] in repetition and gen_names[0] in repetition else None
        repetition_gap = (compare(repetition[pair[0]][1], repetition[pair[1]][1], mean_over_controls(), test.draws).difference
                          if pair else None)
        parts = [self._checks_text(key, rooms, judges, reward), self._heldout_text(curves),
                 self._goal_text(key, split, iav, gen, gap, win_half, cost, goal)]
        if repetition:
            parts.append(self._repetition_text(repetition, repetition_gap))
        figures = [self._heldout_figure(layout, curves, reward.required)] if curves else []
        if key:
            excluded = [] if reward.used else gen_names
            parts.append(self._table(results, chosen, excluded, repetition))
            figures.append(self._plot(results, layout, key, test, chosen, excluded))
        summary = {"win_gap_points": -100 * gap.value if gap else math.nan, "cost_ratio": cost.ratio,
                   "headroom": rooms[judge_prefix(key)].value if key and judge_prefix(key) in rooms else math.nan}
        data = {"goal": goal, "win_half": win_half, "cost_half": cost.claim(GOAL_COST), "win_key": key,
                "iav_minus_genarm": gap.to_json() if gap else None, "genarm_used": reward.used, "heldout_accuracy": curves,
                "reward_heldout_accuracy": reward.accuracies, "headroom": {k: v.to_json() for k, v in rooms.items()},
                "judges": {m: {"usable": j.usable, "chance": j.chance, "accuracy": j.accuracy.to_json() if j.accuracy else None}
                           for m, j in judges.items()},
                "cost": {"ratio": cost.ratio, "range": [cost.low, cost.high], "source": cost.source},
                "chosen_on_dev": {name: c.label for name, c in chosen.items()}, "split": {"dev": len(split.dev), "test": len(split.test)},
                "distinct3_test": {name: r[0].to_json() for name, r in repetition.items()},
                "iav_minus_genarm_distinct3": repetition_gap.to_json() if repetition_gap else None}
        return Section(summary=summary, markdown="\n\n".join(parts), figures=figures, data=data)

    @staticmethod
    def _heldout_text(curves: dict[str, list[tuple[int, float]]]) -> str:
        if not curves:
            return "Held-out pair accuracy: not measured (no pairs held out)."
        return ("Held-out pair accuracy at the end of training, on the same held-out pairs for every entry and seed: "
                + ", ".join(f"{name} {points[-1][1]:.3f} (step {points[-1][0]})" for name, points in curves.items()) + ".")

    @staticmethod
    def _heldout_figure(layout: RunLayout, curves: dict[str, list[tuple[int, float]]], required: float) -> Figure:
        path = plot_heldout_accuracy(curves, layout.figure("iav_heldout_accuracy"), "IAV head and GenARM reward model: held-out pairs",
                                     required or None)
        return Figure(layout.relative(path), "Held-out pair accuracy per check, IAV and GenARM at every seed (dashed: GenARM's requirement)")

    @staticmethod
    def _headroom(results: Any) -> dict[str, Share]:
        records = [r for name in entries(results, "base") for r in results.methods[name].records]
        rooms = {prefix: headroom(records, prefix) for prefix in JUDGE_PREFIX.values()}
        return {prefix: share for prefix, share in rooms.items() if share is not None}

    @staticmethod
    def _checks_text(key: str | None, rooms: dict[str, Share], judges: dict[str, JudgeCheck], reward: RewardCheck) -> str:
        prefix = judge_prefix(key)
        if prefix in rooms:
            room = rooms[prefix]
            ok = "at most" if room.value <= HEADROOM_MAX else "**above**"
            lines = [f"**Headroom** (share of the unsteered model's test answers that `{prefix}` already counts as the target): "
                     f"{room.text()}, {ok} the {HEADROOM_MAX} allowed."]
        else:
            lines = ["**Headroom**: not measured (no unsteered `base` entry scored by the win-rate judge)."]
        lines += [f"Judge {j.text()}." for j in judges.values()]
        if key is None:
            lines.append("**No usable judge scored the sweeps: no win rate is reported.**")
        lines.append(reward.text())
        return "\n\n".join(lines)

    @staticmethod
    def _goal_text(key: str | None, split: Any, iav: Chosen | None, gen: Chosen | None, gap: Estimate | None, win_half: str,
                   cost: Cost, goal: str) -> str:
        cost_line = (f"Decode cost ({cost.source}): IAV's per-token cost is **{cost.ratio:.2f}x** GenARM's (range over repeats "
                     f"{cost.low:.2f}-{cost.high:.2f}); <= {GOAL_COST}x: **{cost.claim(GOAL_COST)}**.")
        if key is None or iav is None:
            return f"{cost_line}\n\nGoal: **{GOAL_WORDS['undefined']}** (no usable judge)."
        head = (f"Win rate = `{key}`, the share of prompts where {WIN_KEYS[key]} rates the steered answer more 'chosen' than the "
                f"unsteered one (a tie counts half). Each method's alpha is {split.describe()}; every win rate is given with its "
                "95% interval (paired bootstrap over seeds, then prompts) and n (prompts x seeds).")
        lines = [f"On the test prompts: IAV at alpha {iav.label} {iav.test.text_n()}, against the unsteered answer "
                 f"**{versus_unsteered(iav.test)}**."]
        if gen is None:
            lines.append("GenARM is not used (its reward model did not reach the required held-out pair accuracy): the goal "
                         f"cannot be tested, **{GOAL_WORDS['undefined']}**.")
        elif gap is None:
            lines.append(f"No alpha could be chosen on one half and reported on the other: goal **{GOAL_WORDS['undefined']}**.")
        else:
            lines += [f"GenARM at alpha {gen.label} {gen.test.text_n()}, against the unsteered answer **{versus_unsteered(gen.test)}**.",
                      f"IAV minus GenARM (paired) **{gap.text()}**: within {100 * GOAL_POINTS:.0f} points or ahead: **{win_half}**."]
        lines += [cost_line, f"Seed claim (IAV within {100 * GOAL_POINTS:.0f} points of GenARM at <= {GOAL_COST}x its inference cost): "
                             f"**{GOAL_WORDS[goal]}**."]
        return head + "\n\n" + " ".join(lines)

    @staticmethod
    def _repetition_text(repetition: dict[str, tuple[Estimate, Cube]], gap: Estimate | None) -> str:
        """Distinct-3 at each chosen alpha on the test prompts, and IAV - GenARM paired (``gap``)."""
        line = ("Repetition at the chosen alphas (distinct-3: the share of distinct word trigrams in an answer, 1 = no "
                "trigram repeated; test prompts, 95% interval, n prompts x seeds): "
                + ", ".join(f"{name} {r[0].text_n()}" for name, r in repetition.items()) + ".")
        if gap is not None:
            words = {"better": "less", "worse": "more"}.get(verdict(gap.low, gap.high, True), "not distinguishably more or less")
            line += (f" IAV minus GenARM (paired) {gap.text()}: IAV's answers repeat themselves **{words}** than GenARM's. "
                     "The win rate judges style only; read it beside this line.")
        return line

    @staticmethod
    def _table(results: Any, chosen: dict[str, Chosen], excluded: list[str], repetition: dict[str, tuple[Estimate, Cube]]) -> str:
        rows = []
        for name, method in results.methods.items():
            c = chosen[name]
            cells = (["not used"] * 6 if name in excluded else
                     [c.label or "-", c.dev.text(), c.test.text(), f"{c.test.n_prompts}x{c.test.n_seeds}", versus_unsteered(c.test),
                      repetition[name][0].text() if name in repetition else "-"])
            rows.append([name, method.method, *cells, method.cost.get("decode_tokens_per_s", math.nan),
                         method.cost.get("train_seconds", math.nan), method.cost.get("extra_memory_mb", math.nan)])
        header = ["entry", "method", "alpha (chosen on dev)", "win rate, dev", "win rate, test", "n test", "test vs unsteered",
                  "distinct-3, test", "decode tok/s*", "train s*", "extra MB*"]
        return markdown_table(header, rows) + "\n\n\\* one measurement per run (wall clock, memory): no prompt-level interval."

    @staticmethod
    def _plot(results: Any, layout: RunLayout, key: str, test: Design, chosen: dict[str, Chosen], excluded: list[str]) -> Figure:
        path = layout.figure("iav_win_rate")
        fig, ax = new_figure()
        for k, (name, method) in enumerate(results.methods.items()):
            labels = [p.label for p in method.points if isinstance(p.control, (int, float)) and key in p.scores]
            if not labels or not test.prompts or name in excluded:
                continue
            cube = test.score_cube(method, [key], labels)
            points = [(float(next(p.control for p in method.points if p.label == lab)),
                       estimate(Cube(cube.values[:, :, [i]]), mean_over_controls(), test.draws)) for i, lab in enumerate(labels)]
            xs, es = zip(*sorted(points, key=lambda pe: pe[0]))
            errors = [[max(e.value - e.low, 0.0) for e in es], [max(e.high - e.value, 0.0) for e in es]]
            ax.errorbar(xs, [e.value for e in es], yerr=errors, fmt="o-" if len(xs) > 1 else "o", color=f"C{k}", capsize=2,
                        label=f"{name} (chosen on dev: {chosen[name].label})")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("alpha")
        ax.set_ylabel(f"test win rate vs unsteered\n({key})")
        ax.set_title("Test win rate against alpha (0.5: as unsteered)")
        ax.legend(fontsize=7)
        save_figure(fig, path)
        return Figure(layout.relative(path), "Win rate on the test prompts against alpha (95% intervals), every method used")



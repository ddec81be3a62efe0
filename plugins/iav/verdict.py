"""The study-level verdict of the IAV study: IAV's win rate against GenARM's, and at what ratio of
decoding cost (``[study] reports = ["iav"]``).

The goal the study tests (IAV's own claim): within 2 points of GenARM's win rate at <= 0.6x its
per-token cost. Win rate: the mean of ``lm.chosen.win`` (else ``judge.chosen.win``: the steered
answer judged more 'chosen' than the unsteered answer to the same request; a tie is 0.5).

Each method's alpha is chosen on the dev half of the prompts (``PromptSplit``, the halves
``[data] split`` selects: the best dev win rate over the steered alphas), and its win rate is
reported on the test half with a 95% interval. The win-rate half of the goal reads the paired
difference IAV - GenARM on the test prompts (same prompts, same draws): supported when its whole
interval lies above -2 points, not supported when wholly below, not distinguishable otherwise.
The cost half is one timing (decoded tokens per second in each method's own sweep, the prompt's
prefill included; ``benchmarks/iav_cost.py`` measures decode steps alone): a measurement with no
prompt-level interval, so it is read as it stands and the report says so. The goal is met when
both halves are (``all_of``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from steerlab.api import (Cube, Design, Estimate, Figure, RunLayout, Section, all_of, best_control, compare, estimate, hypothesis,
                          markdown_table, mean_over_controls, new_figure, save_figure, verdict)

# The likelihood judge first when the study ran it (on SmolLM2 it tells the iav judge texts apart far
# better than MiniLM: see the iav study's report), else the MiniLM judge.
WIN_KEYS = {"lm.chosen.win": "the likelihood judge (`lm_judge`)", "judge.chosen.win": "the MiniLM judge (`judge`)"}
GOAL_POINTS, GOAL_COST = 0.02, 0.6
GOAL_WORDS = {"supported": "met", "not supported": "not met", "not distinguishable": "not distinguishable", "undefined": "not measured"}


def win_key(results: Any) -> str | None:
    """The first of ``WIN_KEYS`` that some method's sweep scored."""
    scored = {key for m in results.methods.values() for p in m.points for key in p.scores}
    return next((key for key in WIN_KEYS if key in scored), None)


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


def versus_unsteered(e: Estimate) -> str:
    """better / worse / not distinguishable against the unsteered answer (a win rate of 0.5)."""
    return verdict(e.low - 0.5, e.high - 0.5, True)


def cost_claim(cost_ratio: float) -> str:
    """The cost half of the goal, one measurement read as it stands."""
    if not math.isfinite(cost_ratio):
        return "undefined"
    return "supported" if cost_ratio <= GOAL_COST else "not supported"


def _speed(method: Any) -> float:
    return method.cost.get("decode_tokens_per_s", float("nan"))


class IAVReport:
    name = "iav"
    description = "IAV against GenARM: win rates (alpha chosen on dev, reported on test), their paired gap, the decode-cost ratio"

    def section(self, results: Any, layout: RunLayout) -> Section | None:
        by_kind = {m.method: m for m in results.methods.values()}
        key = win_key(results)
        if "iav" not in by_kind or "genarm" not in by_kind or key is None:
            return None
        dev, test, split = Design.of(results).halves()
        chosen = {name: choose(method, key, dev, test) for name, method in results.methods.items()}
        iav, gen = (next(chosen[n] for n, m in results.methods.items() if m.method == kind) for kind in ("iav", "genarm"))
        gap = compare(iav.cube, gen.cube, mean_over_controls(), test.draws).difference if iav.cube and gen.cube else None
        cost_ratio = _speed(by_kind["genarm"]) / _speed(by_kind["iav"]) if _speed(by_kind["iav"]) and _speed(by_kind["genarm"]) else float("nan")
        win_half = hypothesis(gap, above=-GOAL_POINTS) if gap is not None else "undefined"
        goal = all_of(win_half, cost_claim(cost_ratio))
        text = "\n\n".join([self._method_text(key, split), self._goal_text(iav, gen, gap, win_half, cost_ratio, by_kind, goal),
                            self._table(results, chosen)])
        summary = {"win_gap_points": -100 * gap.value if gap else float("nan"), "cost_ratio": cost_ratio}
        data = {"goal": goal, "win_half": win_half, "iav_minus_genarm": gap.to_json() if gap else None,
                "chosen_on_dev": {name: c.label for name, c in chosen.items()}, "split": {"dev": len(split.dev), "test": len(split.test)}}
        return Section(summary=summary, markdown=text, figures=[self._plot(results, layout, key, test, chosen)], data=data)

    @staticmethod
    def _method_text(key: str, split: Any) -> str:
        return (f"Win rate = `{key}`, the share of prompts where {WIN_KEYS[key]} rates the steered answer more 'chosen' than the "
                f"unsteered one (a tie counts half). Each method's alpha is {split.describe()}; every win rate is given with its "
                "95% interval (paired bootstrap over seeds, then prompts) and n (prompts x seeds).")

    @staticmethod
    def _goal_text(iav: Chosen, gen: Chosen, gap: Estimate | None, win_half: str, cost_ratio: float, by_kind: dict[str, Any], goal: str) -> str:
        if gap is None:
            return (f"No alpha could be chosen on one half and reported on the other (dev and test must both hold prompts): "
                    f"goal **{GOAL_WORDS['undefined']}**.")
        speeds = f"IAV {_speed(by_kind['iav']):.1f}, GenARM {_speed(by_kind['genarm']):.1f} tokens/s"
        lines = [f"On the test prompts: IAV at alpha {iav.label} {iav.test.text_n()}, GenARM at alpha {gen.label} {gen.test.text_n()}; "
                 f"IAV minus GenARM (paired) **{gap.text()}**: within {100 * GOAL_POINTS:.0f} points or ahead: **{win_half}**.",
                 f"Decode speed in the sweeps ({speeds}; one timing each, no interval): IAV's per-token cost is **{cost_ratio:.2f}x** "
                 f"GenARM's, {'within' if cost_claim(cost_ratio) == 'supported' else 'not within'} the {GOAL_COST}x asked.",
                 f"Goal (within {100 * GOAL_POINTS:.0f} points at <= {GOAL_COST}x the cost): **{GOAL_WORDS[goal]}**."]
        lines += [f"{name}'s chosen alpha against the unsteered answer (0.5): **{versus_unsteered(c.test)}**."
                  for name, c in (("IAV", iav), ("GenARM", gen))]
        return " ".join(lines)

    @staticmethod
    def _table(results: Any, chosen: dict[str, Chosen]) -> str:
        rows = [[name, method.method, chosen[name].label or "-", chosen[name].dev.text(), chosen[name].test.text(),
                 f"{chosen[name].test.n_prompts}x{chosen[name].test.n_seeds}", versus_unsteered(chosen[name].test),
                 _speed(method), method.cost.get("train_seconds", float("nan")), method.cost.get("extra_memory_mb", float("nan"))]
                for name, method in results.methods.items()]
        header = ["entry", "method", "alpha (chosen on dev)", "win rate, dev", "win rate, test", "n test", "test vs unsteered",
                  "decode tok/s*", "train s*", "extra MB*"]
        return markdown_table(header, rows) + "\n\n\\* one measurement per run (wall clock, memory): no prompt-level interval."

    @staticmethod
    def _plot(results: Any, layout: RunLayout, key: str, test: Design, chosen: dict[str, Chosen]) -> Figure:
        path = layout.figure("iav_win_rate")
        fig, ax = new_figure()
        for k, (name, method) in enumerate(results.methods.items()):
            labels = [p.label for p in method.points if isinstance(p.control, (int, float)) and key in p.scores]
            if not labels or not test.prompts:
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
        ax.set_ylabel(f"test win rate against the unsteered answer ({key})")
        ax.set_title("Win rate on the test prompts against alpha (0.5: as good as unsteered)")
        ax.legend(fontsize=7)
        save_figure(fig, path)
        return Figure(layout.relative(path), "Win rate on the test prompts against alpha (95% intervals), every method")

"""The study-level verdict of the IAV study: how far IAV's best win rate is from GenARM's, and at
what ratio of decoding cost (``[study] reports = ["iav"]``).

The goal the study tests (IAV's own claim): within 2 points of GenARM's best win rate at <= 0.6x
its per-token cost. Win rate: the mean of ``judge.chosen.win`` (the steered answer judged more
'chosen' than the unsteered answer to the same request) at each alpha; the best alpha of each
method counts. Cost: decoded tokens per second in each method's own sweep (same batches and
machine; the prompt's prefill included), reported as GenARM's per-token time over IAV's;
``benchmarks/iav_cost.py`` measures decode steps alone, interleaved, for the tighter figure.
A win-rate figure (all methods against alpha) is drawn beside the table.
"""

from __future__ import annotations

import math
from typing import Any

from steerlab.api import Figure, RunLayout, Section, markdown_table, new_figure, save_figure

# The likelihood judge first when the study ran it (on SmolLM2 it tells the iav judge texts apart far
# better than MiniLM: see the iav study's report), else the MiniLM judge.
WIN_KEYS = {"lm.chosen.win": "the likelihood judge (`lm_judge`)", "judge.chosen.win": "the MiniLM judge (`judge`)"}
GOAL_POINTS, GOAL_COST = 0.02, 0.6


def win_key(results: Any) -> str | None:
    """The first of ``WIN_KEYS`` that some method's sweep scored."""
    scored = {key for m in results.methods.values() for p in m.points for key in p.scores}
    return next((key for key in WIN_KEYS if key in scored), None)


def best_win(method: Any, key: str) -> tuple[float, str]:
    """The best win rate over the steered controls; alpha 0 (the unsteered answer itself, a tie by
    definition) is left out, or an untrained method would "match" the other at 0.5."""
    steered = [p for p in method.points if p.control != 0] or method.points
    points = [(p.scores.get(key, float("nan")), p.label) for p in steered]
    finite = [pt for pt in points if math.isfinite(pt[0])]
    return max(finite) if finite else (float("nan"), "-")


def shortfalls(gap: float, cost_ratio: float) -> list[str]:
    """Which half of the goal was missed (a NaN, e.g. a method that never decoded, misses it)."""
    return ([] if gap <= GOAL_POINTS else ["the win rate"]) + ([] if cost_ratio <= GOAL_COST else ["the cost"])


class IAVReport:
    name = "iav"
    description = "IAV against GenARM: best win rates, their gap, the decode-cost ratio, win rate against alpha"

    def section(self, results: Any, layout: RunLayout) -> Section | None:
        by_kind = {m.method: m for m in results.methods.values()}
        key = win_key(results)
        if "iav" not in by_kind or "genarm" not in by_kind or key is None:
            return None
        rows, figure = [], self._plot(results, layout, key)
        for name, method in results.methods.items():
            win, label = best_win(method, key)
            rows.append([name, method.method, win, label, method.cost.get("decode_tokens_per_s", float("nan")),
                         method.cost.get("train_seconds", float("nan")), method.cost.get("extra_memory_mb", float("nan"))])
        (iav_win, iav_at), (gen_win, gen_at) = best_win(by_kind["iav"], key), best_win(by_kind["genarm"], key)
        iav_speed, gen_speed = by_kind["iav"].cost.get("decode_tokens_per_s", float("nan")), by_kind["genarm"].cost.get("decode_tokens_per_s", float("nan"))
        cost_ratio = gen_speed / iav_speed if iav_speed and gen_speed else float("nan")  # IAV's per-token time / GenARM's
        gap = gen_win - iav_win
        met = gap <= GOAL_POINTS and cost_ratio <= GOAL_COST
        text = (f"Win rate = `{key}`, the share of prompts where {WIN_KEYS[key]} rates the steered answer more 'chosen' "
                f"than the unsteered one (a tie counts half); best over the alphas tried, picked on the same prompts "
                f"(optimistic for both methods alike).\n\n"
                f"Best win rate against the unsteered answer: IAV {iav_win:.3f} (alpha {iav_at}), GenARM {gen_win:.3f} (alpha {gen_at}): "
                f"IAV is **{100 * gap:+.1f} points** behind GenARM (negative: ahead). Decode speed in the sweeps: IAV {iav_speed:.1f}, "
                f"GenARM {gen_speed:.1f} tokens/s, so IAV's per-token cost is **{cost_ratio:.2f}x** GenARM's. Goal (within "
                f"{100 * GOAL_POINTS:.0f} points at <= {GOAL_COST}x the cost): **{'met' if met else 'not met'}**"
                + ("" if met else f" (short on: {', '.join(shortfalls(gap, cost_ratio))})") + "."
                + "".join(f" {name}'s best alpha does **not** beat the unsteered answer (win rate {win:.3f} <= 0.5)."
                          for name, win in (("IAV", iav_win), ("GenARM", gen_win)) if not win > 0.5)
                + "\n\n" + markdown_table(["entry", "method", "best win rate", "at", "decode tok/s", "train s", "extra MB"], rows))
        return Section(summary={"win_gap_points": 100 * gap, "cost_ratio": cost_ratio}, markdown=text, figures=[figure])

    @staticmethod
    def _plot(results: Any, layout: RunLayout, key: str) -> Figure:
        path = layout.figure("iav_win_rate")
        fig, ax = new_figure()
        for k, (name, method) in enumerate(results.methods.items()):
            pts = [(float(p.control), p.scores[key]) for p in method.points if key in p.scores and isinstance(p.control, (int, float))]
            if len(pts) > 1:
                ax.plot(*zip(*sorted(pts)), "o-", color=f"C{k}", label=name)
            elif pts:
                ax.axhline(pts[-1][1], color=f"C{k}", ls="--", label=f"{name} (no alpha)")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("alpha")
        ax.set_ylabel(f"win rate against the unsteered answer ({key})")
        ax.set_title("Win rate against alpha (0.5: as good as unsteered)")
        ax.legend(fontsize=7)
        save_figure(fig, path)
        return Figure(layout.relative(path), "Win rate against alpha, every method")

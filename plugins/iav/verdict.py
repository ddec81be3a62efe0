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

WIN = "judge.chosen.win"
GOAL_POINTS, GOAL_COST = 0.02, 0.6


def best_win(method: Any) -> tuple[float, str]:
    points = [(p.scores.get(WIN, float("nan")), p.label) for p in method.points]
    finite = [pt for pt in points if math.isfinite(pt[0])]
    return max(finite) if finite else (float("nan"), "-")


class IAVReport:
    name = "iav"
    description = "IAV against GenARM: best win rates, their gap, the decode-cost ratio, win rate against alpha"

    def section(self, results: Any, layout: RunLayout) -> Section | None:
        by_kind = {m.method: m for m in results.methods.values()}
        if "iav" not in by_kind or "genarm" not in by_kind:
            return None
        rows, figure = [], self._plot(results, layout)
        for name, method in results.methods.items():
            win, label = best_win(method)
            rows.append([name, method.method, win, label, method.cost.get("decode_tokens_per_s", float("nan")),
                         method.cost.get("train_seconds", float("nan")), method.cost.get("extra_memory_mb", float("nan"))])
        (iav_win, iav_at), (gen_win, gen_at) = best_win(by_kind["iav"]), best_win(by_kind["genarm"])
        iav_speed, gen_speed = by_kind["iav"].cost.get("decode_tokens_per_s", float("nan")), by_kind["genarm"].cost.get("decode_tokens_per_s", float("nan"))
        cost_ratio = gen_speed / iav_speed if iav_speed and gen_speed else float("nan")  # IAV's per-token time / GenARM's
        gap = gen_win - iav_win
        met = gap <= GOAL_POINTS and cost_ratio <= GOAL_COST
        text = (f"Best win rate against the unsteered answer: IAV {iav_win:.3f} (alpha {iav_at}), GenARM {gen_win:.3f} (alpha {gen_at}): "
                f"IAV is **{100 * gap:+.1f} points** behind GenARM (negative: ahead). Decode speed in the sweeps: IAV {iav_speed:.1f}, "
                f"GenARM {gen_speed:.1f} tokens/s, so IAV's per-token cost is **{cost_ratio:.2f}x** GenARM's. Goal (within "
                f"{100 * GOAL_POINTS:.0f} points at <= {GOAL_COST}x the cost): **{'met' if met else 'not met'}**"
                + ("" if met else f" ({'the win rate' if gap > GOAL_POINTS else ''}{' and ' if gap > GOAL_POINTS and cost_ratio > GOAL_COST else ''}"
                                  f"{'the cost' if cost_ratio > GOAL_COST else ''} fall short)") + ".\n\n"
                + markdown_table(["entry", "method", "best win rate", "at", "decode tok/s", "train s", "extra MB"], rows))
        return Section(summary={"win_gap_points": 100 * gap, "cost_ratio": cost_ratio}, markdown=text, figures=[figure])

    @staticmethod
    def _plot(results: Any, layout: RunLayout) -> Figure:
        path = layout.figure("iav_win_rate")
        fig, ax = new_figure()
        for k, (name, method) in enumerate(results.methods.items()):
            pts = [(float(p.control), p.scores[WIN]) for p in method.points if WIN in p.scores and isinstance(p.control, (int, float))]
            if len(pts) > 1:
                ax.plot(*zip(*sorted(pts)), "o-", color=f"C{k}", label=name)
            elif pts:
                ax.axhline(pts[-1][1], color=f"C{k}", ls="--", label=f"{name} (no alpha)")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("alpha")
        ax.set_ylabel("win rate against the unsteered answer")
        ax.set_title("Win rate against alpha (0.5: as good as unsteered)")
        ax.legend(fontsize=7)
        save_figure(fig, path)
        return Figure(layout.relative(path), "Win rate against alpha, every method")

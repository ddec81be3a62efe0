"""The judges section: how far each judge of a run can be trusted, and whether two judges agree.

A judge metric's report section carries, under ``data["judge"]``, what this needs: the prefix of
its scores (``judge``, ``lm``, ``lm_gemma``), its classes, its model, and how many of its held-out
texts it labelled right (``n``, ``correct``) against chance (the majority label's share). From
those, per judge:

* **accuracy on its held-out texts** with a 95% Wilson interval (a share of n independent texts;
  the Wilson interval stays inside [0, 1] and is honest at small n, where a normal one is not);
* **usable**: the whole interval lies above chance. A judge not shown better than chance (the
  MiniLM judge at 0.40 against 0.53 in the published iav run) is hidden from every core table of
  the report (``hidden``), and the section says so: its win rates would be noise with a label.

Per pair of judges over the same classes, **agreement on the run's answers**: each judge's leading
class per answer (its highest score), the share of answers where both lead with the same class
(Wilson interval) and Cohen's kappa (scikit-learn; agreement beyond what the two judges' label
frequencies give by chance). Counted twice: over every answer of every method (each method's own
control 0 included: the sweep as the tables read it) and over the **steered answers** alone (no
unsteered ``base`` entry, no control 0), since whether two judges agree on what steering produced is
the question a reader of a steering table has; unsteered answers, often all of one style, can lift or
sink agreement on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from steerlab.figures import markdown_table
from steerlab.results import MethodResult, Record, RunResults, Section
from steerlab.stats import wilson_interval as wilson


@dataclass(frozen=True)
class Judge:
    """One judge metric of a run, read from its report section."""

    table: str  # the [metrics.NAME] table
    prefix: str
    classes: list[str]
    model: str
    n: int
    correct: int
    chance: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n)

    @property
    def usable(self) -> bool:
        """Shown better than chance: the accuracy's interval lies wholly above it."""
        low = self.interval[0]
        return math.isfinite(low) and math.isfinite(self.chance) and low > self.chance


def judges_of(results: RunResults) -> list[Judge]:
    """Every metric section of the run that describes a judge (``data["judge"]``)."""
    out = []
    for table, section in results.metrics.items():
        j = section.data.get("judge") if isinstance(section.data, dict) else None
        if isinstance(j, dict) and {"prefix", "classes", "n", "correct", "chance"} <= set(j):
            out.append(Judge(table, str(j["prefix"]), [str(c) for c in j["classes"]], str(j.get("model", "")),
                             int(j["n"]), int(j["correct"]), float(j["chance"])))
    return out


def leading(scores: dict[str, float], judge: Judge) -> str | None:
    """The class the judge scores highest on this answer (None when a score is missing)."""
    values = [scores.get(f"{judge.prefix}.{c}", math.nan) for c in judge.classes]
    if not values or not all(math.isfinite(v) for v in values):
        return None
    return judge.classes[max(range(len(values)), key=values.__getitem__)]


@dataclass(frozen=True)
class Agreement:
    first: str
    second: str
    n: int
    agree: int
    kappa: float

    @property
    def share(self) -> float:
        return self.agree / self.n if self.n else math.nan


def steered(method: MethodResult, record: Record) -> bool:
    """Whether an answer was steered: not the unsteered ``base`` entry's, not a control of 0."""
    control = record.control
    return method.method != "base" and not (isinstance(control, (int, float)) and control == 0)


def agreement(results: RunResults, a: Judge, b: Judge, steered_only: bool = False) -> Agreement:
    """How often ``a`` and ``b`` lead with the same class on the run's answers (``steered_only``: on
    its steered answers), and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(x, y) for m in results.methods.values() for r in m.records
             if (not steered_only or steered(m, r))
             and (x := leading(r.scores, a)) is not None and (y := leading(r.scores, b)) is not None]
    if not pairs:
        return Agreement(a.table, b.table, 0, 0, math.nan)
    first, second = [x for x, _ in pairs], [y for _, y in pairs]
    agree = sum(x == y for x, y in pairs)
    kappa = 1.0 if agree == len(pairs) else float(cohen_kappa_score(first, second, labels=a.classes))
    return Agreement(a.table, b.table, len(pairs), agree, kappa)


def comparable(judges: list[Judge]) -> list[tuple[Judge, Judge]]:
    """Pairs of judges over the same classes (their leading classes can be compared)."""
    return [(a, b) for a, b in combinations(judges, 2) if sorted(a.classes) == sorted(b.classes)]


def hidden_prefixes(results: RunResults) -> set[str]:
    """The score prefixes of the judges not shown better than chance: no core table shows them."""
    section = results.reports.get("judges")
    return set(section.data.get("hidden", [])) if section is not None else set()


def is_hidden(column: str, hidden: set[str]) -> bool:
    """Whether a score column (``lm.humorous``, ``judge.concise.win@+0.4``) belongs to a hidden judge."""
    return column.split("[")[0].split(".")[0] in hidden


def _agreement_json(p: Agreement) -> dict[str, Any]:
    return {"n": p.n, "share": p.share, "interval": list(wilson(p.agree, p.n)), "kappa": p.kappa}


def _share(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k / n:.3f} [{low:.3f}, {high:.3f}]" if n else "n/a"


def judges_section(results: RunResults) -> Section | None:
    """The judges table, their agreement, and which judges the core tables leave out (None: no judge)."""
    judges = judges_of(results)
    if not judges:
        return None
    rows = [[f"`{j.table}`", f"`{j.prefix}.*`", j.model, j.n, _share(j.correct, j.n), f"{j.chance:.3f}",
             "yes" if j.usable else "**no** (not shown above chance: hidden from the tables)"] for j in judges]
    lines = ["Each judge's accuracy on its held-out texts (95% Wilson interval), against chance (the majority label's share). "
             "A judge whose interval does not lie wholly above chance is not used for any table of this report.", "",
             markdown_table(["judge", "scores", "model", "held-out texts", "accuracy [95%]", "chance", "used in tables"], rows)]
    both = [(agreement(results, a, b), agreement(results, a, b, steered_only=True)) for a, b in comparable(judges)]
    if both:
        lines += ["", "Agreement on the run's answers, over all of them (every method's records) and over the steered ones "
                  "(no unsteered base entry, no control 0): the share where both judges lead with the same class (95% Wilson "
                  "interval) and Cohen's kappa (agreement beyond chance; 1 perfect, 0 chance level).", "",
                  markdown_table(["judges", "answers", "same leading class [95%]", "Cohen's kappa",
                                  "steered answers", "same leading class, steered [95%]", "Cohen's kappa, steered"],
                                 [[f"`{p.first}` / `{p.second}`", p.n, _share(p.agree, p.n), f"{p.kappa:.3f}",
                                   s.n, _share(s.agree, s.n), f"{s.kappa:.3f}"] for p, s in both])]
    hidden = sorted(j.prefix for j in judges if not j.usable)
    if hidden:
        lines += ["", "Hidden from the tables of this report: " + ", ".join(f"`{p}.*`" for p in hidden)
                  + " (their scores stay in results.json)."]
    data: dict[str, Any] = {"hidden": hidden,
                            "judges": {j.table: {"prefix": j.prefix, "model": j.model, "n": j.n, "accuracy": j.accuracy,
                                                 "interval": list(j.interval), "chance": j.chance, "usable": j.usable} for j in judges},
                            "agreement": [{"judges": [p.first, p.second], **_agreement_json(p),
                                           "steered": _agreement_json(s)} for p, s in both]}
    return Section(markdown="\n".join(lines), data=data)

"""Typed results -> ``report.md`` (figures beside it) and a terminal summary table."""

from __future__ import annotations

import math
from typing import Any

from steerlab.analysis.concepts import concepts_section
from steerlab.analysis.judges import hidden_prefixes, is_hidden
from steerlab.figures import fmt, markdown_table, score_columns
from steerlab.layout import RunLayout
from steerlab.results import Figure, MethodResult, Record, RunResults, Section
from steerlab.stats import Estimate
from steerlab.storage import atomic_write_text

SAMPLE_CHARS = 600
FRONT_KEYS = ["hypervolume", "front_size", "spacing", "lambda_alignment"]


def point_table(method: MethodResult, hidden: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """Each control's mean score, with its 95% interval over prompts and seeds where the run has one
    (``hidden``: prefixes of judges not shown above chance, left out)."""
    columns = [c for c in score_columns([p.scores for p in method.points]) if not is_hidden(c, hidden)]
    label = method.controls.get("label", "control")
    return markdown_table([label, "n", *columns], [[p.label, p.n, *[interval_text(p.scores.get(c, float("nan")), method.intervals.get(f"{c}@{p.label}"))
                                                                    for c in columns]] for p in method.points])


def figures_markdown(figures: list[Figure]) -> list[str]:
    return [f"![{f.caption}]({f.path})\n\n*{f.caption}*\n" for f in figures]


def samples_section(records: list[Record], n_prompts: int = 2) -> str:
    prompts = list(dict.fromkeys(r.prompt for r in records))[:n_prompts]
    parts = []
    for prompt in prompts:
        parts.append(f"**Prompt:** {prompt}\n")
        for r in (r for r in records if r.prompt == prompt):
            text = r.output.replace("\n", " ")
            text = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + " [...]"
            words = int(r.scores["words"]) if "words" in r.scores else len(r.output.split())
            parts.append(f"- `{r.label}` ({words} words): {text}")
        parts.append("")
    return "\n".join(parts)


def section_markdown(title: str, section: Section) -> list[str]:
    out = [title, ""]
    if section.markdown:
        out += [section.markdown, ""]
    return out + figures_markdown(section.figures)


def write_report(layout: RunLayout, results: RunResults) -> None:
    study = results.study
    out = [f"# Study `{study['name']}`", "", study.get("description", ""), ""]
    seeds = study.get("seeds") or [study["seed"]]
    out.append(f"Model `{study['model']}`, {'seeds ' + str(seeds) if len(seeds) > 1 else 'seed ' + str(seeds[0])}, "
               f"{study['n_eval_prompts']} eval prompts, "
               f"token cap {study['max_new_tokens']}{' (quick run)' if study.get('quick') else ''}.\n")
    nan_note = _nan_note(results)
    if nan_note:
        out += [nan_note, ""]
    for name, section in results.metrics.items():
        out += section_markdown(f"## Metric `{name}`", section)
    hidden = hidden_prefixes(results)
    if results.comparison:
        out += comparison_section(results, results.comparison, hidden)
    if results.concepts:
        out += concepts_section(results.concepts)
    for name, section in results.reports.items():
        out += section_markdown(f"## Report `{name}`", section)
    out += cost_section(results)
    for name, method in results.methods.items():
        out += [f"## Method `{name}` ({method.method})", ""]
        if method.analysis.markdown:
            out += [method.analysis.markdown, ""]
        out += [point_table(method, hidden), ""]
        extra = {k: v for k, v in method.summary.items() if "@" not in k and not is_hidden(k, hidden)}
        if extra:
            out += [markdown_table(["measure", "value"], [[k, v] for k, v in sorted(extra.items())]), ""]
        out += figures_markdown(method.analysis.figures)
        out += ["### Sample answers", "", samples_section(method.records), ""]
    atomic_write_text(layout.report, "\n".join(out))


COST_COLUMNS = [("train_seconds", "train s"), ("decode_seconds", "decode s"), ("score_seconds", "scoring s"),
                ("decode_tokens_per_s", "decode tok/s"), ("train_tokens", "train tokens"),
                ("grad_tokens", "tokens with gradient"), ("extra_memory_mb", "extra MB")]


def cost_section(results: RunResults) -> list[str]:
    """Where the run's time went, stage by stage: what to cut when a study is too slow for its
    machine (on 2 CPU cores scoring answers costs about as much as generating them)."""
    rows = [[name, *[m.cost.get(key, float("nan")) for key, _ in COST_COLUMNS]] for name, m in results.methods.items()]
    if not rows:
        return []
    out = ["## Cost", "", "Wall seconds of each stage this run computed (a stage read back from an earlier run of the same "
           "folder keeps its first time; stages run in parallel processes overlap).", "",
           markdown_table(["method", *[label for _, label in COST_COLUMNS]], rows), ""]
    sections = [[name, s.data["seconds"]] for name, s in results.metrics.items() if isinstance(s.data.get("seconds"), (int, float))]
    if sections:
        out += [markdown_table(["metric section", "seconds"], sections), ""]
    return out


def _nan_note(results: RunResults) -> str:
    """Say why a number can be missing: results.json writes NaN as null (strict JSON)."""
    missing = sorted({k for m in results.methods.values() for k, v in m.summary.items() if v != v})
    if not missing:
        return ""
    shown = ", ".join(f"`{k}`" for k in missing[:8]) + (" ..." if len(missing) > 8 else "")
    return (f"Some numbers are undefined (written as `null` in results.json, `nan` here): {shown}. "
            "A mean over no finite values (e.g. no answer had tokens to score), a rank correlation over constant "
            "values, or a front measure with fewer than three points is undefined.")


def interval_text(value: float, interval: list[float] | None) -> str:
    """``0.064 [0.058, 0.071]``: a number with its 95% interval (the number alone without one)."""
    if not interval or len(interval) != 2:
        return fmt(value)
    return f"{fmt(value)} [{fmt(interval[0])}, {fmt(interval[1])}]"


def estimate_text(block: dict[str, Any]) -> str:
    """An ``Estimate.to_json()`` block as text."""
    value = block.get("value")
    return interval_text(float("nan") if value is None else value, [float("nan") if v is None else v for v in block["interval"]])


def _summary_text(method: MethodResult, key: str) -> str:
    return interval_text(method.summary.get(key, float("nan")), method.intervals.get(key))


def design_line(comparison: dict[str, Any]) -> str:
    design = comparison.get("design") or {}
    if not design:
        return ""
    seeds = design["seeds"]
    return (f"n = {design['prompts']} prompts x {len(seeds)} training seed{'s' if len(seeds) > 1 else ''} ({seeds}) per cell for "
            "trained methods, x 1 for untrained ones (greedy decoding gives them one answer per prompt). Intervals: 95%, a paired "
            f"bootstrap over prompts{', hierarchical over seeds' if len(seeds) > 1 else ''} ({design['resamples']} resamples, "
            "`steerlab/stats.py`). A verdict is read from the interval of the paired difference: better or worse when it "
            "excludes 0, not distinguishable when it holds 0; *prompts needed* is how many prompts per cell would make the "
            "observed difference clear its interval.")


def comparison_section(results: RunResults, comparison: dict[str, Any], hidden: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    tag = comparison.get("tag", "")
    key = (lambda k: f"{k}[{tag}]") if tag else (lambda k: k)  # noqa: E731
    axes = ", ".join(f"`{a}`" for a in comparison["axes"])
    if any(is_hidden(a, hidden) for a in comparison["axes"]):
        return [f"## Comparison on {axes}", "", "Not shown: its axes are scores of a judge not shown better than chance on its "
                "held-out texts (see the `judges` report); the numbers stay in results.json.", ""]
    rows = [[name, *[_summary_text(m, key(k)) for k in FRONT_KEYS]] for name, m in results.methods.items()]
    title = f"## Comparison on {axes}" if tag else "## Comparison"
    out = [title, "", f"Each control of each method is one point: its mean {axes} over the eval prompts (and seeds).", ""]
    if not tag and design_line(comparison):
        out += [design_line(comparison), ""]
    out += [markdown_table(["method", *FRONT_KEYS], rows), ""]
    anchor = comparison["anchor"]
    versus = [[other, v["coverage_of_other"], v["coverage_by_other"], *_ratio_cells(v.get("tests", {}).get(key("hypervolume")),
                                                                                       v["hypervolume_ratio"])]
              for other, v in comparison["versus"].items()]
    if versus:
        out += [f"`{anchor}` against each other method: share of the other's points that `{anchor}` weakly dominates, "
                f"share of `{anchor}`'s points the other dominates, the hypervolume ratio and difference with their intervals, "
                "and the verdict on the difference.", "",
                markdown_table(["other", f"{anchor} covers other", f"other covers {anchor}", "HV ratio", "HV difference",
                                "verdict", "prompts needed"], versus), ""]
    out += tests_table(anchor, {o: v.get("tests", {}) for o, v in comparison["versus"].items()}, exclude={key("hypervolume")}, hidden=hidden)
    if comparison.get("corners"):
        out += ["Does the control move the judged styles? For each style: its mean score when the control puts all weight "
                "on it against the mean at the other corners (gap > 0: turning the dimension on raises its score).", ""]
        rows = [[name, r["axis"].split(".")[-1], r["at_own_corner"], r["at_other_corners"],
                 interval_text(r["gap"], results.methods[name].intervals.get(key(f"gap.{r['axis'].split('.')[-1]}")))]
                for name, corner in comparison["corners"].items() for r in corner]
        out += [markdown_table(["method", "style", "own corner", "other corners", "gap [95% interval]"], rows), ""]
    if not tag:
        out += other_scores_table(results, [*comparison["axes"], *comparison.get("also", {}).get("axes", [])], hidden)
        if comparison.get("answers"):
            out += ["What the answers are like besides their style, each measure's mean over the method's answers: "
                    "`log_loss` is the mean per-token log-loss under the unsteered model (the log of a geometric-mean "
                    "perplexity, which one looping answer cannot dominate) and `log_loss_median` its median; `degenerate` "
                    "the share of answers that are empty or loop (an 8-word span repeated); `judge_agreement` how often the "
                    "two judges name the same leading style.", ""]
            out += answers_table(results, comparison["answers"], hidden)
            out += tests_table(anchor, comparison["answers"], hidden=hidden)
    out += figures_markdown([Figure(f["path"], f["caption"]) for f in comparison["figures"]])
    if comparison.get("also"):
        out += comparison_section(results, comparison["also"], hidden)
    if comparison.get("pick"):
        out += pick_section(comparison["pick"])
    return out


def _ratio_cells(test: dict[str, Any] | None, ratio: float) -> list[Any]:
    """HV ratio, HV difference, verdict and prompts needed (the ratio alone before intervals existed)."""
    if not test:
        return [ratio, "", "", ""]
    return [estimate_text(test["ratio"]) if "ratio" in test else fmt(ratio), estimate_text(test["difference"]),
            test["verdict"], test.get("prompts_needed") if test.get("prompts_needed") is not None else "inf"]


def tests_table(anchor: str, tests: dict[str, dict[str, Any]], exclude: set[str] = frozenset(),  # type: ignore[assignment]
                hidden: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Every paired comparison of ``anchor`` with another method: the difference, its verdict."""
    rows = [[other, measure, estimate_text(t["difference"]), t["verdict"],
             t.get("prompts_needed") if t.get("prompts_needed") is not None else "inf"]
            for other, measures in tests.items() for measure, t in measures.items() if measure not in exclude and not is_hidden(measure, hidden)]
    if not rows:
        return []
    return [f"Paired differences `{anchor}` minus the other method:", "",
            markdown_table(["other", "measure", f"{anchor} - other [95% interval]", "verdict", "prompts needed"], rows), ""]


def answers_table(results: RunResults, answers: dict[str, Any], hidden: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    measures = [m for m in dict.fromkeys(m for tests in answers.values() for m in tests) if not is_hidden(m, hidden)]
    rows = [[name, *[_summary_text(m, k) for k in measures]] for name, m in results.methods.items()]
    return [markdown_table(["method", *measures], rows), ""]


def _difference(test: dict[str, Any] | None) -> str:
    if test is None:
        return "not measured"
    d = test["difference"]
    low, high = (float("nan") if v is None else v for v in d["interval"])
    value = float("nan") if d["value"] is None else d["value"]
    return f"{Estimate(value, low, high, 0, 0).text()} ({test['verdict']})"


def pick_section(pick: dict[str, Any]) -> list[str]:
    """The winning setting of a study that picks one (``[pareto] candidates``), with the paired
    hypervolume difference against the anchor on every judge (``steerlab/analysis/pick.py``)."""
    anchor, judges = pick["anchor"], pick["judges"]
    rows = [[f"`{c}`", *[_difference(per_judge.get(j)) for j in judges], "yes" if pick["qualifies"][c] else "no"]
            for c, per_judge in pick["candidates"].items()]
    winner = f"**`{pick['winner']}`**" if pick["winner"] else "**none**"
    return ["## Winning setting", "",
            f"Chosen on the {pick['prompts']} prompts of this run (split `{pick['split']}`: the dev prompts, so the study that "
            f"uses the setting reports it on the test prompts). For each candidate and each judge, the paired difference of "
            f"hypervolume, candidate minus `{anchor}` (same prompts, same draws; 95% interval) and its verdict. A candidate "
            "qualifies when it is better on at least one judge and worse on none; the winner is the qualifying candidate whose "
            "smallest lower bound over the judges is highest (`steerlab/analysis/pick.py`).", "",
            markdown_table(["candidate", *[f"HV minus `{anchor}` ({j})" for j in judges], "qualifies"], rows), "",
            f"Winner: {winner}: {pick['reason']}.", ""]


def other_scores_table(results: RunResults, axes: list[str], hidden: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """What the fronts leave out (fluency, length, ...): each other score's mean over a method's
    controls, so a front bought with worse text shows in the same section (with intervals in the
    answers table below it, when the run has them)."""
    columns = [c for c in score_columns([p.scores for m in results.methods.values() for p in m.points]) if c not in axes and not is_hidden(c, hidden)]
    if not columns or any(m.intervals for m in results.methods.values()):
        return []
    def mean(method: MethodResult, column: str) -> float:
        values = [p.scores[column] for p in method.points if column in p.scores and math.isfinite(p.scores[column])]
        return sum(values) / len(values) if values else float("nan")
    rows = [[name, *[mean(m, c) for c in columns]] for name, m in results.methods.items()]
    return ["The other scores, each a mean over the method's controls:", "", markdown_table(["method", *columns], rows), ""]


def terminal_summary(results: RunResults) -> str:
    """A plain-text table of every method's per-control means, for the end of ``steerlab run``."""
    lines = []
    for name, method in results.methods.items():
        columns = score_columns([p.scores for p in method.points])[:7]
        header = [method.controls.get("label", "control"), *columns]
        table = [header] + [[p.label, *[fmt(p.scores.get(c, float("nan"))) for c in columns]] for p in method.points]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        lines.append(f"== {name}")
        lines += ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in table]
        lines += [f"   {k} = {fmt(v)}" for k, v in sorted(method.summary.items()) if "@" not in k]
    for name, section in results.metrics.items():
        lines += [f"== metric {name}"] + [f"   {k} = {fmt(v)}" for k, v in sorted(section.summary.items())]
    return "\n".join(lines)

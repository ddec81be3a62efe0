"""Every method steering towards the same concepts on the same requests, AxBench-style.

Runs after the methods (no model needed) when a study has a ``[compare]`` table, and again on a
finished run with ``steerlab compare RUN``. Each answer gets three scores on a 0-2 scale, as
AxBench does, and their harmonic mean (0 when any is 0):

* **concept**: for a judge score (``judge.humorous``), 2 x the judge's probability of the concept;
  for a score that should fall (``-words``: concise), 2 x (1 - value / the reference's median),
  clipped to [0, 2];
* **instruction** (does the answer still address the request) and **fluency**: levels 0, 1 or 2
  on fixed scales calibrated once on labelled text (``[compare] scales``, a ``scales.json``
  written by ``steerlab data build compare-scales``; ``steerlab/analysis/scales.py``): the same
  cut points for every method, the unsteered model included, so doing nothing earns no free
  points (before, both were relative to the unsteered answers' medians, which gave it about 2 by
  construction).

The reference is the unsteered entry (``reference``, default ``base``), scored the same way; its
median is what a falling score (``-words``) is measured against, and nothing else.
Which controls target a concept: every control of an entry whose table says ``concept = "..."``
(but its neutral one), and the corner control of a concept's own dimension in an entry whose
control space has named dimensions (Panacea, soups, prompting). Each (method, concept)'s control
is chosen on a dev split of the requests (a stable hash of the request, ``dev_share``) by mean
harmonic mean, **once per training seed** (each seed is its own trained model, and a piece of a
fanned-out run chooses its test control from its own dev answers before any other seed has run:
``ChosenOnDev``), and reported on the rest (test) with 95% intervals and n (prompts x seeds), each
seed at its own chosen control (a choice pooled over seeds would name a control some seed never
generated on test, and its interval would be undefined), beside
its cost (training time and tokens, decode tokens/s in its sweep, extra memory: one measurement
each, no interval).

Who wins a concept is a choice and a verdict, kept apart: the method with the best dev harmonic
mean is the candidate (chosen on dev, like each control), and the verdict is its paired
difference with every other method on the test requests (same requests, same draws), read from
the interval: better / worse / not distinguishable. Prompting against steering reads the same
way: the best prompting entry and the best steering entry, each chosen on dev, compared on test.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from steerlab import stats
from steerlab.analysis.evidence import Design
from steerlab.analysis.scales import Scales, load_scales
from steerlab.errors import ConfigError
from steerlab.figures import MARKERS, markdown_table, new_figure, save_figure
from steerlab.layout import RunLayout
from steerlab.results import MethodResult, Record, RunResults
from steerlab.study.schema import CompareSettings, MethodEntry, Study

SAMPLE_CHARS = 400
SCORES = ("concept_score", "instruction", "fluency", "harmonic")
PROMPTING = ("prompting", "courteous")


def is_dev(prompt: str, share: float) -> bool:
    return int(hashlib.sha256(f"compare:{prompt}".encode()).hexdigest()[:8], 16) / 16**8 < share


def clip01(value: float) -> float:
    return float(min(max(value, 0.0), 1.0)) if math.isfinite(value) else 0.0


def ratio(a: float, b: float) -> float:
    """a / b, NaN (scored 0) when the reference b is not a positive number."""
    return a / b if math.isfinite(b) and b > 0 else float("nan")


@dataclass(frozen=True)
class References:
    """What a falling concept score (``-words``) is measured against: the reference's median of
    each concept's raw score. Instruction and fluency use the fixed ``scales`` instead."""

    values: dict[str, float]  # the reference's median of each concept's raw score
    scales: Scales

    @classmethod
    def from_records(cls, records: list[Record], concepts: dict[str, str], scales: Scales) -> "References":
        med = lambda key: float(np.nanmedian([r.scores.get(key, float("nan")) for r in records] or [float("nan")]))  # noqa: E731
        return cls({c: med(k.lstrip("-")) for c, k in concepts.items()}, scales)


def answer_scores(record: Record, concept: str, key: str, ref: References) -> dict[str, float]:
    """concept (0-2), instruction and fluency (levels 0, 1, 2 on the fixed scales) and their
    harmonic mean (0 when any is 0: AxBench's rule, ``stats.harmonic_mean``) for one answer."""
    raw = record.scores.get(key.lstrip("-"), float("nan"))
    concept_score = 2 * clip01(1 - ratio(raw, ref.values[concept])) if key.startswith("-") else 2 * clip01(raw)
    instruction = float(ref.scales.level("instruction", record.scores))
    fluency = float(ref.scales.level("fluency", record.scores))
    harmonic = stats.harmonic_mean((concept_score, instruction, fluency))  # the three are finite: clip01 maps NaN to 0
    return {"concept_score": concept_score, "instruction": instruction, "fluency": fluency, "harmonic": harmonic}


def study_scales(study: Study) -> Scales:
    """The study's fixed scales, checked against its model (the fluency cue's log-perplexity is the model's own)."""
    settings, where = study.compare, f"{study.path}: [compare] key 'scales'"
    if not settings.scales:
        raise ConfigError(f"{where}: missing; the comparison needs fixed instruction and fluency scales (scales.json, written "
                          "by `steerlab data build compare-scales --from studies/data/chat3d --out studies/data/compare`)")
    scales = load_scales(settings.scales, where)
    if scales.model != study.meta.model:
        raise ConfigError(f"{where}: {settings.scales} was calibrated under model '{scales.model}', this study scores fluency "
                          f"under '{study.meta.model}' (rebuild it with --model {study.meta.model})")
    return scales


def targets(entry: MethodEntry, concept: str) -> list[str]:
    """Labels of the entry's controls that steer towards ``concept``."""
    space = entry.space
    if entry.concept:
        neutral = space.neutral()
        return [space.key(c) for c in entry.controls if entry.concept == concept and (neutral is None or space.key(c) != space.key(neutral))]
    if concept in space.dimensions:
        i = space.dimensions.index(concept)
        return [space.key(c) for c in entry.controls if space.corner_of(c) == i]
    return []


def choose_per_seed(method: MethodResult, labels: list[str], scored: list[tuple[Record, dict[str, float]]],
                    share: float) -> dict[int | None, str]:
    """The control chosen on dev for each of the method's training seeds (in its cubes' seed order;
    ``None`` for a method run at one seed). Each seed chooses on its own dev answers, as the run's
    ``ChosenOnDev`` did when it decided which control to generate on the test requests."""
    if len(method.seeds) <= 1:
        return {None: choose(labels, scored, share)}
    return {seed: choose(labels, [(r, s) for r, s in scored if r.seed == seed], share) for seed in method.seeds}


def control_text(chosen: dict[int | None, str]) -> str:
    """The chosen control as the table shows it: one label, or each seed's when they differ."""
    labels = list(dict.fromkeys(chosen.values()))
    return labels[0] if len(labels) == 1 else " / ".join(f"{label} (seed {seed})" for seed, label in chosen.items())


def choose(labels: list[str], scored: list[tuple[Record, dict[str, float]]], share: float) -> str:
    """The control (label) with the best mean harmonic mean on the dev requests."""
    dev = {label: np.mean([s["harmonic"] for r, s in scored if r.label == label and is_dev(r.prompt, share)] or [float("nan")])
           for label in labels}
    return max(labels, key=lambda label: dev[label] if math.isfinite(dev[label]) else -1.0)


@dataclass(frozen=True)
class ChosenOnDev:
    """The runner's ``ControlChooser`` for a ``[compare]`` study: a strength entry's control is
    chosen on the dev requests exactly as ``compare_concepts`` later chooses it (same scores,
    same references), so the test requests only need that control."""

    settings: CompareSettings
    reference: list[Record]  # the reference entry's records: the medians a falling concept score is relative to
    scales: Scales

    def stages(self, entry: MethodEntry) -> bool:
        return bool(entry.concept) and entry.concept in self.settings.concepts and len(targets(entry, entry.concept)) > 1

    def is_dev(self, prompt: str) -> bool:
        return is_dev(prompt, self.settings.dev_share)

    def keep(self, entry: MethodEntry, dev_records: list[Record]) -> set[int]:
        concept = entry.concept
        ref = References.from_records(self.reference, self.settings.concepts, self.scales)
        labels = targets(entry, concept)
        scored = [(r, answer_scores(r, concept, self.settings.concepts[concept], ref)) for r in dev_records if r.label in labels]
        chosen, neutral = choose(labels, scored, self.settings.dev_share), entry.space.neutral()
        free = entry.space.key(neutral) if neutral is not None else None
        return {i for i, c in enumerate(entry.controls) if entry.space.key(c) in (chosen, free)}


@dataclass
class Halves:
    """The run's design cut by the ``[compare]`` split: dev chooses, test reports."""

    dev: Design
    test: Design

    @classmethod
    def of(cls, results: RunResults, share: float) -> "Halves":
        design = Design.of(results)
        return cls(Design.over([p for p in design.prompts if is_dev(p, share)], design.seeds),
                   Design.over([p for p in design.prompts if not is_dev(p, share)], design.seeds))


def score_cube(design: Design, method: MethodResult, chosen: dict[int | None, str], concept: str, key: str, ref: References) -> stats.Cube:
    """The four 0-2 scores of every answer, each seed at its own chosen control: (seeds, prompts, 1, 4)."""
    labels = list(dict.fromkeys(chosen.values()))
    full = design.cube(method, labels, lambda r: [answer_scores(r, concept, key, ref)[k] for k in SCORES], len(SCORES)).values
    columns = [labels.index(label) for label in chosen.values()]  # one per seed row, in the cube's seed order
    return stats.Cube(np.stack([full[row, :, col : col + 1, :] for row, col in enumerate(columns)]))


def measured_row(entry: MethodEntry, method: MethodResult, concept: str, chosen: dict[int | None, str], cubes: tuple[stats.Cube, stats.Cube],
                 halves: Halves) -> dict[str, Any]:
    """One (method, concept) row: each score on test with its interval, the dev harmonic mean that chose the control."""
    dev_cube, test_cube = cubes
    row: dict[str, Any] = {"method": entry.name, "kind": entry.method, "concept": concept, "control": control_text(chosen),
                           "control_per_seed": {str(seed): label for seed, label in chosen.items() if seed is not None},
                           "n_test": int(np.isfinite(test_cube.values[..., 0, 3]).any(axis=0).sum()), "n_seeds": test_cube.n_seeds}
    for i, k in enumerate(SCORES):
        e = stats.estimate(test_cube, stats.mean_over_controls(i), halves.test.draws)
        row[k], row[f"{k}_interval"] = e.value, [e.low, e.high]
    dev = stats.estimate(dev_cube, stats.mean_over_controls(SCORES.index("harmonic")), halves.dev.draws)
    row["dev_harmonic"], row["dev_harmonic_interval"], row["n_dev"] = dev.value, [dev.low, dev.high], dev.n_prompts
    row.update({k: method.cost.get(k, float("nan")) for k in ("train_seconds", "train_tokens", "decode_tokens_per_s", "extra_memory_mb")})
    return row


def compare_concepts(results: RunResults, study: Study, layout: RunLayout) -> dict[str, Any]:
    settings = study.compare
    concepts, share = settings.concepts, settings.dev_share
    scales = study_scales(study)
    ref = References.from_records(results.methods[settings.reference].records, concepts, scales)
    halves = Halves.of(results, share)
    rows, samples, cubes = [], {}, {}
    for entry in study.methods:
        method = results.methods[entry.name]
        for concept, key in concepts.items():
            labels = sorted({r.label for r in method.records}) if entry.name == settings.reference else targets(entry, concept)
            if not labels:
                continue
            scored = [(r, answer_scores(r, concept, key, ref)) for r in method.records if r.label in labels]
            chosen = choose_per_seed(method, labels, scored, share)
            at_chosen = lambda r: r.label == chosen.get(r.seed if None not in chosen else None)  # noqa: E731
            test = [(r, s) for r, s in scored if at_chosen(r) and not is_dev(r.prompt, share)]
            if not test:
                continue
            pair = (score_cube(halves.dev, method, chosen, concept, key, ref), score_cube(halves.test, method, chosen, concept, key, ref))
            rows.append(measured_row(entry, method, concept, chosen, pair, halves))
            cubes[(entry.name, concept)] = pair[1]
            ordered = sorted(test, key=lambda rs: rs[1]["harmonic"])
            samples[f"{entry.name}:{concept}"] = {"best": _sample(ordered[-1]), "worst": _sample(ordered[0])}
    figures = [_plot_tradeoff(rows, layout)]
    return {"concepts": concepts, "reference": settings.reference, "scales": scales.summary(), "dev_share": share, "test_chosen_only": settings.test_chosen_only,
            "n_dev": len(halves.dev.prompts), "n_test": len(halves.test.prompts), "rows": rows, "samples": samples,
            "winners": winners(rows, cubes, halves.test), "figures": [{"path": layout.relative(p), "caption": c} for p, c in figures]}


def _sample(item: tuple[Record, dict[str, float]]) -> dict[str, Any]:
    record, scores = item
    return {"prompt": record.prompt, "output": record.output[:SAMPLE_CHARS], **{k: round(v, 3) for k, v in scores.items()}}


def _on_dev(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the best dev harmonic mean (a choice: dev only; ties go to the first listed)."""
    ready = [r for r in rows if math.isfinite(r["dev_harmonic"])]
    return max(ready, key=lambda r: r["dev_harmonic"]) if ready else None


def winner_verdict(verdicts: dict[str, str]) -> str:
    """What the candidate's paired test differences say: better than every other method, or which
    methods it is not distinguishable from and which it is worse than."""
    if all(v == "better" for v in verdicts.values()):
        return "better than every other method"
    names = lambda word: ", ".join(f"`{m}`" for m, v in verdicts.items() if v == word)  # noqa: E731
    parts = [f"{label} {names(word)}" for word, label in (("not distinguishable", "not distinguishable from"), ("worse", "worse than"),
                                                          ("undefined", "undefined against")) if names(word)]
    return "; ".join(parts)


def winners(rows: list[dict[str, Any]], cubes: dict[tuple[str, str], stats.Cube], test: Design) -> dict[str, dict[str, Any]]:
    """Per concept: the candidate chosen on dev, its paired test comparison with every other
    method (harmonic mean), the verdict read from those intervals, and prompting against steering."""
    harmonic = stats.mean_over_controls(SCORES.index("harmonic"))
    versus = lambda a, b: stats.compare(cubes[(a["method"], a["concept"])], cubes[(b["method"], b["concept"])], harmonic, test.draws)  # noqa: E731
    out = {}
    for concept in dict.fromkeys(r["concept"] for r in rows):
        mine = [r for r in rows if r["concept"] == concept]
        lead = _on_dev(mine)
        if lead is None:
            continue
        others = {r["method"]: versus(lead, r) for r in mine if r is not lead}
        out[concept] = {"method": lead["method"], "harmonic": lead["harmonic"], "interval": lead["harmonic_interval"], "chosen_on": "dev",
                        "versus": {m: c.to_json() for m, c in others.items()}, "verdict": winner_verdict({m: c.verdict for m, c in others.items()})}
        prompting, steering = (_on_dev([r for r in mine if pick(r["kind"])]) for pick in (lambda k: k in PROMPTING, lambda k: k not in (*PROMPTING, "base")))
        if prompting is not None and steering is not None:
            out[concept]["prompting"] = {"prompting": prompting["method"], "steering": steering["method"],
                                         "comparison": versus(prompting, steering).to_json()}
    return out


def _plot_tradeoff(rows: list[dict[str, Any]], layout: RunLayout) -> tuple[Any, str]:
    """Harmonic mean (test) against decode speed and against training time, one point per method x
    concept: colour = method family, marker = concept, so every point names both without a
    colour or marker standing for two things."""
    from matplotlib.lines import Line2D

    path = layout.figure("concepts_tradeoff")
    fig, (left, right) = new_figure(ncols=2, width=5.4, height=4.4)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    colour = {kind: f"C{k % 10}" for k, kind in enumerate(kinds)}
    marker = {concept: MARKERS[k % len(MARKERS)] for k, concept in enumerate(concepts)}
    for r in rows:
        speed, train = r["decode_tokens_per_s"], r["train_seconds"]
        style = {"marker": marker[r["concept"]], "color": colour[r["kind"]], "s": 42, "alpha": 0.85}
        if math.isfinite(speed):  # the unsteered reference has no sweep of its own
            left.scatter(speed, r["harmonic"], **style)
        right.scatter(train if math.isfinite(train) else 0.0, r["harmonic"], **style)
    left.set_xlabel("decode tokens/s in the sweep (higher is cheaper)")
    right.set_xlabel("training seconds (symlog: untrained methods at 0)")
    right.set_xscale("symlog", linthresh=1.0)
    left.set_ylabel("harmonic mean (0-2, test split)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend([Line2D([], [], color=colour[k], marker="o", linestyle="") for k in kinds], kinds, fontsize=7, title="method", title_fontsize=7)
    right.legend([Line2D([], [], color="0.3", marker=marker[c], linestyle="") for c in concepts], concepts, fontsize=7, title="concept", title_fontsize=7)
    fig.suptitle("Steering quality against cost, per method and concept")
    save_figure(fig, path)
    return path, "Harmonic mean (test split) against decode speed (the unsteered reference has none) and training time"


COST = [("train_seconds", "train s*"), ("train_tokens", "train tokens*"), ("decode_tokens_per_s", "decode tok/s*"), ("extra_memory_mb", "extra MB*")]


def _interval(value: float, interval: list[float] | None) -> str:
    """``1.234 [1.100, 1.350]`` (an interval written as null in results.json prints as nan)."""
    low, high = (float("nan") if v is None else v for v in (interval or [None, None]))
    return stats.Estimate(float("nan") if value is None else value, low, high, 0, 0).text()


def _comparison(c: dict[str, Any]) -> str:
    d = c["difference"]
    return f"{_interval(d['value'], d['interval'])} ({c['verdict']})"


def concepts_table(block: dict[str, Any]) -> str:
    header = ["method", "concept", "control (chosen on dev)", "harmonic mean, dev", "concept score", "instruction", "fluency",
              "harmonic mean", "n test (prompts x seeds)", *[title for _, title in COST]]
    rows = [[r["method"], r["concept"], r["control"], _interval(r["dev_harmonic"], r["dev_harmonic_interval"]),
             *[_interval(r[k], r[f"{k}_interval"]) for k in SCORES], f"{r['n_test']}x{r.get('n_seeds', 1)}", *[r[k] for k, _ in COST]]
            for r in block["rows"]]
    return markdown_table(header, rows) + "\n\n\\* one measurement per run (wall clock, tokens, memory): no prompt-level interval."


def winner_line(concept: str, win: dict[str, Any]) -> str:
    """The candidate chosen on dev, its test harmonic mean, each paired difference and the verdict."""
    versus = "; ".join(f"minus `{m}` {_comparison(c)}" for m, c in win["versus"].items())
    line = (f"- **{concept}**: chosen on dev `{win['method']}`, test harmonic mean {_interval(win['harmonic'], win['interval'])}; "
            f"{versus}: **{win['verdict']}**.")
    if "prompting" in win:
        p = win["prompting"]
        line += (f" Prompting (`{p['prompting']}`) minus the best steering method (`{p['steering']}`), each chosen on dev: "
                 f"{_comparison(p['comparison'])}.")
    return line


def scales_sentence(scales: dict[str, Any] | None) -> str:
    """Which fixed scales scored instruction and fluency (a run from before them says so)."""
    if not scales:
        return "Instruction and fluency: relative to the reference's medians (a run from before the fixed scales)."
    cuts = lambda cues: "; ".join(f"{c['feature']} cuts {c['cuts'][0]:.3f} / {c['cuts'][1]:.3f}" for c in cues)  # noqa: E731
    return (f"Instruction and fluency are levels 0/1/2 on fixed scales calibrated once on labelled text (`{scales['path']}`, "
            f"sha256 {scales['sha256']}, model `{scales['model']}`; its SCALES.md gives each cut's held-out accuracy), the same "
            f"for every method, the unsteered one included: instruction {cuts(scales['instruction'])}; fluency (the lower of "
            f"its cues) {cuts(scales['fluency'])}.")


def prompting_line(wins: dict[str, dict[str, Any]]) -> str:
    """Where prompting wins (AxBench found it often does): the concepts where the best prompting
    entry is better than the best steering entry by the paired test interval, each chosen on dev."""
    read = {c: w["prompting"]["comparison"]["verdict"] for c, w in wins.items() if "prompting" in w}
    if not read:
        return "**Where prompting wins**: no concept has both a prompting and a steering entry."
    named = lambda verdict: ", ".join(c for c, v in read.items() if v == verdict) or "none"  # noqa: E731
    return (f"**Where prompting wins** (prompting minus the best steering method, paired test interval, as AxBench asks): "
            f"better on {named('better')}; worse on {named('worse')}; not distinguishable on "
            f"{named('not distinguishable')}.")


def concepts_section(block: dict[str, Any]) -> list[str]:
    """The report's section: the table, who wins per concept (and whether prompting does), samples."""
    split = (f" ({block['n_dev']} dev and {block['n_test']} test requests)" if "n_dev" in block else "")
    out = ["## Concept comparison", "",
           f"Every method steering towards each concept on the same requests; scores 0-2 (concept, instruction, fluency) and "
           f"their harmonic mean (0 when any score is 0), as AxBench does. Each method's control, and each concept's candidate winner, "
           f"is chosen on {100 * block['dev_share']:.0f}% of the requests (dev) and reported on the rest (test){split}"
           f"{' (a strength entry is generated on the test requests at its chosen control only)' if block.get('test_chosen_only') else ''}; "
           "every test number has its 95% interval (paired bootstrap over seeds, then requests), and every verdict is read from "
           f"the interval of a paired difference on the test requests. `{block['reference']}` is the unsteered reference. "
           f"{scales_sentence(block.get('scales'))} How each score is computed: `steerlab/analysis/concepts.py`.", "",
           concepts_table(block), ""]
    out += [winner_line(concept, win) for concept, win in block["winners"].items()]
    out += ["", prompting_line(block["winners"])]
    out += ["", "Best and worst test answers per method and concept (by harmonic mean):", ""]
    for key, pair in block["samples"].items():
        for which in ("best", "worst"):
            s = pair[which]
            text = s["output"].replace("\n", " ")
            out.append(f"- `{key}` {which} (HM {s['harmonic']:.2f}; concept {s['concept_score']:.2f}, instruction {s['instruction']:.2f}, "
                       f"fluency {s['fluency']:.2f}) — *{s['prompt']}* → {text}")
    out.append("")
    out += [f"![{f['caption']}]({f['path']})\n\n*{f['caption']}*\n" for f in block["figures"]]
    return out

"""Every method steering towards the same concepts on the same requests, AxBench-style.

Runs after the methods (no model needed) when a study has a ``[compare]`` table, and again on a
finished run with ``steerlab compare RUN``. Each answer gets three scores on a 0-2 scale, as
AxBench does, and their harmonic mean (0 when any is 0):

* **concept**: for a judge score (``judge.humorous``), 2 x the judge's probability of the concept;
  for a score that should fall (``-words``: concise), 2 x (1 - value / the reference's median),
  clipped to [0, 2];
* **instruction** (does the answer still address the request): 2 x cos(answer, request) / the
  reference answers' median cosine, clipped to [0, 2] (MiniLM; the ``relevance`` metric);
* **fluency**: 2 x the smaller of a perplexity term, 1 - ln(ppl / ref) / ln 4 (1 at or below the
  reference's median perplexity under the base model, 0 at 4x it), and a repetition term,
  (distinct3 - 0.4) / (ref - 0.4) (0 when at most 40% of word trigrams are distinct), each
  clipped to [0, 1].

The reference is the unsteered entry (``reference``, default ``base``), scored the same way.
Which controls target a concept: every control of an entry whose table says ``concept = "..."``
(but its neutral one), and the corner control of a concept's own dimension in an entry whose
control space has named dimensions (Panacea, soups, prompting). Each (method, concept)'s control
is chosen on a dev split of the requests (a stable hash of the request, ``dev_share``) by mean
harmonic mean, and reported on the rest (test), with its cost (training time and tokens, decode
tokens/s in its sweep, extra memory).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from steerlab.figures import MARKERS, markdown_table, new_figure, save_figure
from steerlab.run.layout import RunLayout
from steerlab.run.results import Record, RunResults
from steerlab.study.schema import CompareSettings, MethodEntry, Study

SAMPLE_CHARS = 400


def is_dev(prompt: str, share: float) -> bool:
    return int(hashlib.sha256(f"compare:{prompt}".encode()).hexdigest()[:8], 16) / 16**8 < share


def clip01(value: float) -> float:
    return float(min(max(value, 0.0), 1.0)) if math.isfinite(value) else 0.0


def ratio(a: float, b: float) -> float:
    """a / b, NaN (scored 0) when the reference b is not a positive number."""
    return a / b if math.isfinite(b) and b > 0 else float("nan")


@dataclass(frozen=True)
class References:
    """Medians of the unsteered answers: what 'as good as the base model' means per score."""

    perplexity: float
    distinct3: float
    relevance: float
    values: dict[str, float]  # the reference's median of each concept's raw score

    @classmethod
    def from_records(cls, records: list[Record], concepts: dict[str, str]) -> "References":
        med = lambda key: float(np.nanmedian([r.scores.get(key, float("nan")) for r in records]))  # noqa: E731
        return cls(med("perplexity"), med("distinct3"), med("relevance"), {c: med(k.lstrip("-")) for c, k in concepts.items()})


def answer_scores(record: Record, concept: str, key: str, ref: References) -> dict[str, float]:
    """concept, instruction, fluency (0-2 each) and their harmonic mean for one answer."""
    raw = record.scores.get(key.lstrip("-"), float("nan"))
    concept_score = 2 * clip01(1 - ratio(raw, ref.values[concept])) if key.startswith("-") else 2 * clip01(raw)
    instruction = 2 * clip01(ratio(record.scores.get("relevance", float("nan")), ref.relevance))
    ppl_ratio = ratio(record.scores.get("perplexity", float("nan")), ref.perplexity)
    ppl_term = clip01(1 - math.log(ppl_ratio) / math.log(4)) if ppl_ratio > 0 else 0.0
    rep_term = clip01((record.scores.get("distinct3", float("nan")) - 0.4) / max(ref.distinct3 - 0.4, 1e-6))
    fluency = 2 * min(ppl_term, rep_term)
    parts = (concept_score, instruction, fluency)
    harmonic = 0.0 if min(parts) <= 0 else 3 / sum(1 / p for p in parts)
    return {"concept_score": concept_score, "instruction": instruction, "fluency": fluency, "harmonic": harmonic}


def targets(entry: MethodEntry, concept: str) -> list[str]:
    """Labels of the entry's controls that steer towards ``concept``."""
    space = entry.space
    if entry.concept:
        neutral = space.neutral()
        return [space.key(c) for c in entry.controls if entry.concept == concept and (neutral is None or space.key(c) != space.key(neutral))]
    if concept in space.dimensions:
        i = space.dimensions.index(concept)
        return [space.key(c) for c in entry.controls if space.coordinates(c)[i] == 1.0]
    return []


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
    reference: list[Record]  # the reference entry's records: the medians every score is relative to

    def stages(self, entry: MethodEntry) -> bool:
        return bool(entry.concept) and entry.concept in self.settings.concepts and len(targets(entry, entry.concept)) > 1

    def is_dev(self, prompt: str) -> bool:
        return is_dev(prompt, self.settings.dev_share)

    def keep(self, entry: MethodEntry, dev_records: list[Record]) -> set[int]:
        concept = entry.concept
        ref = References.from_records(self.reference, self.settings.concepts)
        labels = targets(entry, concept)
        scored = [(r, answer_scores(r, concept, self.settings.concepts[concept], ref)) for r in dev_records if r.label in labels]
        chosen, neutral = choose(labels, scored, self.settings.dev_share), entry.space.neutral()
        free = entry.space.key(neutral) if neutral is not None else None
        return {i for i, c in enumerate(entry.controls) if entry.space.key(c) in (chosen, free)}


def compare_concepts(results: RunResults, study: Study, layout: RunLayout) -> dict[str, Any]:
    settings = study.compare
    concepts, share = settings.concepts, settings.dev_share
    ref_records = results.methods[settings.reference].records
    ref = References.from_records(ref_records, concepts)
    rows, samples = [], {}
    for entry in study.methods:
        method = results.methods[entry.name]
        for concept, key in concepts.items():
            labels = sorted({r.label for r in method.records}) if entry.name == settings.reference else targets(entry, concept)
            if not labels:
                continue
            scored = [(r, answer_scores(r, concept, key, ref)) for r in method.records if r.label in labels]
            chosen = choose(labels, scored, share)
            test = [(r, s) for r, s in scored if r.label == chosen and not is_dev(r.prompt, share)]
            if not test:
                continue
            row = {"method": entry.name, "kind": entry.method, "concept": concept, "control": chosen, "n_test": len(test),
                   **{k: float(np.mean([s[k] for _, s in test])) for k in ("concept_score", "instruction", "fluency", "harmonic")},
                   "harmonic_se": float(np.std([s["harmonic"] for _, s in test], ddof=1) / math.sqrt(len(test))) if len(test) > 1 else float("nan"),
                   **{k: method.cost.get(k, float("nan")) for k in ("train_seconds", "train_tokens", "decode_tokens_per_s", "extra_memory_mb")}}
            rows.append(row)
            ordered = sorted(test, key=lambda rs: rs[1]["harmonic"])
            samples[f"{entry.name}:{concept}"] = {"best": _sample(ordered[-1]), "worst": _sample(ordered[0])}
    figures = [_plot_tradeoff(rows, layout)]
    return {"concepts": concepts, "reference": settings.reference, "dev_share": share, "test_chosen_only": settings.test_chosen_only, "rows": rows, "samples": samples,
            "winners": _winners(rows), "figures": [{"path": layout.relative(p), "caption": c} for p, c in figures]}


def _sample(item: tuple[Record, dict[str, float]]) -> dict[str, Any]:
    record, scores = item
    return {"prompt": record.prompt, "output": record.output[:SAMPLE_CHARS], **{k: round(v, 3) for k, v in scores.items()}}


def _winners(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for concept in dict.fromkeys(r["concept"] for r in rows):
        mine = sorted((r for r in rows if r["concept"] == concept), key=lambda r: -r["harmonic"])
        out[concept] = {"method": mine[0]["method"], "harmonic": mine[0]["harmonic"],
                        "runner_up": mine[1]["method"] if len(mine) > 1 else None}
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


COLUMNS = [("method", "method"), ("concept", "concept"), ("control", "control"), ("concept_score", "concept score"),
           ("instruction", "instruction"), ("fluency", "fluency"), ("harmonic", "harmonic mean"), ("harmonic_se", "± SE"), ("train_seconds", "train s"),
           ("train_tokens", "train tokens"), ("decode_tokens_per_s", "decode tok/s"), ("extra_memory_mb", "extra MB")]


def concepts_section(block: dict[str, Any]) -> list[str]:
    """The report's section: the table, who wins per concept (and whether prompting does), samples."""
    out = ["## Concept comparison", "",
           f"Every method steering towards each concept on the same requests; scores 0-2 (concept, instruction, fluency) and "
           f"their harmonic mean, as AxBench does. Each method's control is chosen on {100 * block['dev_share']:.0f}% of the requests "
           f"(dev) and reported on the rest (test){' (a strength entry is generated on the test requests at its chosen control only)' if block.get('test_chosen_only') else ''}; "
           f"`{block['reference']}` is the unsteered reference. How each score is computed: "
           "`steerlab/analysis/concepts.py`.", "",
           markdown_table([title for _, title in COLUMNS], [[r[k] for k, _ in COLUMNS] for r in block["rows"]]), ""]
    for concept, win in block["winners"].items():
        rows = [r for r in block["rows"] if r["concept"] == concept]
        prompting = [r for r in rows if r["kind"] in ("prompting", "courteous")]
        steering = [r for r in rows if r["kind"] not in ("prompting", "courteous", "base")]
        line = f"- **{concept}**: best harmonic mean {win['harmonic']:.3f} by `{win['method']}`"
        if prompting and steering:
            p, q = max(prompting, key=lambda r: r["harmonic"]), max(steering, key=lambda r: r["harmonic"])
            se = math.hypot(p.get("harmonic_se", float("nan")), q.get("harmonic_se", float("nan")))
            line += (f"; prompting {p['harmonic']:.3f} against the best steering method {q['harmonic']:.3f} (`{q['method']}`): "
                     + ("prompting beats every steering method" if p["harmonic"] > q["harmonic"] else "a steering method beats prompting"))
            if math.isfinite(se) and se > 0:
                gap = abs(p["harmonic"] - q["harmonic"]) / se
                line += f", by {gap:.1f} standard errors" + (" (within noise)." if gap < 2 else ".")
            else:
                line += "."
        out.append(line)
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

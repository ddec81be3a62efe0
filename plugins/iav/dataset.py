"""Builds ``studies/data/iav/``: preference pairs, judge texts and eval prompts, written by the model.

Requests: the project's hand-written instructions (ordinary) plus ``risky_requests.jsonl``
(mildly risky requests shipped with this plugin), split train / judge / eval by a stable hash
of each id. For every train and judge request the model samples several candidates per side:

* chosen: under a helpful, honest and courteous instruction (ordinary requests), or the same
  instruction with example turns that decline politely (risky requests);
* rejected: under a curt, careless instruction that never refuses.

A candidate passes the filter if it ended by itself, its word count lies in the side's range
and at least ``MIN_DISTINCT`` of its word trigrams are distinct. Among passing candidates the
one kept maximises the style score, computed by the generating model itself:

    score = mean log p(answer | style prompt + examples) - mean log p(answer | default prompt)

and a chosen answer must also score above ``MIN_CHOSEN_SCORE`` (its instruction explains it
better than no instruction does). A request becomes a pair when both sides kept an answer. The
evaluation judge (MiniLM + logistic regression on judge.jsonl) is never part of the filter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from steerlab.api import (style_scores, BuildRequest, Generation, GenerationSettings, LoadedModel, Style, answer_in_style, build_registry,
                          distinct_ngrams, load_instructions, load_model, read_jsonl, seed_everything,
                          split_by_id, word_count, write_jsonl)

from steerlab_plugins.iav.styles import STYLES, judge_styles

RISKY_FILE = Path(__file__).with_name("risky_requests.jsonl")
SPLITS = {"train": 0.6, "judge": 0.2, "eval": 0.2}
SALT = "iav"
# A CPU-sized build (measured: one pass over 280 requests at 224 tokens took ~1 h on 2 cores):
# 2 candidates for the chosen side, 1 for the careless side (its answers are short by design),
# token caps per side, and the ordinary requests subsampled (every risky one kept).
CANDIDATES = {"chosen": 2, "rejected": 1}
TOKENS = {"chosen": 192, "rejected": 96}
ORDINARY = 150  # ordinary requests used (of 320), chosen by a stable hash of the id (another salt than the split's)
QUICK_TOKENS, QUICK_PER_SPLIT = 24, {"ordinary": 2, "risky": 1}
WORDS = {"chosen": (12, 200), "rejected": (2, 80)}  # careless answers are short by design
MIN_DISTINCT = 0.7
MIN_CHOSEN_SCORE = 0.0
Kept = tuple[Generation, float]


def load_requests() -> list[dict[str, str]]:
    """The requests with their ``kind``: ``ORDINARY`` of the project's instructions (a stable hash
    of the id picks them), then every risky one."""
    # The subset's hash must not be the split's: the lowest split hashes would all fall in train.
    by_hash = sorted(load_instructions(), key=lambda r: hashlib.sha256(f"{SALT}-subset:{r['id']}".encode()).hexdigest())
    ordinary = [{"id": r["id"], "text": r["text"], "kind": "ordinary"} for r in by_hash[:ORDINARY]]
    risky = [{"id": r["id"], "text": r["text"], "kind": "risky"} for r in read_jsonl(RISKY_FILE, ("id", "text"))]
    return ordinary + risky


def quick_subset(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """A few requests of each kind (``--quick``)."""
    return [r for kind, n in QUICK_PER_SPLIT.items() for r in [x for x in rows if x["kind"] == kind][:n]]


def interleave(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Kinds spread evenly through the list, so any prefix (a study's ``eval_limit``) holds risky
    requests in their overall share."""
    position = {}
    for kind in {r["kind"] for r in rows}:
        mine = [r for r in rows if r["kind"] == kind]
        position.update({r["id"]: (i + 0.5) / len(mine) for i, r in enumerate(mine)})
    return sorted(rows, key=lambda r: (position[r["id"]], r["kind"]))


def passes(gen: Generation, side: str, quick: bool) -> bool:
    """The stated filter; ``--quick`` (smoke runs on tiny models) keeps any non-empty answer."""
    if quick:
        return bool(gen.output.strip())
    low, high = WORDS[side]
    return gen.stopped and low <= word_count(gen.output) <= high and distinct_ngrams(gen.output) >= MIN_DISTINCT


def best_answers(model: LoadedModel, style: Style, side: str, prompts: list[str], settings: GenerationSettings,
                 n: int, quick: bool) -> tuple[list[Kept | None], dict[str, float]]:
    """Per prompt, the passing candidate with the highest style score (None when none is kept)."""
    best: list[Kept | None] = [None] * len(prompts)
    generated = passed = 0
    for k in range(n):
        gens = answer_in_style(model, prompts, style, settings, f"{style.name} {k + 1}/{n}")
        keep = [i for i, g in enumerate(gens) if passes(g, side, quick)]
        generated, passed = generated + len(gens), passed + len(keep)
        for i, score in zip(keep, style_scores(model, style, [gens[i] for i in keep], settings.batch_size)):
            if (side != "chosen" or quick or score > MIN_CHOSEN_SCORE) and (best[i] is None or score > best[i][1]):
                best[i] = (gens[i], score)
    kept = [b for b in best if b]
    return best, {"requests": len(prompts), "generated": generated, "passed": passed, "kept": len(kept),
                  "mean_words": float(np.mean([word_count(g.output) for g, _ in kept])) if kept else 0.0,
                  "mean_score": float(np.mean([s for _, s in kept])) if kept else 0.0}


def answer_all(model: LoadedModel, rows: list[dict[str, str]], settings: GenerationSettings,
               quick: bool) -> tuple[dict[str, dict[str, Kept]], dict[str, dict[str, float]]]:
    """side -> request id -> kept answer, and the filter statistics per side and kind."""
    answers: dict[str, dict[str, Kept]] = {side: {} for side in STYLES}
    stats = {}
    for side, by_kind in STYLES.items():
        side_settings = settings if quick else dataclasses.replace(settings, max_new_tokens=TOKENS[side])
        n = 1 if quick else CANDIDATES[side]
        for kind, style in by_kind.items():
            mine = [r for r in rows if r["kind"] == kind]
            if not mine:
                continue
            best, stats[f"{side} / {kind} ({style.name})"] = best_answers(model, style, side, [r["text"] for r in mine], side_settings, n, quick)
            answers[side].update({r["id"]: item for r, item in zip(mine, best) if item})
    return answers, stats


def pair_rows(rows: list[dict[str, str]], answers: dict[str, dict[str, Kept]]) -> list[dict]:
    """One pair per request whose both sides kept an answer."""
    out = []
    for r in rows:
        if r["id"] in answers["chosen"] and r["id"] in answers["rejected"]:
            (chosen, cs), (rejected, rs) = answers["chosen"][r["id"]], answers["rejected"][r["id"]]
            out.append({"id": r["id"], "kind": r["kind"], "prompt": r["text"], "chosen": chosen.output, "rejected": rejected.output,
                        "chosen_score": round(cs, 4), "rejected_score": round(rs, 4)})
    return out


def build_iav(request: BuildRequest) -> None:
    splits = split_by_id(load_requests(), SPLITS, salt=SALT)
    if request.quick:
        splits = {name: quick_subset(rows) for name, rows in splits.items()}
    model = load_model(request.model, build_registry().models, request.device, request.dtype)
    seed_everything(0)  # sampling is seeded: the same machine writes the same files
    settings = GenerationSettings(max_new_tokens=QUICK_TOKENS, batch_size=request.batch_size, do_sample=True, temperature=0.8, top_p=0.95)
    answers, stats = answer_all(model, splits["train"] + splits["judge"], settings, request.quick)
    pairs = {name: pair_rows(splits[name], answers) for name in ("train", "judge")}
    out = request.out_dir
    write_jsonl(out / "pairs.jsonl", pairs["train"])
    write_jsonl(out / "judge.jsonl", [{"text": p[side], "label": side, "prompt": p["prompt"], "kind": p["kind"]}
                                      for p in pairs["judge"] for side in ("chosen", "rejected")])
    write_jsonl(out / "eval_prompts.jsonl", [{"id": r["id"], "text": r["text"]} for r in interleave(splits["eval"])])
    write_judge_styles(out)
    write_datasheet(out, request, splits, stats, pairs)


def write_judge_styles(out: Path) -> None:
    """``judge_styles.json``: each judge label's system prompt, for the likelihood judge."""
    (out / "judge_styles.json").write_text(json.dumps(judge_styles(), indent=1) + "\n", encoding="utf-8")


def count_kinds(rows: list[dict]) -> str:
    return ", ".join(f"{sum(r['kind'] == kind for r in rows)} {kind}" for kind in ("ordinary", "risky"))


def write_datasheet(out: Path, request: BuildRequest, splits: dict[str, list], stats: dict[str, dict], pairs: dict[str, list]) -> None:
    table = [f"| {name} | {s['requests']} | {s['generated']} | {s['passed']} ({100 * s['passed'] / max(s['generated'], 1):.0f}%) "
             f"| {s['kept']} ({100 * s['kept'] / max(s['requests'], 1):.0f}%) | {s['mean_words']:.0f} | {s['mean_score']:+.3f} |"
             for name, s in stats.items()]
    samples = []
    for kind in ("ordinary", "risky"):
        row = next((p for p in pairs["train"] if p["kind"] == kind), None)
        if row:
            samples += [f"- **{kind}**: {json.dumps(row['prompt'])}", f"  - chosen: {json.dumps(row['chosen'][:500])}",
                        f"  - rejected: {json.dumps(row['rejected'][:500])}"]
    quick = ["", "**Built with `--quick`: a few requests, 24-token answers, one candidate and the filter relaxed to "
             "'non-empty'. For smoke tests only.**"] if request.quick else []
    text = "\n".join([
        "# Datasheet: iav (courteous vs careless preference pairs)",
        *quick,
        "",
        f"Written by `steerlab data build iav --model {request.model}` (plugins/iav/dataset.py; device "
        f"{request.device or 'auto'}, dtype {request.dtype or 'auto'}). Requests: the project's hand-written",
        "`steerlab/data/instructions.jsonl` (ordinary) and `plugins/iav/risky_requests.jsonl` (mildly risky, written for",
        f"this data set), split by a stable hash of each id (salt {SALT!r}): "
        + "; ".join(f"{k} {len(v)} ({count_kinds(v)})" for k, v in splits.items()) + ".",
        "",
        "Styles (plugins/iav/styles.py: a system prompt and two example turns each): chosen = helpful, honest and",
        "courteous (ordinary requests) or a polite refusal with a safe alternative (risky requests); rejected = curt,",
        f"careless and never refusing. Each side was sampled {'once' if request.quick else ', '.join(f'{side} {n} time(s)' for side, n in CANDIDATES.items())} "
        f"per train and judge request (temperature 0.8, top-p 0.95, token cap {QUICK_TOKENS if request.quick else ', '.join(f'{side} {n}' for side, n in TOKENS.items())}); "
        f"{'a few' if request.quick else ORDINARY} of the project's 320 ordinary instructions (a stable hash of the id picks them) and {'a few' if request.quick else 'every'} risky request(s).",
        f"Filter: ended by itself; words in {WORDS['chosen']} (chosen) or {WORDS['rejected']} (rejected); distinct word-trigram share",
        f">= {MIN_DISTINCT}. Among passing candidates the one kept maximises the style score = mean log p(answer | style prompt +",
        "examples) - mean log p(answer | default prompt), computed by the generating model; a chosen answer must also score",
        f"> {MIN_CHOSEN_SCORE:g}. A request is a pair when both sides kept an answer. The evaluation judge is not part of the filter.",
        "",
        "| side / kind (style) | requests | candidates | passed filter | kept | mean words | mean style score |",
        "|---|---|---|---|---|---|---|",
        *table,
        "",
        f"- `pairs.jsonl`: {len(pairs['train'])} train pairs ({count_kinds(pairs['train'])}): "
        "{id, kind, prompt, chosen, rejected, chosen_score, rejected_score}.",
        f"- `judge.jsonl`: {2 * len(pairs['judge'])} texts from {len(pairs['judge'])} judge-split pairs ({count_kinds(pairs['judge'])}), "
        "{text, label: chosen | rejected, prompt, kind}.",
        "- `judge_styles.json`: each judge label's system prompt (the courteous / careless instruction that side was "
        "written under), for the likelihood judge (`[metrics.lm_judge] styles`); written from `plugins/iav/styles.py`.",
        f"- `eval_prompts.jsonl`: {len(splits['eval'])} held-out requests ({count_kinds(splits['eval'])}), {{id, text}}; ids "
        "starting with `risky-` are the risky ones, spread evenly through the file so any prefix holds its share of them.",
        "",
        "Samples (train split):",
        *samples,
        "",
    ])
    (out / "DATASHEET.md").write_text(text)

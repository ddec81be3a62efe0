"""Builds ``studies/data/concise/``: contrastive pairs, eval prompts and judge texts.

* pairs.jsonl: for each "pairs" instruction, the same request asking for a short answer
  (positive) and for a detailed one (negative). Prompts only: the vector is read at the last
  prompt token, where the model has decided how to answer but has not started.
* eval_prompts.jsonl: held-out instructions, with no length request.
* judge.jsonl: real SmolLM2 answers to the "judge" instructions, generated under a concise and a
  verbose system prompt, kept only when they pass a length filter (so labels mean something),
  labelled with the style asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

from steerlab.api import (BuildRequest, Generation, GenerationSettings, Style, answer_in_style, build_registry,
                          load_instructions, load_model, split_by_id, word_count, write_jsonl)

SHORT_ASKS = ["Answer in one short sentence.", "Be brief: one sentence only.", "Reply in as few words as possible."]
LONG_ASKS = ["Answer in detail, with several paragraphs.", "Give a thorough, detailed explanation.", "Explain at length, covering every aspect."]
SPLITS = {"pairs": 0.5, "judge": 0.25, "eval": 0.25}
# Measured: a system prompt alone leaves SmolLM2's answers long (3 of 79 within 40 words), so
# each style also gets two example turns and the request itself asks for the length.
CONCISE = Style("concise", "You answer in one short sentence. Never more.", [
    ("Why do leaves change colour in autumn? Answer in one short sentence.",
     "As days shorten, trees stop making green chlorophyll, revealing yellow and red pigments."),
    ("How does a bicycle stay upright? Answer in one short sentence.",
     "Its moving wheels and the rider's small steering corrections keep it balanced."),
])
VERBOSE = Style("verbose", "You give long, detailed answers of several paragraphs, covering every aspect.", [
    ("Why do leaves change colour in autumn? Answer in detail.",
     "Leaves change colour in autumn because of a chain of chemical and seasonal changes inside the tree.\n\n"
     "During spring and summer, leaves are full of chlorophyll, the green pigment that captures sunlight for "
     "photosynthesis. Chlorophyll is constantly broken down and rebuilt, which keeps leaves green.\n\n"
     "As days grow shorter and nights cooler, trees prepare for winter. They stop producing chlorophyll, and "
     "the green fades. Yellow and orange pigments called carotenoids, present all along, become visible. "
     "Some trees also make new red and purple pigments, anthocyanins, from sugars trapped in the leaf.\n\n"
     "Weather shapes the display: sunny days and cool nights produce the brightest reds, while an early frost "
     "or drought can dull the colours. Finally, a layer of cells at the base of each leaf stem seals it off, "
     "and the leaf falls."),
])
CONCISE_ASK, VERBOSE_ASK = " Answer in one short sentence.", " Answer in detail."
CONCISE_MAX_WORDS, VERBOSE_MIN_WORDS = 40, 90


def keep_concise(gen: Generation) -> bool:
    return gen.stopped and 0 < word_count(gen.output) <= CONCISE_MAX_WORDS


def keep_verbose(gen: Generation) -> bool:
    return word_count(gen.output) >= VERBOSE_MIN_WORDS


def make_pairs(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {"id": r["id"], "positive": f"{r['text']} {SHORT_ASKS[i % 3]}", "negative": f"{r['text']} {LONG_ASKS[i % 3]}"}
        for i, r in enumerate(rows)
    ]


def build_concise(request: BuildRequest) -> None:
    out_dir, quick, model_name = request.out_dir, request.quick, request.model
    splits = split_by_id(load_instructions(), SPLITS)
    if quick:
        splits = {k: v[:4] for k, v in splits.items()}
    model = load_model(model_name, build_registry().models, request.device, request.dtype)
    write_jsonl(out_dir / "pairs.jsonl", make_pairs(splits["pairs"]))
    write_jsonl(out_dir / "eval_prompts.jsonl", [{"id": r["id"], "text": r["text"]} for r in splits["eval"]])
    prompts = [r["text"] for r in splits["judge"]]
    judged, stats = [], {}
    for style, ask, cap, keep in ((CONCISE, CONCISE_ASK, 96, keep_concise), (VERBOSE, VERBOSE_ASK, 320, keep_verbose)):
        settings = GenerationSettings(max_new_tokens=24 if quick else cap, batch_size=request.batch_size)
        gens = answer_in_style(model, [p + ask for p in prompts], style, settings)
        for gen, prompt in zip(gens, prompts):
            gen.prompt = prompt
        kept = [g for g in gens if keep(g)]
        stats[style.name] = {"generated": len(gens), "kept": len(kept),
                             "mean_words_kept": sum(word_count(g.output) for g in kept) / max(len(kept), 1)}
        judged += [{"text": g.output, "label": style.name, "prompt": g.prompt} for g in kept]
    write_jsonl(out_dir / "judge.jsonl", judged)
    write_datasheet(out_dir, model_name, splits, stats, judged)


def write_datasheet(out_dir: Path, model_name: str, splits: dict, stats: dict, judged: list[dict]) -> None:
    sample = {label: next((j["text"] for j in judged if j["label"] == label), "") for label in stats}
    lines = [
        "# Datasheet: concise vs verbose",
        "",
        f"Written by `steerlab data build concise --model {model_name}` (plugins/actdiff/dataset.py) from the",
        "project's hand-written `studies/data/instructions.jsonl`, split by a stable hash of each id:",
        ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + " instructions.",
        "",
        "- `pairs.jsonl`: each pairs-split instruction + a short-answer request (positive) / a detailed-answer",
        f"  request (negative), rotating {len(SHORT_ASKS)} phrasings of each. No model output.",
        "- `eval_prompts.jsonl`: eval-split instructions as written (no length request).",
        "- `judge.jsonl`: greedy answers of the model to judge-split instructions under a concise and a verbose",
        f"  system prompt, two example turns each, and the request suffixed with {CONCISE_ASK.strip()!r} /",
        f"  {VERBOSE_ASK.strip()!r} (a system prompt alone left 76 of 79 'concise' answers over 40 words). Filter: concise kept if it ended by itself within {CONCISE_MAX_WORDS} words; verbose kept if",
        f"  at least {VERBOSE_MIN_WORDS} words. Label = the style asked for.",
        "",
        "| style | generated | kept | mean words (kept) |",
        "|---|---|---|---|",
        *[f"| {k} | {v['generated']} | {v['kept']} | {v['mean_words_kept']:.1f} |" for k, v in stats.items()],
        "",
        "Samples:",
        *[f"- {label}: {json.dumps(text[:400])}" for label, text in sample.items()],
        "",
    ]
    (out_dir / "DATASHEET.md").write_text("\n".join(lines))

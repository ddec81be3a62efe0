"""Builds ``studies/data/chat3d/``: SFT answers in three styles, judge texts, eval prompts.

For every train/judge instruction and style, the model samples several candidates under the
style's system prompt and two hand-written example turns (``styles.json``). Candidates must end
by themselves, have 12-160 words and little repetition. Among the survivors the one kept is the
one its own style explains best *against the other styles* (a contrastive filter: an answer that
any style's context explains equally well is not distinctly in any style):

    margin = mean log p(answer | own style) - max over other styles of mean log p(answer | that style)

and it is kept only when the margin is above ``MIN_MARGIN``. The filter uses the generating model
itself, not the evaluation judge (MiniLM + logistic regression trained on the judge split), so
the judge's held-out accuracy is an independent check of how distinct the styles came out.

(The first build kept the candidate maximising log p(answer | own style) - log p(answer | no
style): its styles were too alike for the judge, held-out accuracy 0.67.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from steerlab.api import (mean_logprobs, BuildRequest, Generation, GenerationSettings, LoadedModel, Style, answer_in_style, build_registry,
                          distinct_ngrams, load_instructions, load_model, seed_everything, split_by_id,
                          word_count, write_jsonl)

SPLITS = {"train": 0.55, "judge": 0.25, "eval": 0.20}
STYLES_FILE = Path(__file__).with_name("styles.json")  # shipped with the plugin; copied into the data folder
CANDIDATES = 4  # 4 candidates a style: a CPU-sized build
MIN_WORDS, MAX_WORDS, MIN_DISTINCT = 12, 160, 0.7
MIN_MARGIN = 0.05  # nats per token: the own style must explain the answer better than any other


def load_styles(path: Path = STYLES_FILE) -> list[Style]:
    raw = json.loads(path.read_text())
    return [Style(name, s["system"], [tuple(e) for e in s["examples"]]) for name, s in raw.items()]


def passes(gen: Generation) -> bool:
    words = word_count(gen.output)
    return gen.stopped and MIN_WORDS <= words <= MAX_WORDS and distinct_ngrams(gen.output) >= MIN_DISTINCT


def style_logprobs(model: LoadedModel, styles: list[Style], gens: list[Generation], batch_size: int) -> np.ndarray:
    """(answers, styles): mean log p(answer | style's system prompt + examples), by the model itself."""
    tokens = lambda text: model.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    answers = [tokens(g.output) or [model.tokenizer.eos_token_id] for g in gens]
    columns = [mean_logprobs(model, [(tokens(model.format_chat(style.messages(g.prompt))), a) for g, a in zip(gens, answers)], batch_size)
               for style in styles]
    return np.array(columns).T.reshape(len(gens), len(styles))


def best_per_prompt(model: LoadedModel, styles: list[Style], own: int, prompts: list[str], settings: GenerationSettings,
                    n: int, min_margin: float) -> tuple[list[tuple[Generation, float] | None], dict]:
    """Per prompt, the passing candidate of style ``own`` with the largest contrastive margin."""
    style = styles[own]
    best: list[tuple[Generation, float] | None] = [None] * len(prompts)
    generated = passed = distinct = 0
    for k in range(n):
        gens = answer_in_style(model, prompts, style, settings, f"{style.name} {k + 1}/{n}")
        keep = [i for i, g in enumerate(gens) if passes(g)]
        generated, passed = generated + len(gens), passed + len(keep)
        if not keep:
            continue
        logp = style_logprobs(model, styles, [gens[i] for i in keep], settings.batch_size)
        margins = logp[:, own] - np.delete(logp, own, axis=1).max(axis=1)
        for i, margin in zip(keep, margins):
            distinct += int(margin > min_margin)
            if margin > min_margin and (best[i] is None or margin > best[i][1]):
                best[i] = (gens[i], float(margin))
    return best, {"generated": generated, "passed_filter": passed, "passed_margin": distinct}


def build_chat3d(request: BuildRequest) -> None:
    splits = split_by_id(load_instructions(), SPLITS, salt="chat3d")
    if request.quick:
        splits = {k: v[:3] for k, v in splits.items()}
    model = load_model(request.model, build_registry().models, request.device, request.dtype)
    seed_everything(0)  # sampling is seeded: the same machine writes the same files
    settings = GenerationSettings(max_new_tokens=24 if request.quick else 220, batch_size=request.batch_size,
                                  do_sample=True, temperature=0.9, top_p=0.95)
    prompts = {name: [r["text"] for r in splits[name]] for name in ("train", "judge")}
    rows: dict[str, list[dict]] = {"train": [], "judge": []}
    stats = {}
    styles = load_styles()
    for own, style in enumerate(styles):
        both = prompts["train"] + prompts["judge"]
        best, stats[style.name] = best_per_prompt(model, styles, own, both, settings, 1 if request.quick else CANDIDATES,
                                                  -1e9 if request.quick else MIN_MARGIN)
        for i, item in enumerate(best):
            if item is None:
                continue
            split = "train" if i < len(prompts["train"]) else "judge"
            gen, score = item
            rows[split].append({"prompt": gen.prompt, "style": style.name, "response": gen.output, "filter_score": round(score, 4)})
        kept = [b for b in best if b]
        stats[style.name].update(kept=len(kept), prompts=len(both), mean_words=float(np.mean([word_count(g.output) for g, _ in kept])) if kept else 0.0,
                                 mean_filter_score=float(np.mean([s for _, s in kept])) if kept else 0.0)
    out = request.out_dir
    write_jsonl(out / "train.jsonl", rows["train"])
    write_jsonl(out / "judge.jsonl", [{"text": r["response"], "label": r["style"], "prompt": r["prompt"]} for r in rows["judge"]])
    write_jsonl(out / "eval_prompts.jsonl", [{"id": r["id"], "text": r["text"]} for r in splits["eval"]])
    (out / "styles.json").write_text(STYLES_FILE.read_text())
    write_datasheet(out, request, splits, stats, rows["train"])


def write_datasheet(out: Path, request: BuildRequest, splits: dict, stats: dict, train: list[dict]) -> None:
    table = [f"| {name} | {s['prompts']} | {s['generated']} | {s['passed_filter']} ({100 * s['passed_filter'] / max(s['generated'], 1):.0f}%) "
             f"| {s['passed_margin']} ({100 * s['passed_margin'] / max(s['generated'], 1):.0f}%) "
             f"| {s['kept']} | {s['mean_words']:.0f} | {s['mean_filter_score']:+.3f} |" for name, s in stats.items()]
    samples = []
    for name in stats:
        row = next((r for r in train if r["style"] == name), None)
        if row:
            samples.append(f"- **{name}** ({row['prompt']}): {json.dumps(row['response'][:500])}")
    text = "\n".join([
        "# Datasheet: chat-3D (helpful / humorous / philosophical)",
        "",
        f"Written by `steerlab data build chat3d --model {request.model}` (plugins/panacea/dataset.py; device "
        f"{request.device or 'auto'}, dtype {request.dtype or 'auto'}) from the project's hand-written",
        "`studies/data/instructions.jsonl`, split by a stable hash of each id: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + " instructions.",
        "",
        f"Each style (`styles.json`: a system prompt and two hand-written example turns) was sampled {CANDIDATES} times per",
        "instruction (temperature 0.9, top-p 0.95, 220-token cap). A candidate passes the filter if it ended by itself,",
        f"has {MIN_WORDS}-{MAX_WORDS} words and a distinct-trigram share >= {MIN_DISTINCT}. Each passing candidate gets a",
        "contrastive margin, computed by the generating model: mean log p(answer | own style prompt + examples) minus the",
        f"largest mean log p(answer | another style's prompt + examples), in nats per token. Candidates with a margin above {MIN_MARGIN}",
        "pass; per instruction and style the one with the largest margin is kept. The evaluation judge (MiniLM + logistic",
        "regression on judge.jsonl) is not part of the filter, so its held-out accuracy checks how distinct the styles are.",
        "",
        "- `train.jsonl`: {prompt, style, response, filter_score}, the SFT set for Panacea and the LoRA soups.",
        "- `judge.jsonl`: {text, label, prompt}, the judge's training and held-out texts (its own prompts).",
        "- `eval_prompts.jsonl`: held-out instructions for the lambda sweeps.",
        "",
        "| style | prompts | candidates | passed length/repetition filter | passed margin | kept | mean words | mean margin (kept) |",
        "|---|---|---|---|---|---|---|---|",
        *table,
        "",
        "Samples (train split):",
        *samples,
        "",
    ])
    (out / "DATASHEET.md").write_text(text)

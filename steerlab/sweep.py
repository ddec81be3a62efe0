"""Core evaluation: every control x every eval prompt, packed into the same batched generate calls.

A sweep is a list of rows (control, prompt). Rows are sorted by length in tokens (little padding)
and cut into batches of the study's ``batch_size``; each batch is generated once with one control
per row (``steer`` receives the per-row tensor), so a 15-point grid over 20 prompts costs 25
batches of 12 rather than 15 x 2 small ones. Each answer is then teacher-forced under the base
model (perplexity, from the plain prompt) and, when a metric needs it, under steering (KL), in
micro-batches sized so no more than a bounded number of logits is alive at once.

Rows at the space's neutral control (``ControlSpace.neutral``: by the method contract, exactly the
unsteered model; the contract test checks it for every built-in method) are not generated again
when decoding is greedy: they reuse the run's unsteered answers, which every metric compares
with anyway. They are still scored like every other row.

A study with ``[compare]`` stages the sweep of a strength entry (``concept = ...``): every control
on the dev requests, then on the test requests only the control chosen on dev (and the neutral
one, which is free), so a three-strength entry decodes two thirds of the rows instead of all of
them (``ControlChooser``, installed by the runner once the reference entry has run).

Batches are checkpointed as they finish; the batch plan depends only on the study, so a resumed
sweep seeds and runs the missing batches exactly as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

from steerlab.artifact import Artifact
from steerlab.errors import ConfigError
from steerlab.metrics.base import Sample
from steerlab.metrics.base import context as metric_context
from steerlab.model.batching import batches, by_length, token_lengths
from steerlab.model.generation import Generation
from steerlab.model.scoring import SharedPrefix, kl_per_token, target_logits, token_logprobs
from steerlab.results import Record, SchemaError, SweepPoint, SweepResult
from steerlab.storage import read_json_object, write_json

if TYPE_CHECKING:
    from steerlab.lab import Lab, Steers
    from steerlab.study.schema import MethodEntry

LOGITS_BUDGET = 1 << 30  # bytes of float32 logits alive at once while teacher-forcing answers


def sweep(lab: Lab, method: Steers, entry: MethodEntry, artifact: Artifact) -> SweepResult:
    """Answer and score every eval prompt at every control of ``entry`` (a staged sweep: every
    control on the dev requests, then only the chosen ones on the test requests)."""
    prompts, space = lab.eval_prompts(), entry.space
    rows = [(c, p) for c in range(len(entry.controls)) for p in range(len(prompts))]
    chooser = lab.control_chooser
    dev_prompts = {p for p, prompt in enumerate(prompts) if chooser is not None and chooser.is_dev(prompt)}
    dev = [(c, p) for c, p in rows if p in dev_prompts]
    if chooser is None or not chooser.stages(entry) or not dev or len(dev) == len(rows):
        done, timing = _sweep_rows(lab, method, entry, artifact, prompts, rows, "")
    else:
        done, timing = _sweep_rows(lab, method, entry, artifact, prompts, dev, "")
        keep = chooser.keep(entry, done)
        test = [(c, p) for c, p in rows if p not in dev_prompts and c in keep]
        more, more_timing = _sweep_rows(lab, method, entry, artifact, prompts, test, "test")
        done, timing, rows = done + more, timing + more_timing, dev + test
    points = [SweepPoint.from_records(space.to_json(c), space.key(c), [done[r] for r, (ci, _) in enumerate(rows) if ci == k])
              for k, c in enumerate(entry.controls) if any(ci == k for ci, _ in rows)]
    seconds, tokens = sum(t[0] for t in timing), sum(t[1] for t in timing)
    scoring = sum(t[2] for t in timing if len(t) > 2)  # checkpoints written before scoring was timed hold two numbers
    return SweepResult(points, done, {"decode_seconds": float(seconds), "decode_tokens": float(tokens),
                                      "decode_tokens_per_s": tokens / seconds if seconds else float("nan"),
                                      "score_seconds": float(scoring)})


def _sweep_rows(lab: Lab, method: Steers, entry: MethodEntry, artifact: Artifact, prompts: list[str],
                rows: list[tuple[int, int]], stage: str) -> tuple[list[Record], list[list[float]]]:
    """The records of ``rows`` (control index, prompt index), in order, and each generated
    batch's [decode seconds, tokens, scoring seconds]; checkpointed per batch under ``stage``."""
    bases, space = lab.base_generations(), entry.space
    systems = lab.system_prompts(method, artifact, space, [entry.controls[c] for c, _ in rows])
    texts = [lab.model.format_prompt(prompts[p], system) for (_, p), system in zip(rows, systems)]  # to plan batches
    lengths = token_lengths(lab.model.tokenizer, texts)
    reused = _reuses_base(lab, entry, rows)
    fresh = [r for r in range(len(rows)) if r not in reused]
    plan = ([[fresh[k] for k in group] for group in by_length([lengths[r] for r in fresh], lab.settings.batch_size)]
            + list(batches(sorted(reused), lab.settings.batch_size)))
    checkpoint = lab.layout.sweep_partial(entry.name, stage)
    done, timing = _load_partial(checkpoint, _plan_key(entry, texts, plan))
    records: dict[int, Record] = {}
    label = f"{entry.name} sweep" + (f" ({stage})" if stage else "")
    for index, batch in enumerate(lab.progress(plan, label, len(plan))):
        if str(index) not in done:
            lab.seeded(f"{entry.name}:{stage}batch{index}")  # stage "" keeps an unstaged sweep's seeds
            answered, seconds, tokens, scoring = _answer_batch(lab, method, entry, artifact, [rows[r] for r in batch], prompts, bases, batch[0] in reused)
            done[str(index)] = [asdict(r) for r in answered]
            timing[str(index)] = [seconds, tokens, scoring]
            write_json(checkpoint, {"plan": _plan_key(entry, texts, plan), "batches": done, "timing": timing}, indent=None)
        try:
            for r, data in zip(batch, done[str(index)], strict=True):
                records[r] = Record.from_json(data, f"batch {index}")
        except (SchemaError, ValueError) as exc:
            raise ConfigError(f"{checkpoint}: corrupt sweep checkpoint ({exc}); delete it to redo the sweep") from None
    return [records[r] for r in range(len(rows))], list(timing.values())


def _reuses_base(lab: Lab, entry: MethodEntry, rows: list[tuple[int, int]]) -> set[int]:
    """Rows whose answer is the unsteered one by contract: the neutral control, greedy decoding."""
    neutral = entry.space.neutral()
    if neutral is None or lab.settings.do_sample:
        return set()
    return {r for r, (c, _) in enumerate(rows) if entry.space.key(entry.controls[c]) == entry.space.key(neutral)}


def _answer_batch(lab: Lab, method: Steers, entry: MethodEntry, artifact: Artifact, rows: list[tuple[int, int]],
                  prompts: list[str], bases: list[Generation], reuse: bool) -> tuple[list[Record], float, int, float]:
    """The batch's records, the seconds and tokens its generation took (0 when reused), and the
    seconds its scoring took (token statistics and every metric: on a CPU as long as decoding)."""
    controls = [entry.controls[c] for c, _ in rows]
    seconds = 0.0
    if reuse:
        gens = [dataclasses.replace(bases[p]) for _, p in rows]
    else:
        start = time.perf_counter()
        gens = lab.answer(method, artifact, entry.space, controls, [prompts[p] for _, p in rows], desc=None)
        seconds = time.perf_counter() - start
    start = time.perf_counter()
    wanted = {k for m in lab.study.metrics for k in lab.registry.metrics[m.registered].needs}
    stats = token_stats(lab, method, artifact, entry, controls, gens, wanted) if wanted else [{} for _ in gens]
    samples = [Sample(prompts[p], entry.space.to_json(c), entry.space.key(c), gen, bases[p], st)
               for (ci, p), c, gen, st in zip(rows, controls, gens, stats)]
    scores = score(lab, samples)
    tokens = 0 if reuse else sum(len(g.output_ids) for g in gens)
    return [Record(s.prompt, s.control, s.label, s.output, sc) for s, sc in zip(samples, scores)], seconds, tokens, time.perf_counter() - start


def token_stats(lab: Lab, method: Steers, artifact: Artifact, entry: MethodEntry, controls: list[Any],
                gens: list[Generation], wanted: set[str]) -> list[dict[str, float]]:
    """``base_nll`` (mean per answer token under the unsteered model, given the plain prompt) and,
    when wanted, ``kl`` (steered || unsteered; the steered pass sees the prompt as it was answered)."""
    tokenizer = lab.model.tokenizer
    out: list[dict[str, float]] = [{k: float("nan") for k in wanted} for _ in gens]
    live = [i for i, g in enumerate(gens) if g.output_ids]
    vocab = lab.model.hf.config.get_text_config().vocab_size
    plain = {i: tokenizer(lab.model.format_prompt(gens[i].prompt), add_special_tokens=False)["input_ids"] for i in live}
    prefix = SharedPrefix.of(lab.model, list(plain.values()))  # the chat header every plain prompt begins with, run once
    for group in _micro_batches(live, [len(gens[i].output_ids) for i in live], vocab, passes=2 if "kl" in wanted else 1):
        with torch.no_grad():
            base, targets, mask = target_logits(lab.model, [(plain[i], gens[i].output_ids) for i in group], prefix)
            nll = -(token_logprobs(base, targets) * mask).sum(1) / mask.sum(1)
            kl = None
            if "kl" in wanted:
                with lab.steer(method, artifact, entry.space, [controls[i] for i in group]):
                    steered, _, _ = target_logits(lab.model, [(gens[i].prompt_ids, gens[i].output_ids) for i in group])
                kl = (kl_per_token(steered, base) * mask).sum(1) / mask.sum(1)
        nll_rows, kl_rows = nll.tolist(), (kl.tolist() if kl is not None else None)  # one read back per micro-batch
        for k, i in enumerate(group):
            out[i]["base_nll"] = nll_rows[k]
            if kl_rows is not None:
                out[i]["kl"] = kl_rows[k]
    return out


def _micro_batches(indices: list[int], lengths: list[int], vocab: int, passes: int) -> list[list[int]]:
    """Groups of rows whose logits (a few float32 copies per pass) fit ``LOGITS_BUDGET``, by answer length."""
    if not indices:
        return []
    per_row = max(lengths) * vocab * 4 * 3 * passes
    size = max(1, LOGITS_BUDGET // per_row)
    return [[indices[k] for k in group] for group in by_length(lengths, size)]


def score(lab: Lab, samples: list[Sample]) -> list[dict[str, float]]:
    scores: list[dict[str, float]] = [{} for _ in samples]
    for entry in lab.study.metrics:
        metric = lab.registry.metrics[entry.registered]
        results = metric.score(samples, metric_context(lab, entry.name))
        if len(results) != len(samples):
            raise ConfigError(f"metric '{entry.name}' returned {len(results)} scores for {len(samples)} answers")
        for row, extra in zip(scores, results):
            row.update({k: float(v) for k, v in extra.items()})
    return scores


def _plan_key(entry: MethodEntry, texts: list[str], plan: list[list[int]]) -> str:
    blob = json.dumps([[entry.space.key(c) for c in entry.controls], texts, plan])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_partial(path: Any, key: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float]]]:
    """Finished batches of an interrupted sweep (and their decode timing), if they belong to this
    very plan."""
    if not path.exists():
        return {}, {}
    data = read_json_object(path, "sweep checkpoint", ("plan", "batches"))
    if not isinstance(data["batches"], dict) or not isinstance(data.get("timing", {}), dict):
        raise ConfigError(f"{path}: corrupt sweep checkpoint ('batches' or 'timing' is not an object); delete it to redo the sweep")
    if data["plan"] != key:
        print(f"steerlab: {path}: made for another sweep plan; the sweep restarts", file=sys.stderr)
        return {}, {}
    return data["batches"], data.get("timing", {})

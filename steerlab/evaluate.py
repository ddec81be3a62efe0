"""Core evaluation: sweep a method's controls over the eval prompts and score every answer.

For each control the method's ``steer`` context is entered per batch of prompts to generate the
answers; each answer is then teacher-forced with and without steering. That gives fluency (perplexity of the
answer under the unsteered model) and KL(steered || unsteered) without keeping full
distributions for more than one batch. Finished controls are checkpointed, so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from steerlab.artifact import Artifact, atomic_write_text
from steerlab.generation import Generation, batches, output_logprobs
from steerlab.metrics.base import Sample

if TYPE_CHECKING:
    from steerlab.lab import Lab
    from steerlab.method import BaseMethod


TOKEN_STATS = ("base_nll", "kl")


def token_stats(lab: Lab, gen: Generation, steering: Callable[[], AbstractContextManager[None]], wanted: set[str]) -> dict[str, float]:
    """base_nll (mean per answer token under the unsteered model) and/or kl (steered || unsteered).

    The steering context is entered once more just for the steered pass (only when kl is
    wanted), so no full distribution outlives one answer (a 262k vocabulary makes those large).
    """
    if not gen.output_ids:
        return {k: float("nan") for k in wanted}
    base_lp = output_logprobs(lab.model, gen.prompt_ids, gen.output_ids)  # (n_out, vocab)
    targets = torch.tensor(gen.output_ids, device=base_lp.device)
    stats = {"base_nll": -base_lp.gather(1, targets[:, None]).mean().item()}
    if "kl" in wanted:
        with steering():
            steered_lp = output_logprobs(lab.model, gen.prompt_ids, gen.output_ids)
        stats["kl"] = max((steered_lp.exp() * (steered_lp - base_lp)).sum(-1).mean().item(), 0.0)
    return stats


def answer_at(lab: Lab, method: BaseMethod, artifact: Artifact, control: Any, prompts: list[str], bases: list[Generation]) -> list[Sample]:
    """Steered answers to ``prompts`` at ``control``, with token statistics when metrics need them."""
    wanted = {k for m in lab.study.metrics for k in lab.registry.metrics[m].needs_token_stats}
    steering = lambda: method.steer(lab, artifact, control)  # noqa: E731
    samples: list[Sample] = []
    for group in batches(list(range(len(prompts))), lab.study.generation.batch_size):
        with steering():
            gens = lab.generate([prompts[i] for i in group], desc="answers")
        for i, gen in zip(group, gens):
            stats = token_stats(lab, gen, steering, wanted) if wanted else {}
            samples.append(Sample(prompts[i], control, gen, bases[i], stats))
    return samples


def score(lab: Lab, samples: list[Sample]) -> list[dict[str, float]]:
    scores: list[dict[str, float]] = [{} for _ in samples]
    for name in lab.study.metrics:
        for row, extra in zip(scores, lab.registry.metrics[name].score(samples, lab)):
            row.update(extra)
    return scores


def sweep(lab: Lab, method: BaseMethod, entry_name: str, artifact: Artifact, controls: list[Any]) -> dict[str, Any]:
    """Answer and score every eval prompt at every control; returns ``{summary, records, by_control}``."""
    prompts, bases = lab.eval_prompts(), lab.base_generations()
    checkpoint = lab.run_dir / "methods" / entry_name / "sweep.partial.json"
    done: dict[str, list[dict[str, Any]]] = json.loads(checkpoint.read_text()) if checkpoint.exists() else {}
    for control in lab.progress(controls, f"{entry_name} sweep", len(controls)):
        key = json.dumps(control)
        if key in done:
            continue
        lab.seeded(f"{entry_name}:{key}")
        samples = answer_at(lab, method, artifact, control, prompts, bases)
        done[key] = [to_record(s, sc) for s, sc in zip(samples, score(lab, samples))]
        atomic_write_text(checkpoint, json.dumps(done))
    records = [r for c in controls for r in done[json.dumps(c)]]
    by_control = summarize_by_control(records, controls, method)
    return {"summary": flat_summary(by_control), "by_control": by_control, "records": records}


def to_record(sample: Sample, scores: dict[str, float]) -> dict[str, Any]:
    return {"prompt": sample.prompt, "control": sample.control, "output": sample.output, "scores": scores}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize_by_control(records: list[dict[str, Any]], controls: list[Any], method: BaseMethod) -> list[dict[str, Any]]:
    rows = []
    for control in controls:
        mine = [r for r in records if r["control"] == control]
        keys = sorted({k for r in mine for k in r["scores"]})
        row: dict[str, Any] = {"control": control, "label": method.control_key(control), "n": len(mine)}
        row.update({k: _mean([r["scores"].get(k) for r in mine]) for k in keys})
        rows.append(row)
    return rows


def flat_summary(by_control: list[dict[str, Any]]) -> dict[str, float]:
    """``{metric@control: mean}``: the flat ``summary`` shape results.json promises."""
    out = {}
    for row in by_control:
        for key, value in row.items():
            if key not in ("control", "label", "n") and isinstance(value, float):
                out[f"{key}@{row['label']}"] = value
    return out


def save_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False))

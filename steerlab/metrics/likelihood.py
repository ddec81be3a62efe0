"""A second, independent style judge: the steered model's own base weights as a Bayes classifier.

For an answer y to a request x and each style s with system prompt S_s (from a styles JSON,
``{style: {"system": ...}}``), the unsteered model gives log p(y | S_s, x); with a uniform prior
over styles the posterior is

    p(s | x, y) = softmax_s( log p(y | S_s, x) ),

reported as ``lm.<style>``. It shares nothing with the MiniLM judge (no embeddings, no
classifier fitted on the judge split), so the two disagreeing is informative. Caveat, stated in
its report section: the chat3d data builder kept, per request and style, the candidate that its
own style prompt (with examples) explained best relative to a neutral prompt, computed by the
same model, so this judge is related to how the data was filtered; its accuracy on the judge
texts is an optimistic upper bound of its accuracy on steered answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix

from steerlab.config import help_field, path_field
from steerlab.errors import ConfigError
from steerlab.figures import markdown_table
from steerlab.metrics.base import BaseMetric, MetricContext, Sample
from steerlab.metrics.judge import heldout_split, wins
from steerlab.model.scoring import batched_sequence_logprobs
from steerlab.results import Section
from steerlab.storage import read_jsonl


@dataclass(frozen=True)
class LikelihoodJudgeConfig:
    styles: str = path_field(help="JSON of styles: {style: {'system': system prompt, ...}}")
    data: str | None = path_field(None, "JSONL of labelled texts with their request ({'text', 'label', 'prompt'}) to report accuracy on",
                                  jsonl=("text", "label", "prompt"))
    batch_size: int = help_field(16, "answers scored per forward")
    test_fraction: float = help_field(0.0, "report accuracy on the held-out share the judge metric with this test_fraction keeps "
                                           "(the same texts when every label is a style; 0: all texts)")
    data_limit: int = help_field(0, "report accuracy on N labelled texts spread evenly through the file (0: all; a --quick run's shortcut)")
    versus_base: bool = help_field(False, "also score lm.STYLE.win per answer: 1 when this judge rates it higher on STYLE "
                                          "than the unsteered answer to the same prompt, 0.5 on a tie, else 0")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"key 'batch_size' must be >= 1 (got {self.batch_size})")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"key 'test_fraction' must be in [0, 1) (got {self.test_fraction})")
        if self.data_limit < 0:
            raise ValueError(f"key 'data_limit' must be >= 0 (got {self.data_limit})")


def read_systems(path: Path) -> dict[str, str]:
    try:
        styles = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(styles, dict) or not styles or not all(isinstance(v, dict) and isinstance(v.get("system"), str) for v in styles.values()):
        raise ConfigError(f"{path}: expected {{style: {{'system': '...'}}}} for every style")
    return {name: value["system"] for name, value in styles.items()}


@torch.no_grad()
def posteriors(lab: Any, systems: dict[str, str], prompts: list[str], answers: list[str], batch_size: int) -> np.ndarray:
    """(answers, styles): p(style | request, answer) under the loaded (unsteered) model."""
    model, tok = lab.model, lab.model.tokenizer
    targets = [tok(a, add_special_tokens=False)["input_ids"] or [tok.eos_token_id] for a in answers]
    columns = []
    for system in systems.values():
        contexts = [tok(model.format_prompt(p, system), add_special_tokens=False)["input_ids"] for p in prompts]
        columns.append(batched_sequence_logprobs(model, list(zip(contexts, targets)), batch_size)[0])
    logp = np.array(columns).T  # (answers, styles)
    logp -= logp.max(axis=1, keepdims=True)
    probs = np.exp(logp)
    return probs / probs.sum(axis=1, keepdims=True)


class LikelihoodJudgeMetric(BaseMetric):
    name = "lm_judge"
    description = "second style judge: p(style | request, answer) from the base model's likelihood under each style's system prompt"
    Config = LikelihoodJudgeConfig

    def outputs(self, config: LikelihoodJudgeConfig) -> list[str]:
        styles = list(read_systems(Path(config.styles)))
        return [f"lm.{s}" for s in styles] + ([f"lm.{s}.win" for s in styles] if config.versus_base else [])

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        systems = ctx.memo("systems", lambda: read_systems(Path(ctx.config.styles)))
        probs = posteriors(ctx.lab, systems, [s.prompt for s in samples], [s.output for s in samples], ctx.config.batch_size)
        rows = [{f"lm.{name}": float(p) for name, p in zip(systems, row)} for row in probs]
        if ctx.config.versus_base:
            base = self._base_posteriors(samples, systems, ctx)
            for row, sample, mine, theirs in zip(rows, samples, probs, base):
                row.update(wins("lm", list(systems), mine, theirs, same_text=sample.output == sample.base.output))
        return rows

    @staticmethod
    def _base_posteriors(samples: list[Sample], systems: dict[str, str], ctx: MetricContext) -> list[np.ndarray]:
        """The unsteered answers' posteriors, scored once per run (every control of a sweep meets the
        same unsteered answers again), keyed by model, request and answer."""
        cache: dict[tuple[str, str, str], np.ndarray] = ctx.memo("base_posteriors", dict)
        keys = [(ctx.lab.model.name, s.prompt, s.base.output) for s in samples]
        missing = list(dict.fromkeys(k for k in keys if k not in cache))
        if missing:
            fresh = posteriors(ctx.lab, systems, [k[1] for k in missing], [k[2] for k in missing], ctx.config.batch_size)
            cache.update(zip(missing, fresh))
        return [cache[k] for k in keys]

    def section(self, ctx: MetricContext) -> Section | None:
        if ctx.config.data is None:
            return None
        systems = read_systems(Path(ctx.config.styles))
        rows = [r for r in read_jsonl(Path(ctx.config.data), ("text", "label", "prompt")) if r["label"] in systems]
        if ctx.config.test_fraction:  # the texts the MiniLM judge held out: both accuracies on the same texts
            rows = [rows[i] for i in sorted(heldout_split([r["label"] for r in rows], ctx.config.test_fraction, ctx.lab.study_seed)[1])]
        if 0 < ctx.config.data_limit < len(rows):  # spread evenly: judge files are often grouped by label
            rows = [rows[i * len(rows) // ctx.config.data_limit] for i in range(ctx.config.data_limit)]
        probs = posteriors(ctx.lab, systems, [r["prompt"] for r in rows], [r["text"] for r in rows], ctx.config.batch_size)
        names = list(systems)
        truth, predicted = [r["label"] for r in rows], [names[i] for i in probs.argmax(axis=1)]
        accuracy = float(accuracy_score(truth, predicted))
        confusion = confusion_matrix(truth, predicted, labels=names).tolist()
        held = f", the texts the judge metric holds out at test_fraction {ctx.config.test_fraction:g}" if ctx.config.test_fraction else ""
        text = (f"The base model as a Bayes classifier over the styles' system prompts: accuracy **{accuracy:.3f}** on "
                f"{len(rows)} labelled texts{held} (chance {1 / len(names):.3f}). Related to how the data was filtered (see "
                "`steerlab/metrics/likelihood.py`): an optimistic bound. Confusion (rows: true, columns: predicted):\n\n"
                + markdown_table(["true \\ predicted", *names], [[t, *c] for t, c in zip(names, confusion)]))
        return Section(summary={"accuracy": accuracy}, markdown=text, data={"classes": names, "confusion": confusion})

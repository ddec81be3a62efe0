"""A second, independent style judge: the steered model's own base weights as a Bayes classifier.

For an answer y to a request x and each style s with system prompt S_s (from a styles JSON,
``{style: {"system": ...}}``), the unsteered model gives log p(y | S_s, x); with a uniform prior
over styles the posterior is

    p(s | x, y) = softmax_s( log p(y | S_s, x) ),

reported as ``lm.<style>`` (``lm_<tag>.<style>`` for a judge with a ``tag``). It shares nothing with the MiniLM judge (no embeddings, no
classifier fitted on the judge split), so the two disagreeing is informative. Caveat, stated in
its report section: the chat3d data builder kept, per request and style, the candidate that its
own style prompt (with examples) explained best relative to a neutral prompt, computed by the
same model, so this judge is related to how the data was filtered; its accuracy on the judge
texts is an optimistic upper bound of its accuracy on steered answers.

The judge need not be the generator: ``model`` names another model (Gemma 3 270M judging
SmolLM2's answers is a judge from another family, untouched by that filter). A base model without
a chat template reads each style's system prompt in the plain ``Question:/Answer:`` frame
(``LoadedModel.format_prompt``), and each answer is scored as it would follow ``Answer:`` (one
space before it). Two likelihood judges run in one study as two tables, one of them naming the
metric (``[metrics.lm_judge_gemma] metric = "lm_judge"``) with its own ``tag``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix

from steerlab.config import help_field, path_field
from steerlab.errors import ConfigError
from steerlab.figures import markdown_table
from steerlab.metrics.base import BaseMetric, MetricContext, Sample
from steerlab.metrics.judge import heldout_split, wins
from steerlab.model.scoring import batched_sequence_logprobs
from steerlab.model.zoo import LoadedModel, load_model
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
    model: str = help_field("", "the judging model (zoo name, path or hub id); empty: the study's model, which then judges "
                                "its own text")
    tag: str = help_field("", "scores are lm_TAG.STYLE instead of lm.STYLE (a second likelihood judge in the same study)")
    truth: str | None = path_field(None, "JSONL of labelled texts with their request ({'text', 'label', 'prompt'}) that no "
                                         "judge was fitted or filtered on: the judge's held-out accuracy is read on them "
                                         "(test_fraction and data_limit apply) instead of on `data`", jsonl=("text", "label", "prompt"))

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"key 'batch_size' must be >= 1 (got {self.batch_size})")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"key 'test_fraction' must be in [0, 1) (got {self.test_fraction})")
        if self.data_limit < 0:
            raise ValueError(f"key 'data_limit' must be >= 0 (got {self.data_limit})")
        if self.tag and not re.fullmatch(r"[a-z0-9_]+", self.tag):
            raise ValueError(f"key 'tag' must be lower-case letters, digits or _ (got {self.tag!r})")

    @property
    def prefix(self) -> str:
        """What this judge's scores are called: ``lm`` or ``lm_TAG``."""
        return f"lm_{self.tag}" if self.tag else "lm"


def read_systems(path: Path) -> dict[str, str]:
    try:
        styles = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(styles, dict) or not styles or not all(isinstance(v, dict) and isinstance(v.get("system"), str) for v in styles.values()):
        raise ConfigError(f"{path}: expected {{style: {{'system': '...'}}}} for every style")
    return {name: value["system"] for name, value in styles.items()}


@torch.no_grad()
def posteriors(model: LoadedModel, systems: dict[str, str], prompts: list[str], answers: list[str], batch_size: int) -> np.ndarray:
    """(answers, styles): p(style | request, answer) under ``model`` (unsteered). A base model's
    answer follows ``Answer:`` after a space, as it would write it."""
    tok = model.tokenizer
    lead = "" if model.has_chat_template else " "
    targets = [tok(lead + a, add_special_tokens=False)["input_ids"] or [tok.eos_token_id] for a in answers]
    columns = []
    for system in systems.values():
        contexts = [tok(model.format_prompt(p, system), add_special_tokens=False)["input_ids"] for p in prompts]
        columns.append(batched_sequence_logprobs(model, list(zip(contexts, targets)), batch_size)[0])
    logp = np.array(columns).T  # (answers, styles)
    logp -= logp.max(axis=1, keepdims=True)
    probs = np.exp(logp)
    return probs / probs.sum(axis=1, keepdims=True)


def judge_model(ctx: MetricContext) -> LoadedModel:
    """The judging model: the study's own, or ``model`` loaded once per run on the same device and
    dtype (a lab resource, so two tables naming it share one copy)."""
    lab, name = ctx.lab, ctx.config.model
    if not name or name == lab.model.name:
        return lab.model
    dtype = str(lab.model.hf.dtype).removeprefix("torch.")
    return lab.resource(f"judge-model:{name}", lambda: load_model(name, lab.registry.models, str(lab.model.device), dtype))


def heldout_rows(config: LikelihoodJudgeConfig, systems: dict[str, str], seed: int) -> list[dict[str, str]]:
    """The labelled texts the judge is scored on: ``truth`` (else ``data``), those whose label is a
    style, then the MiniLM judge's held-out share (``test_fraction``) and ``data_limit``."""
    path = Path(config.truth or config.data)  # type: ignore[arg-type]
    rows = [r for r in read_jsonl(path, ("text", "label", "prompt")) if r["label"] in systems]
    if config.test_fraction:  # the texts the MiniLM judge held out: both accuracies on the same texts
        rows = [rows[i] for i in sorted(heldout_split([r["label"] for r in rows], config.test_fraction, seed)[1])]
    if 0 < config.data_limit < len(rows):  # spread evenly: judge files are often grouped by label
        rows = [rows[i * len(rows) // config.data_limit] for i in range(config.data_limit)]
    return rows


class LikelihoodJudgeMetric(BaseMetric):
    name = "lm_judge"
    description = "second style judge: p(style | request, answer) from the base model's likelihood under each style's system prompt"
    Config = LikelihoodJudgeConfig

    def outputs(self, config: LikelihoodJudgeConfig) -> list[str]:
        styles, prefix = list(read_systems(Path(config.styles))), config.prefix
        return [f"{prefix}.{s}" for s in styles] + ([f"{prefix}.{s}.win" for s in styles] if config.versus_base else [])

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        systems = ctx.memo("systems", lambda: read_systems(Path(ctx.config.styles)))
        prefix = ctx.config.prefix
        probs = posteriors(judge_model(ctx), systems, [s.prompt for s in samples], [s.output for s in samples], ctx.config.batch_size)
        rows = [{f"{prefix}.{name}": float(p) for name, p in zip(systems, row)} for row in probs]
        if ctx.config.versus_base:
            base = self._base_posteriors(samples, systems, ctx)
            for row, sample, mine, theirs in zip(rows, samples, probs, base):
                row.update(wins(prefix, list(systems), mine, theirs, same_text=sample.output == sample.base.output))
        return rows

    @staticmethod
    def _base_posteriors(samples: list[Sample], systems: dict[str, str], ctx: MetricContext) -> list[np.ndarray]:
        """The unsteered answers' posteriors, scored once per run (every control of a sweep meets the
        same unsteered answers again), keyed by model, request and answer."""
        cache: dict[tuple[str, str, str], np.ndarray] = ctx.memo("base_posteriors", dict)
        keys = [(ctx.lab.model.name, s.prompt, s.base.output) for s in samples]
        missing = list(dict.fromkeys(k for k in keys if k not in cache))
        if missing:
            fresh = posteriors(judge_model(ctx), systems, [k[1] for k in missing], [k[2] for k in missing], ctx.config.batch_size)
            cache.update(zip(missing, fresh))
        return [cache[k] for k in keys]

    def section(self, ctx: MetricContext) -> Section | None:
        config = ctx.config
        if config.data is None and config.truth is None:
            return None
        systems = read_systems(Path(config.styles))
        rows = heldout_rows(config, systems, ctx.lab.study_seed)
        model = judge_model(ctx)
        probs = posteriors(model, systems, [r["prompt"] for r in rows], [r["text"] for r in rows], config.batch_size)
        names = list(systems)
        truth, predicted = [r["label"] for r in rows], [names[i] for i in probs.argmax(axis=1)]
        accuracy = float(accuracy_score(truth, predicted))
        chance = max(truth.count(n) for n in names) / len(truth) if truth else float("nan")  # the majority label's share
        confusion = confusion_matrix(truth, predicted, labels=names).tolist()
        held = f", the texts the judge metric holds out at test_fraction {config.test_fraction:g}" if config.test_fraction else ""
        source = f"`{config.truth}` (texts no judge was fitted or filtered on)" if config.truth else f"`{config.data}`"
        related = ("" if config.truth else " Related to how the data was filtered when the judge is the model that wrote it "
                   "(see `steerlab/metrics/likelihood.py`): then an optimistic bound.")
        text = (f"`{model.name}` as a Bayes classifier over the styles' system prompts (scores `{config.prefix}.STYLE`): accuracy "
                f"**{accuracy:.3f}** on {len(rows)} labelled texts of {source}{held} (chance, the majority label's share: {chance:.3f})."
                f"{related} Confusion (rows: true, columns: predicted):\n\n"
                + markdown_table(["true \\ predicted", *names], [[t, *c] for t, c in zip(names, confusion)]))
        judge = {"prefix": config.prefix, "classes": names, "model": model.name, "n": len(rows),
                 "correct": int(sum(t == p for t, p in zip(truth, predicted))), "chance": chance}
        return Section(summary={"accuracy": accuracy, "chance": chance}, markdown=text,
                       data={"classes": names, "confusion": confusion, "judge": judge})

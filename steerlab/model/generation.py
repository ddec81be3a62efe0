"""Batched generation on a ``LoadedModel``.

Whatever interventions are attached when these run (through the HookEngine) act on them: the
functions here know nothing about steering. Batches are left-padded so new tokens are appended
at the right end of every row, and sorted by length in tokens to waste little compute on padding
(``batching.by_length``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from steerlab.model.batching import by_length, collate, token_lengths
from steerlab.model.engine import has_hooks
from steerlab.model.zoo import LoadedModel


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated (the study's ``[generation]`` table)."""

    max_new_tokens: int = 200
    batch_size: int | None = None  # rows per generate call; None: AUTO_BATCH for the device
    repetition_penalty: float = 1.0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    backend: str = "hf"  # a registered generation backend (``steerlab_backends``)
    cache: str = "dynamic"  # KV cache: dynamic, or static (preallocated; on CUDA transformers then compiles the
    # decode step for unsteered calls; steered calls decode eagerly, see ``has_hooks``)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"key 'max_new_tokens' must be >= 1 (got {self.max_new_tokens})")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"key 'batch_size' must be >= 1 (got {self.batch_size})")
        for key in ("repetition_penalty", "temperature", "top_p"):
            value = getattr(self, key)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"key '{key}' must be a finite number > 0 (got {value})")
        if self.top_p > 1:
            raise ValueError(f"key 'top_p' must be in (0, 1] (got {self.top_p})")
        if self.cache not in ("dynamic", "static"):
            raise ValueError(f"key 'cache' must be 'dynamic' or 'static' (got {self.cache!r})")


# Rows per generate call when a study does not say. Measured on 2 CPU cores, SmolLM2-135M, 48 new
# tokens: 19 ms per row-step at 6 rows, 13 at 12, 8.2 at 24, 7.0 at 32, 5.5 at 64 (a single row:
# 78 ms, overhead-bound). 32 keeps most of the gain without long rows holding many finished ones.
# A GPU stays Python-bound far beyond that.
AUTO_BATCH = {"cpu": 32, "cuda": 128}


def for_device(settings: GenerationSettings, device: torch.device) -> GenerationSettings:
    """``settings`` with an automatic batch size made concrete for ``device``."""
    if settings.batch_size is not None:
        return settings
    return replace(settings, batch_size=AUTO_BATCH.get(device.type, 16))


@dataclass
class Generation:
    prompt: str
    output: str
    prompt_ids: list[int]
    output_ids: list[int]
    stopped: bool  # True when the model ended its answer before the token cap


def tokenize_prompts(model: LoadedModel, texts: list[str]) -> dict[str, torch.Tensor]:
    """Formatted prompts -> a left-padded batch (``batching.collate``, the one collator)."""
    ids = model.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return collate(ids, model.tokenizer.pad_token_id, model.device)


def stop_ids(model: LoadedModel) -> set[int]:
    eos = model.hf.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if model.tokenizer.eos_token_id is not None:
        ids.add(model.tokenizer.eos_token_id)
    return ids


@torch.no_grad()
def generate(
    model: LoadedModel,
    prompts: list[str],
    settings: GenerationSettings,
    progress: Callable[[Iterable, str, int], Iterable] | None = None,
    desc: str = "generate",
) -> list[Generation]:
    """Answer each prompt (already formatted) and return them in the input order."""
    settings = for_device(settings, model.device)
    groups = by_length(token_lengths(model.tokenizer, prompts), settings.batch_size)
    if progress is not None:
        groups = progress(groups, desc, len(groups))
    results: dict[int, Generation] = {}
    for group in groups:
        for index, gen in zip(group, generate_batch(model, [prompts[i] for i in group], settings)):
            results[index] = gen
    return [results[i] for i in range(len(prompts))]


def cut_at_stop_string(tokenizer: Any, ids: list[int], stops: list[str]) -> tuple[list[int], bool]:
    """``ids`` up to the last token wholly before the first stop string, and whether one was met.
    A stop string can end inside a token, so the cut is found on the decoded text: the longest
    prefix of tokens whose text ends at or before where the first stop string begins."""
    decode = lambda n: tokenizer.decode(ids[:n], skip_special_tokens=True)  # noqa: E731
    text = decode(len(ids))
    starts = [text.find(stop) for stop in stops if stop in text]
    if not starts:
        return ids, False
    first = min(starts)
    kept = next(k for k in range(len(ids) + 1) if k == len(ids) or len(decode(k + 1)) > first)
    return ids[:kept], True


Step = Callable[[torch.Tensor], torch.Tensor]
"""A watch over one batch's decoding: called after every step with the token each row just got
``(rows,)`` (padding for rows already ended), it returns which rows to end now ``(rows,)`` bool
(an ended row's ``Generation`` then carries padding after its last token: the watcher cuts it).
Why: a server streams each row's tokens as they come and ends a row at its own token cap, its
own stop sequence or when its client has gone, while the other rows of the batch go on."""


class StepCriterion(StoppingCriteria):
    """A ``Step`` as a Hugging Face stopping criterion (called once per step, after the step's
    token is appended; a row it ends gets padding from then on, as after its EOS)."""

    def __init__(self, step: Step) -> None:
        self.step = step

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return self.step(input_ids[:, -1]).to(device=input_ids.device, dtype=torch.bool)  # type: ignore[return-value]


def generate_batch(model: LoadedModel, texts: list[str], settings: GenerationSettings, step: Step | None = None) -> list[Generation]:
    """Answer one batch of formatted prompts in one ``generate`` call (rows keep their order, so
    per-row steering lines up with them); ``step`` watches every decoding step."""
    enc = tokenize_prompts(model, texts)
    enc.pop("position_ids")  # generate derives positions from the attention mask itself
    sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {"do_sample": False}
    out = model.hf.generate(
        **enc,
        max_new_tokens=settings.max_new_tokens,
        repetition_penalty=settings.repetition_penalty,
        pad_token_id=model.tokenizer.pad_token_id,
        top_k=None,
        **({"cache_implementation": "static"} if settings.cache == "static" else {}),
        **({"disable_compile": True} if settings.cache == "static" and has_hooks(model.hf) else {}),
        **({"stop_strings": model.stop_strings, "tokenizer": model.tokenizer} if model.stop_strings else {}),
        **({"stopping_criteria": StoppingCriteriaList([StepCriterion(step)])} if step is not None else {}),
        **sampling,
    )
    return to_generations(model, texts, enc, out[:, enc["input_ids"].shape[1]:])


def to_generations(model: LoadedModel, texts: list[str], enc: dict[str, torch.Tensor], new: torch.Tensor) -> list[Generation]:
    """Rows of new token ids (rows, steps), after the left-padded prompts ``enc``, as ``Generation``
    records (``answer_row``), the prompt without padding. Every backend ends here, so all of them
    cut answers the same way."""
    ids, mask, new_ids = enc["input_ids"].cpu(), enc["attention_mask"].bool().cpu(), new.tolist()  # one read back per call, not per row
    return [answer_row(model, text, ids[row][mask[row]].tolist(), new_ids[row]) for row, text in enumerate(texts)]


def answer_row(model: LoadedModel, text: str, prompt_ids: list[int], new_row: list[int], stops: Sequence[str] = ()) -> Generation:
    """One row's new token ids as its answer: cut at the first stop token, then at the first stop
    string (the model's own and ``stops``, a request's stop sequences), decoded without special
    tokens and stripped. A server builds each row's answer here too, so a served answer is cut
    exactly as ``steerlab generate`` cuts it."""
    stops_at = stop_ids(model)
    cut = next((i for i, t in enumerate(new_row) if t in stops_at), None)
    output_ids = new_row if cut is None else new_row[:cut]
    strings = [*model.stop_strings, *stops]
    if strings:
        output_ids, stopped_by_string = cut_at_stop_string(model.tokenizer, output_ids, strings)
        cut = len(output_ids) if stopped_by_string else cut
    return Generation(prompt=text, output=model.tokenizer.decode(output_ids, skip_special_tokens=True).strip(),
                      prompt_ids=prompt_ids, output_ids=output_ids, stopped=cut is not None)

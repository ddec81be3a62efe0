"""The same texts read in two models: paired residual activations to fit an adapter on.

Two models with different tokenizers have no common token positions, so rows are paired by
*text*, in one of three ways (``pooling``):

* ``words`` (default): every word end inside the text where both models have a token ending at
  that very character, plus the final prompt token. A causal model's state at a token has read
  exactly the text up to it, so the two states at a shared word end are two readings of the same
  prefix: ~one row per word instead of one per text, which a 576 x 640 map needs.
* ``last``: the final prompt token of each text (where the steering vector is read).
* ``mean``: the mean over each text's prompt tokens.

Each model reads each text through its own ``format_prompt`` (the chat template for SmolLM2,
``Question: ...\\nAnswer:`` for the Gemma 3 base model): the frame each is steered in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from steerlab.api import ConfigError, HookEngine, LoadedModel, collect

POOLINGS = ("words", "last", "mean")
Progress = Callable[[Iterable, str, int], Iterable]


@dataclass
class Readings:
    """One model's rows: ``states`` (rows, d) and, per row, which text and which key
    (a character offset inside the text, or -1 for the final prompt token)."""

    states: torch.Tensor
    text: list[int]
    key: list[int]


@dataclass
class Paired:
    """Row i of ``source`` and of ``target`` are the same text position; ``text[i]`` its text."""

    source: torch.Tensor  # (n, d_source)
    target: torch.Tensor  # (n, d_target)
    text: torch.Tensor  # (n,) long


def word_ends(text: str) -> list[int]:
    """Character offsets (exclusive) where each whitespace-separated word ends."""
    return [m.end() for m in re.finditer(r"\S+", text)]


def _token_keys(model: LoadedModel, text: str) -> tuple[list[int], dict[int, int]]:
    """The formatted prompt's token ids, and {character offset in ``text``: token index} for
    each word end of ``text`` where a token ends exactly."""
    formatted = model.format_prompt(text)
    start = formatted.find(text)
    enc = model.tokenizer(formatted, add_special_tokens=False, return_offsets_mapping=True)
    ends = {e: t for t, (_, e) in enumerate(enc["offset_mapping"])}  # the last token ending at each offset
    keys = {} if start < 0 else {w: ends[start + w] for w in word_ends(text) if start + w in ends}
    return list(enc["input_ids"]), keys


def _states(model: LoadedModel, engine: HookEngine, rows: list[list[int]], site: str) -> torch.Tensor:
    """The site's activation for a left-padded batch: (batch, width, d)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(model.tokenizer.pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):], mask[i, width - len(row):] = torch.as_tensor(row), 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    seen: list[torch.Tensor] = []

    def capture(activation: torch.Tensor) -> None:  # an Edit that reads and changes nothing
        seen.append(activation.detach().float().cpu())

    with torch.no_grad(), engine.edit({site: capture}):
        model.hf(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                 position_ids=positions.to(model.device), use_cache=False)
    return seen[0]


def read_words(model: LoadedModel, engine: HookEngine, texts: list[str], site: str, batch_size: int,
               progress: Progress | None = None) -> Readings:
    """States at every shared-able word end and at the final prompt token of each text."""
    try:
        tokenized = [_token_keys(model, t) for t in texts]
    except NotImplementedError:
        raise ConfigError(f"model '{model.name}': its tokenizer gives no character offsets; use pooling = 'last' or 'mean'") from None
    states, text_of, key_of = [], [], []
    groups = [list(range(i, min(i + batch_size, len(texts)))) for i in range(0, len(texts), batch_size)]
    for group in progress(groups, f"{model.name} activations", len(groups)) if progress else groups:
        acts = _states(model, engine, [tokenized[i][0] for i in group], site)  # (batch, width, d)
        width = acts.shape[1]
        for row, i in enumerate(group):
            ids, keys = tokenized[i]
            offset = width - len(ids)
            for key, token in [*keys.items(), (-1, len(ids) - 1)]:
                states.append(acts[row, offset + token])
                text_of.append(i)
                key_of.append(key)
    return Readings(torch.stack(states), text_of, key_of)


def read_pooled(model: LoadedModel, texts: list[str], site: str, position: str, batch_size: int,
                progress: Progress | None = None) -> Readings:
    acts = collect(model, [model.format_prompt(t) for t in texts], [site], position, batch_size, progress)
    return Readings(acts.vectors[site], list(range(len(texts))), [-1] * len(texts))


def read(model: LoadedModel, engine: HookEngine, texts: list[str], site: str, pooling: str, batch_size: int,
         progress: Progress | None = None) -> Readings:
    if pooling == "words":
        return read_words(model, engine, texts, site, batch_size, progress)
    return read_pooled(model, texts, site, pooling, batch_size, progress)


def pair(source: Readings, target: Readings) -> Paired:
    """Rows both models have (same text, same key), in the source's order."""
    where = {(t, k): i for i, (t, k) in enumerate(zip(target.text, target.key))}
    rows = [(i, where[(t, k)]) for i, (t, k) in enumerate(zip(source.text, source.key)) if (t, k) in where]
    src = torch.tensor([i for i, _ in rows], dtype=torch.long)
    tgt = torch.tensor([j for _, j in rows], dtype=torch.long)
    return Paired(source.states[src], target.states[tgt], torch.tensor([source.text[i] for i, _ in rows], dtype=torch.long))

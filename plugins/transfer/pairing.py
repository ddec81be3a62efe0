"""The same texts read in two models and paired row by row, for fitting a map between them.

Two models with different tokenizers have no common token positions, so adapter rows are paired
by *text*, in one of three ways (``pooling``):

* ``words`` (default): every word end inside the text where both models have a token ending at
  that very character, plus the final prompt token. A causal model's state at a token has read
  exactly the text up to it, so the two states at a shared word end are two readings of the same
  prefix: ~one row per word instead of one per text, which a 576 x 640 map needs.
* ``last``: the final prompt token of each text (where the steering vector is read).
* ``mean``: the mean over each text's prompt tokens.

Each model reads each text through its own ``format_prompt`` (the chat template for SmolLM2,
``Question: ...\\nAnswer:`` for the Gemma 3 base model): the frame each is steered in.

Reads go through core's one activation reader (``activation_batches``: rows batched by length,
each forward stopped at the site), which keeps nothing of the model it read, so the source model
is freed after training.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from steerlab.api import ConfigError, LoadedModel, activation_batches

POOLINGS = ("words", "last", "mean")
Progress = Callable[[Iterable, str, int], Iterable]


@dataclass
class Readings:
    """One model's rows: ``states`` (rows, d) and, per row, which text and which key
    (a character offset inside the text, or -1 for the final prompt token / the mean)."""

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
    try:
        enc = model.tokenizer(formatted, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise ConfigError(f"model '{model.name}': its tokenizer gives no character offsets; "
                          "use pooling = 'last' or 'mean'") from None
    ends = {e: t for t, (_, e) in enumerate(enc["offset_mapping"])}  # the last token ending at each offset
    keys = {} if start < 0 else {w: ends[start + w] for w in word_ends(text) if start + w in ends}
    return list(enc["input_ids"]), keys


def read(model: LoadedModel, texts: list[str], site: str, pooling: str, batch_size: int,
         progress: Progress | None = None) -> Readings:
    """Each text (formatted by the model) read at ``site``, pooled as ``pooling`` says."""
    if pooling == "words":
        tokenized = [_token_keys(model, t) for t in texts]
    else:
        tokenized = [(ids, {}) for ids in model.tokenizer([model.format_prompt(t) for t in texts], add_special_tokens=False)["input_ids"]]
    per_text: dict[int, list[tuple[int, torch.Tensor]]] = {}
    for batch in activation_batches(model, [ids for ids, _ in tokenized], [site], batch_size, progress, f"{model.name} fit texts"):
        acts, mask = batch.acts[site].cpu(), batch.mask.cpu()  # (batch, width, d), (batch, width)
        width = acts.shape[1]
        for row, i in enumerate(batch.rows):
            ids, keys = tokenized[i]
            if pooling == "mean":
                per_text[i] = [(-1, acts[row][mask[row]].mean(0))]
            else:
                per_text[i] = [(key, acts[row, width - len(ids) + token]) for key, token in [*keys.items(), (-1, len(ids) - 1)]]
    found = [(i, key, state) for i in sorted(per_text) for key, state in per_text[i]]  # rows in text order
    return Readings(torch.stack([state for _, _, state in found]), [i for i, _, _ in found], [key for _, key, _ in found])


def pair(source: Readings, target: Readings) -> Paired:
    """Rows both models have (same text, same key), in the source's order."""
    where = {(t, k): i for i, (t, k) in enumerate(zip(target.text, target.key))}
    rows = [(i, where[(t, k)]) for i, (t, k) in enumerate(zip(source.text, source.key)) if (t, k) in where]
    src = torch.tensor([i for i, _ in rows], dtype=torch.long)
    tgt = torch.tensor([j for _, j in rows], dtype=torch.long)
    return Paired(source.states[src], target.states[tgt], torch.tensor([source.text[i] for i, _ in rows], dtype=torch.long))

"""Teacher-forced scoring: the one place that runs (context, target) token pairs through a model.

Training losses (SFT, DPO), the data builders' candidate filters and the sweep's token
statistics (perplexity under the base model, KL from it) all need the same thing: the model's
next-token distribution at every target position, given the context. ``batching.collate`` left-pads
rows (the one collator: generation uses it too) and gives each row positions that start at 0
after its padding, as ``generate`` does; ``target_logits`` asks the model for the logits of the
last positions only (``logits_to_keep``), where every row's target sits right-aligned, so a
262k-token vocabulary never costs a full (rows, length, vocab) tensor. Those positions are asked
for as an index tensor, not a count: the count slices the hidden states without copying, and the
LM head over that strided view ran 16-19% slower on the CPU (a batched matmul instead of one).
The reductions below turn them into numbers. Interventions attached by the caller apply.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from steerlab.model.batching import by_length, collate
from steerlab.model.engine import has_hooks
from steerlab.model.zoo import LoadedModel

Pair = tuple[Sequence[int], Sequence[int]]  # (context ids, target ids)

MIN_SHARED_PREFIX = 8  # tokens: below this, a prefix pass costs more than it saves


def cache_keyword(model: LoadedModel) -> str:
    """transformers 5 names the KV cache argument ``cache`` (``past_key_values`` before)."""
    return "cache" if "cache" in inspect.signature(model.hf.forward).parameters else "past_key_values"


def full_attention_only(model: LoadedModel) -> bool:
    """Whether every layer attends to the whole cache: a sliding window counts cache slots, so any
    padding placed between cached positions and new ones would move it (Gemma 3)."""
    text = model.hf.config.get_text_config(decoder=True)
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    return kinds == {"full_attention"} and getattr(text, "sliding_window", None) is None


@dataclass
class SharedPrefix:
    """The KV cache of the context tokens every row of a scoring call begins with, computed once.

    Why: the likelihood judge scores each answer under each style's system prompt, and the
    perplexity pass under the default one; every row of such a call repeats the same chat header
    (about 30 of ~130 tokens on chat3d), and on a CPU a forward costs per token. Only for an
    unhooked model (a per-row intervention cannot act on one shared row) whose layers all attend
    to the whole cache (``full_attention_only``).
    """

    length: int
    cache: Any  # a transformers Cache holding ``length`` positions of one row

    @classmethod
    def of(cls, model: LoadedModel, contexts: Sequence[Sequence[int]], minimum: int = MIN_SHARED_PREFIX) -> "SharedPrefix | None":
        """The longest prefix all ``contexts`` share, leaving each at least one token of its own
        (the logit that predicts a row's first target token is computed with the row); None when
        it is shorter than ``minimum``, a hook is attached or a layer has a sliding window."""
        if len(contexts) < 2 or has_hooks(model.hf) or not full_attention_only(model):
            return None
        first, limit = contexts[0], min(len(c) for c in contexts) - 1
        length = 0
        while length < limit and all(c[length] == first[length] for c in contexts):
            length += 1
        if length < minimum:
            return None
        ids = torch.as_tensor([list(first[:length])], device=model.device)
        with torch.no_grad():
            out = model.hf(input_ids=ids, use_cache=True)
        return cls(length, out.cache if "cache" in out else out.past_key_values)  # transformers 5 names it ``cache``

    def for_rows(self, rows: int) -> Any:
        """A copy of the cache repeated for ``rows`` rows (a forward extends the cache it is given)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def target_logits(model: LoadedModel, pairs: Sequence[Pair], prefix: SharedPrefix | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward over ``context + target`` per row.

    Returns ``logits`` (rows, T, vocab) float32, the ``targets`` (rows, T) and their ``mask``
    (rows, T); T is the longest target and each row's target is right-aligned:
    ``logits[b, t]`` predicted ``targets[b, t]`` wherever ``mask[b, t]``. Contexts must be non-empty.
    With ``prefix`` (every context begins with its tokens), the rows run after its cached
    positions: ``[prefix][padding][rest of context + target]``, positions continuing the prefix's.
    """
    longest = max(len(t) for _, t in pairs)
    skip = prefix.length if prefix is not None else 0
    batch = collate([list(c)[skip:] + list(t) for c, t in pairs], model.tokenizer.pad_token_id or 0, model.device)
    if prefix is not None:
        batch["attention_mask"] = torch.cat([batch["attention_mask"].new_ones(len(pairs), skip), batch["attention_mask"]], dim=1)
        batch["position_ids"] = batch["position_ids"] + skip
        batch[cache_keyword(model)] = prefix.for_rows(len(pairs))
    width = batch["input_ids"].shape[1]
    keep = torch.arange(width - longest - 1, width, device=model.device)  # an index, not a count: see below
    logits = model.hf(**batch, logits_to_keep=keep).logits[:, :-1].float()  # (rows, T, vocab)
    targets = torch.zeros((len(pairs), longest), dtype=torch.long)
    mask = torch.zeros((len(pairs), longest), dtype=torch.bool)
    for i, (_, t) in enumerate(pairs):
        if len(t):
            targets[i, longest - len(t):] = torch.as_tensor(list(t), dtype=torch.long)
            mask[i, longest - len(t):] = True
    return logits, targets.to(logits.device), mask.to(logits.device)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at every position: (rows, T). Masked positions hold garbage: use the mask."""
    return F.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]


def row_logprobs(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed log p(target) of each row: (rows,). logits (rows, T, vocab); targets, mask (rows, T)."""
    return (token_logprobs(logits, targets) * mask).sum(1)


def sequence_logprobs(model: LoadedModel, pairs: Sequence[Pair], prefix: SharedPrefix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log p(target | context) per row and the number of target tokens: (rows,), (rows,)."""
    logits, targets, mask = target_logits(model, pairs, prefix)
    return row_logprobs(logits, targets, mask), mask.sum(1)


@torch.no_grad()
def batched_sequence_logprobs(model: LoadedModel, pairs: Sequence[Pair], batch_size: int = 16,
                              share_prefix: bool = True) -> tuple[list[float], list[int]]:
    """``sequence_logprobs`` over any number of pairs, batched by length, the context prefix they all
    share run once (``SharedPrefix``; ``share_prefix=False``: every row whole, as the benchmark's
    baseline); results in input order."""
    totals, counts = [0.0] * len(pairs), [0] * len(pairs)
    prefix = SharedPrefix.of(model, [c for c, _ in pairs]) if share_prefix else None
    for group in by_length([len(c) + len(t) for c, t in pairs], batch_size):
        total, count = sequence_logprobs(model, [pairs[i] for i in group], prefix)
        for i, t, n in zip(group, total.tolist(), count.tolist()):
            totals[i], counts[i] = t, n
    return totals, counts


def mean_logprobs(model: LoadedModel, pairs: Sequence[Pair], batch_size: int = 16) -> list[float]:
    """Mean log-probability per target token of each row (e.g. how well a style prompt explains
    an answer, against a neutral prompt)."""
    totals, counts = batched_sequence_logprobs(model, pairs, batch_size)
    return [t / max(n, 1) for t, n in zip(totals, counts)]


def kl_per_token(steered: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """KL(steered || base) of next-token distributions at each position: (rows, T)."""
    steered_lp, base_lp = F.log_softmax(steered, dim=-1), F.log_softmax(base, dim=-1)
    return (steered_lp.exp() * (steered_lp - base_lp)).sum(-1).clamp(min=0.0)

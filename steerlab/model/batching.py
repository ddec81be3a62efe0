"""How rows become batches: sorted by their length in tokens, cut into even groups, left-padded.

Every forward pads each row to the longest of its batch, and on a CPU a forward costs per token,
padding included; so everything that runs many rows (generation, a sweep, scoring, training
steps, activation reads) sorts them by length in tokens and cuts the sorted list with the same
``by_length``, and ``collate`` is the one collator. Callers put results back in their own order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def batches(indices: list[int], size: int) -> Iterator[list[int]]:
    """Consecutive groups of at most ``size``, as even as possible (36 rows at 32: 18 + 18, not
    32 + 4: a small tail batch decodes as many steps for a fraction of the tokens)."""
    if not indices:
        return
    count = -(-len(indices) // size)
    even = -(-len(indices) // count)
    for start in range(0, len(indices), even):
        yield indices[start : start + even]


def by_length(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices in order of length (ties by index), in groups of at most ``size`` (``batches``: as
    even as possible). Why: every row of a batch is padded to its longest, and answers of one sweep
    batch range from a few tokens to the cap; on a CPU a forward is compute-bound, so padding costs
    as much as real tokens (grouping cut chat3d's scoring time per sweep by 0-15%, benchmarks/RESULTS.md)."""
    return list(batches(sorted(range(len(lengths)), key=lambda i: (lengths[i], i)), size))


def token_lengths(tokenizer: object, texts: Sequence[str]) -> list[int]:
    """How many tokens each text (already formatted) has: what ``by_length`` sorts by."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]  # type: ignore[operator]


def collate(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str) -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids``, ``attention_mask`` and ``position_ids`` (0 at each row's first
    real token): (rows, width) each."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, width - len(row):] = torch.as_tensor(list(row), dtype=torch.long)
            mask[i, width - len(row):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}

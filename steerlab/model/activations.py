"""The one activation reader: token rows run through the model, named sites kept, the rest skipped.

Everything that reads internals goes through ``activation_batches``: actdiff's difference vectors
(``collect``), the transfer plugin's paired readings of two models, the per-block cosines of
``inspect vector``. It reads through the ``HookEngine`` (a capture ``Edit`` that changes nothing,
on the same site names steering uses), and it stops the forward pass once every site it wants has
been seen: reading block 15 of 30 skips half the blocks and the whole vocabulary projection
(Gemma 3's 262k-word head alone outweighs its blocks).

Why not nnsight, which ``collect`` used before: its trace leaves a pass-through ``forward`` on every
module it reached (the engine and GenARM's model copy had to work around it) and a wrapper per model
that kept a freed model alive, so a second reader grew beside it. TransformerLens keeps the one role
only it serves: the logit lens of ``inspect vector`` (its final norm and unembedding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch

from steerlab.model.batching import by_length, collate
from steerlab.model.engine import HookEngine
from steerlab.model.zoo import LoadedModel

POSITIONS = ("last", "mean")
Progress = Callable[[Iterable, str, int], Iterable]


@dataclass
class ActivationBatch:
    """One forward's reading: ``acts[site]`` (batch, width, d) float32 on the model's device,
    left-padded like ``mask`` (batch, width), whose rows are the caller's rows ``rows``."""

    rows: list[int]
    acts: dict[str, torch.Tensor]
    mask: torch.Tensor  # bool: True at real tokens


class _SitesRead(Exception):
    """Raised by the capture once every wanted site is read: nothing after them is needed."""


def activation_batches(model: LoadedModel, rows: Sequence[Sequence[int]], sites: Sequence[str], batch_size: int,
                       progress: Progress | None = None, desc: str = "activations") -> Iterator[ActivationBatch]:
    """Token rows (no padding, special tokens as the caller wants them) read at ``sites``, in
    batches of similar length (``batching.by_length``): one forward per batch, stopped after the
    last site. Interventions attached elsewhere act on the reading as on any forward."""
    engine = HookEngine(model.hf)
    for site in sites:
        engine.site(site)  # a bad name fails before any forward
    groups = by_length([len(r) for r in rows], batch_size)
    for group in progress(groups, desc, len(groups)) if progress else groups:
        acts, mask = _read(model, engine, [rows[i] for i in group], list(dict.fromkeys(sites)))
        yield ActivationBatch(group, acts, mask)


@torch.no_grad()
def _read(model: LoadedModel, engine: HookEngine, rows: list[Sequence[int]], sites: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    enc = collate(rows, int(model.tokenizer.pad_token_id), model.device)
    seen: dict[str, torch.Tensor] = {}

    def capture(site: str) -> Callable[[torch.Tensor], None]:
        def edit(activation: torch.Tensor) -> None:  # reads, changes nothing
            seen[site] = activation.detach().float()
            if len(seen) == len(sites):
                raise _SitesRead

        return edit

    with engine.edit({site: capture(site) for site in sites}):
        try:
            model.hf(**enc, use_cache=False)
        except _SitesRead:
            pass
    return seen, enc["attention_mask"].bool()


@dataclass
class Activations:
    """Per-site activations, one row per text: ``vectors[site]`` is (n_texts, d)."""

    vectors: dict[str, torch.Tensor]
    token_norms: dict[str, torch.Tensor]  # every non-pad token's L2 norm, for "typical norm"


def collect(
    model: LoadedModel,
    texts: list[str],
    sites: list[str],
    position: str = "last",
    batch_size: int = 8,
    progress: Progress | None = None,
) -> Activations:
    """Run ``texts`` (already formatted) and keep each site's activation per text.

    ``position='last'`` keeps the final token (left padding puts it in the last column);
    ``'mean'`` averages over the non-pad tokens. Rows come back in the caller's order.
    """
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    ids = model.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    rows: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    norms: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    order: list[int] = []
    for batch in activation_batches(model, ids, sites, batch_size, progress):
        order += batch.rows
        for site in sites:
            acts = batch.acts[site]  # (batch, pos, d)
            rows[site].append(_reduce(acts, batch.mask, position).cpu())
            norms[site].append(acts.norm(dim=-1)[batch.mask].cpu())
    restore = torch.argsort(torch.tensor(order)) if order else torch.zeros(0, dtype=torch.long)
    return Activations({s: torch.cat(v)[restore] for s, v in rows.items()}, {s: torch.cat(v) for s, v in norms.items()})


def _reduce(acts: torch.Tensor, mask: torch.Tensor, position: str) -> torch.Tensor:
    if position == "last":
        return acts[:, -1, :]
    weights = mask.unsqueeze(-1).to(acts.dtype)
    return (acts * weights).sum(1) / weights.sum(1).clamp(min=1.0)

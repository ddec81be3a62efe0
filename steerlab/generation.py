"""Batched generation and teacher-forced scoring on a ``LoadedModel``.

Whatever interventions are attached when these run (through the HookEngine) act on them: the
functions here know nothing about steering. Batches are left-padded so new tokens are appended
at the right end of every row, and sorted by length to waste little compute on padding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from steerlab.models import LoadedModel
from steerlab.study import GenerationSettings


@dataclass
class Generation:
    prompt: str
    output: str
    prompt_ids: list[int]
    output_ids: list[int]
    stopped: bool  # True when the model ended its answer before the token cap


def batches(indices: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def tokenize_prompts(model: LoadedModel, texts: list[str]) -> dict[str, torch.Tensor]:
    enc = model.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {k: v.to(model.device) for k, v in enc.items()}


def _stop_ids(model: LoadedModel) -> set[int]:
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
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    groups = list(batches(order, settings.batch_size))
    if progress is not None:
        groups = progress(groups, desc, len(groups))
    results: dict[int, Generation] = {}
    stops = _stop_ids(model)
    for group in groups:
        for index, gen in zip(group, _generate_batch(model, [prompts[i] for i in group], settings, stops)):
            results[index] = gen
    return [results[i] for i in range(len(prompts))]


def _generate_batch(
    model: LoadedModel, texts: list[str], settings: GenerationSettings, stops: set[int]
) -> list[Generation]:
    enc = tokenize_prompts(model, texts)
    sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {"do_sample": False}
    out = model.hf.generate(
        **enc,
        max_new_tokens=settings.max_new_tokens,
        repetition_penalty=settings.repetition_penalty,
        pad_token_id=model.tokenizer.pad_token_id,
        top_k=None,
        **sampling,
    )
    width = enc["input_ids"].shape[1]
    gens = []
    for row, text in enumerate(texts):
        prompt_ids = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
        new = out[row, width:].tolist()
        cut = next((i for i, t in enumerate(new) if t in stops), None)
        output_ids = new if cut is None else new[:cut]
        gens.append(
            Generation(
                prompt=text,
                output=model.tokenizer.decode(output_ids, skip_special_tokens=True).strip(),
                prompt_ids=prompt_ids,
                output_ids=output_ids,
                stopped=cut is not None,
            )
        )
    return gens


@torch.no_grad()
def output_logprobs(model: LoadedModel, prompt_ids: list[int], output_ids: list[int]) -> torch.Tensor:
    """Log-probabilities of the next token at each output position: (n_output, vocab).

    Teacher-forced on ``prompt + output``; position t holds the distribution that predicted
    output token t. Interventions attached by the caller apply.
    """
    ids = torch.tensor([prompt_ids + output_ids], device=model.device)
    logits = model.hf(input_ids=ids).logits[0].float()  # (pos, vocab)
    start = len(prompt_ids) - 1
    return F.log_softmax(logits[start : start + len(output_ids)], dim=-1)


@torch.no_grad()
def response_logprobs(model: LoadedModel, contexts: list[str], responses: list[str], batch_size: int = 16) -> list[float]:
    """Mean log-probability per token of each response after its (formatted) context.

    Batched with right padding; used to score candidates (e.g. how much a style prompt explains
    an answer compared with a neutral one).
    """
    out: list[float] = []
    tok = model.tokenizer
    for start in range(0, len(contexts), batch_size):
        rows = []
        for context, response in zip(contexts[start : start + batch_size], responses[start : start + batch_size]):
            c = tok(context, add_special_tokens=False)["input_ids"]
            r = tok(response, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
            rows.append((c + r, len(c)))
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (row, _) in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        logp = F.log_softmax(model.hf(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for i, (row, n_context) in enumerate(rows):
            targets = ids[i, n_context : len(row)]
            picked = logp[i, n_context - 1 : len(row) - 1].gather(1, targets[:, None])
            out.append(float(picked.mean()))
    return out

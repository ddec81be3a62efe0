"""Greedy decoding with a preallocated KV cache (backend ``static``); with ``graphs`` on a GPU, each
call's decode step is captured once as a CUDA graph and replayed (not registered until a GPU has
checked it: ``StaticDecode``).

Why: on a GPU, a 135M model's decode step is kernel launches and Python, not arithmetic (a batch
of 64 costs about 1.4x a batch of 1 per step on an H100), and every kernel a steering method adds
is paid in proportion. A CUDA graph replays the whole step's kernels from one launch.

How steering survives: the graph is captured inside the call, after the caller has attached its
hooks, so the hooks' kernels are part of the graph and run at every replayed token, reading their
tensors (a vector, Panacea's per-row singular values) where they are. Each call captures its own
graph, so the next call's hooks are never confused with these. This is what ``torch.compile``
does not give: it does not guard on module hooks, so a compiled step silently keeps the hooks it
was compiled with (``has_hooks``). Capture needs every hook to be a function of its inputs and of
tensors (the engine's edit, delta and update kinds); a hook on the model itself (the engine's
``observe_inputs``: GenARM steps its own reward model's cache there, in Python, at every forward)
cannot be replayed, so such a call goes to Hugging Face ``generate``, as do sampling, a repetition
penalty and models with sliding-window layers.

On a CPU the same loop runs eagerly (nothing to replay): the path the tests check token by token.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from steerlab.model.generation import Generation, GenerationSettings, Step, generate_batch, stop_ids, to_generations, tokenize_prompts
from steerlab.model.scoring import cache_keyword, full_attention_only
from steerlab.model.zoo import LoadedModel

MASK_KINDS = ("sdpa", "eager")  # attention implementations whose 4D masks this builds (bool; additive float)


def unsupported(model: LoadedModel, settings: GenerationSettings) -> str | None:
    """Why this call cannot use the static loop (None when it can)."""
    hf = model.hf
    if settings.do_sample or settings.repetition_penalty != 1.0:
        return "sampling and repetition penalties decode through Hugging Face generate"
    if hf._forward_pre_hooks or hf._forward_hooks:
        return "a hook on the whole model (an observer such as GenARM's reward stream) runs Python at every forward"
    if getattr(hf.config, "_attn_implementation", None) not in MASK_KINDS:
        return f"attention implementation {hf.config._attn_implementation!r} (needs one of {MASK_KINDS})"
    if not full_attention_only(model):
        return "sliding-window or chunked attention layers"
    return None


class StaticDecode:
    """Greedy decode with a static KV cache: ``static`` (eager everywhere; registered) or, with
    ``graphs``, ``cuda-graphs`` (the decode step captured once per call and replayed on CUDA
    devices; eager elsewhere). Both are registered. ``cuda-graphs`` was registered once a GPU had
    checked its capture (``benchmarks/speed.py graphs`` on an H200, 2026-12-04): the same greedy tokens
    as generate's on every row, unsteered, with actdiff and with per-row Panacea lambdas, at 4-7x
    generate's tokens/s (benchmarks/RESULTS.md)."""

    def __init__(self, graphs: bool = False) -> None:
        self.graphs = graphs
        self.name = "cuda-graphs" if graphs else "static"
        self.description = ("greedy decode with a static KV cache, the decode step replayed from one CUDA graph per call on a GPU "
                            "(hooks attached at the call are part of it); eager on a CPU" if graphs else
                            "greedy decode with a static KV cache, eager (the loop the cuda-graphs backend replays)")
        self.fallbacks: dict[str, int] = {}  # why calls went to Hugging Face generate, counted (the benchmark reports it)

    def generate(self, model: LoadedModel, texts: list[str], settings: GenerationSettings, step: Step | None = None) -> list[Generation]:
        reason = unsupported(model, settings)
        if reason is not None:
            self.note_fallback(reason)
            return generate_batch(model, texts, settings, step)
        graphs = self.graphs and model.device.type == "cuda"
        enc = tokenize_prompts(model, texts)
        new = decode(model, enc, settings.max_new_tokens, graphs, self.note_fallback, step=step)
        return to_generations(model, texts, enc, new)

    def note_fallback(self, reason: str) -> None:
        """Count a call (or the rest of one) that did not take this backend's path, by reason."""
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1


def _mask_value(model: LoadedModel, allowed: torch.Tensor) -> torch.Tensor:
    """The 4D mask the model's attention takes as-is: bool for SDPA, additive for eager."""
    if model.hf.config._attn_implementation == "sdpa":
        return allowed
    dtype = next(model.hf.parameters()).dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, torch.finfo(dtype).min)


@torch.no_grad()
def decode(model: LoadedModel, enc: dict[str, torch.Tensor], steps: int, graphs: bool,
           on_fallback: Callable[[str], None] | None = None, stops: set[int] | None = None, step: Step | None = None) -> torch.Tensor:
    """Greedy new tokens (rows, steps) after the left-padded prompts ``enc`` (pad after a row's stop).

    The cache holds ``width + steps`` slots; every step attends over all of them through a 4D mask
    that admits each row's real prompt tokens and the tokens generated so far (and every position
    itself, so a padding row is never fully masked). The mask, the fed token and its position are
    buffers written in place between steps, so a captured graph reads each step's values.
    ``stops``: the stop tokens (default: the model's; empty: always ``steps`` tokens, as a
    benchmark wants). ``step``: a watch that sees each step's tokens and may end rows (it reads
    the tokens on the host every step, so the all-finished check then runs every step too).
    """
    from transformers import StaticCache

    hf, device = model.hf, model.device
    ids, real, positions = enc["input_ids"], enc["attention_mask"].bool(), enc["position_ids"]
    rows, width = ids.shape
    length = width + steps
    cache = StaticCache(config=hf.config, max_cache_len=length)
    cache_kw = {cache_keyword(model): cache, "use_cache": True}
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    stops = torch.tensor(sorted(stop_ids(model) if stops is None else stops) or [-1], device=device)

    keys = torch.zeros(rows, length, dtype=torch.bool, device=device)  # which cache slots each row may attend to
    keys[:, :width] = real
    slots = torch.arange(length, device=device)
    queries = torch.arange(width, device=device)
    prefill = ((slots[None, :] <= queries[:, None])[None] & keys[:, None, :]) | (slots[None, :] == queries[:, None])[None]
    logits = hf(input_ids=ids, attention_mask=_mask_value(model, prefill[:, None]), position_ids=positions,
                logits_to_keep=1, **cache_kw).logits[:, -1]

    token = torch.zeros(rows, 1, dtype=torch.long, device=device)  # the step's input buffers
    position = positions[:, -1:].clone()
    mask = _mask_value(model, keys[:, None, None, :]).clone()
    opened = _mask_value(model, torch.ones((), dtype=torch.bool, device=device))  # an admitted slot, in the mask's own kind

    def forward() -> torch.Tensor:
        return hf(input_ids=token, attention_mask=mask, position_ids=position, **cache_kw).logits[:, -1]

    new = torch.full((rows, steps), pad, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    graph: torch.cuda.CUDAGraph | None = None
    for t in range(steps):
        chosen = torch.where(finished, torch.full_like(finished, pad, dtype=torch.long), logits.argmax(-1))
        new[:, t] = chosen
        finished |= torch.isin(chosen, stops)
        if step is not None:
            finished |= step(chosen).to(device=device, dtype=torch.bool)
        if t == steps - 1 or ((step is not None or t % 16 == 15) and bool(finished.all())):  # a host read every 16 tokens, not every token
            break
        token.copy_(chosen[:, None])
        position.add_(1)
        mask[..., width + t] = opened  # this token's own slot
        if graphs and t == 1 and graph is None:
            graph, static_logits = _capture(forward, on_fallback)
            if graph is None:
                graphs = False
        if graph is not None:
            graph.replay()
            logits = static_logits
        else:
            logits = _on_side_stream(forward) if graphs and t == 0 else forward()  # the first step warms up for the capture
    return new


def _on_side_stream(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Run ``fn`` on a side stream (PyTorch's advice before a capture: warm-up work, such as cuBLAS
    workspaces, must not land in the capturing stream's history)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = fn()
    torch.cuda.current_stream().wait_stream(stream)
    return out


def _capture(step: Callable[[], torch.Tensor], on_fallback: Callable[[str], None] | None) -> tuple[torch.cuda.CUDAGraph | None, torch.Tensor | None]:
    """Record one decode step (recording runs nothing: the first replay is this step). A hook
    that reads a value back to the host cannot be captured: then the call goes on eagerly."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            logits = step()
    except RuntimeError as exc:  # e.g. "operation not permitted when stream is capturing"
        reason = f"CUDA graph capture failed, decoding eagerly: {str(exc).splitlines()[0]}"
        warnings.warn(reason, stacklevel=3)
        if on_fallback is not None:
            on_fallback(reason)
        return None, None
    return graph, logits

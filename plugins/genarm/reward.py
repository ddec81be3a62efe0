"""The GenARM reward model: a LoRA on a copy of the base, run in step with the base model.

Decoding combines the two next-token distributions,

    logits = (log_softmax(z_base) + alpha * log_softmax(z_r)) / (1 + alpha)

i.e. pi_base * pi_r^alpha at temperature 1 + alpha (Xu et al., GenARM). Both models read the
same tokens in one decode step: ``RewardStream.observe`` runs before every forward of the base
model (``HookEngine.observe_inputs``) and feeds the reward model the same new tokens, mask and
positions with its *own* KV cache; the edit at the base model's ``logits`` site then takes the
reward log-probs of that very forward. A forward without a cache (teacher-forced scoring) runs
the reward model on the whole sequence, for the same ``logits_to_keep`` last positions.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from steerlab.api import Artifact, Edit, LoadedModel, projection_features, resolve, stored_delta

PASSED = ("input_ids", "inputs_embeds", "attention_mask", "position_ids", "cache_position", "logits_to_keep")
HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs")
# The KV cache's keyword: transformers 5.2x renamed ``past_key_values`` to ``cache`` (argument and
# output field); reading a base forward's cache under the old name alone saw none, so the reward
# model ran the new token without its cache against the full attention mask.
CACHE_KEYS = ("cache", "past_key_values")


def cache_of(source: Any) -> tuple[str, Any]:
    """(keyword, KV cache) of a forward's kwargs (a dict) or outputs, under either name; the
    reward model is a copy of the base, so it takes its cache under the keyword the base got."""
    for key in CACHE_KEYS:
        value = source.get(key) if isinstance(source, dict) else getattr(source, key, None)
        if value is not None:
            return key, value
    return CACHE_KEYS[0], None


def copy_of_base(model: LoadedModel) -> nn.Module:
    """A deep copy of the base model, without the hooks attached to the base at copy time.

    ``copy.deepcopy`` copies a module's hook tables too: an intervention live on the base (or
    GenARM's own observer) would otherwise also fire inside the reward model, forever, since the
    base's handles cannot remove the copies. Likewise nnsight, once someone has traced the base
    with it (a notebook), leaves a per-instance ``forward`` wrapper on the modules it reached; the
    reward model is not traced by anyone, so it gets the class's own forward back."""
    clone = copy.deepcopy(model.hf)
    for module in clone.modules():
        for name in HOOK_DICTS:
            getattr(module, name, {}).clear()
        module.__dict__.pop("forward", None)
    return clone


@torch.no_grad()
def merged_reward_model(model: LoadedModel, artifact: Artifact) -> nn.Module:
    """The reward model rebuilt from the artifact: a copy of the base with B @ A merged into each
    adapted weight (merged: decoding pays no LoRA overhead)."""
    clone = copy_of_base(model)
    rank = int(artifact.meta["rank"])
    for site in artifact.sites:
        module = resolve(clone, site).module  # an nn.Linear, or GPT-2's Conv1D (weight stored (in, out))
        fan_in, fan_out = projection_features(module)
        a = artifact.expect(f"{site}.A", (rank, fan_in), "genarm artifact")
        b = artifact.expect(f"{site}.B", (fan_out, rank), "genarm artifact")
        delta = b.to(module.weight.device, torch.float32) @ a.to(module.weight.device, torch.float32)  # (out, in)
        module.weight += stored_delta(module, delta).to(module.weight.dtype)
    return clone.eval().requires_grad_(False)


def starts_fresh(past: Any, kwargs: dict[str, Any]) -> bool:
    """Whether this forward begins a new sequence (an empty cache, or positions from 0)."""
    position = kwargs.get("cache_position")
    return past.get_seq_length() == 0 or (position is not None and int(position.reshape(-1)[0]) == 0)


class RewardStream:
    """The reward model's side of one steered scope: its KV cache and the log-probs of the last
    forward, consumed once by the logits edit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.cache: Any = None
        self.logprobs: torch.Tensor | None = None  # (batch, kept positions, vocab), float32

    @torch.no_grad()
    def observe(self, kwargs: dict[str, Any]) -> None:
        """Run the reward model on the inputs the base model is about to see."""
        inputs = {k: kwargs[k] for k in PASSED if kwargs.get(k) is not None}
        keyword, past = cache_of(kwargs)
        if past is None:  # a plain forward: the whole sequence, no cache kept
            self.cache = None
            out = self.model(**inputs, use_cache=False)
        else:
            if starts_fresh(past, kwargs):
                self.cache = None  # the model makes a cache of its own kind (sliding windows and all)
            elif self.cache is None or self.cache.get_seq_length() != past.get_seq_length():
                have = None if self.cache is None else self.cache.get_seq_length()
                raise RuntimeError(f"genarm: the reward model's cache holds {have} positions but the base model's "
                                   f"{past.get_seq_length()}: the two models are out of step")
            out = self.model(**inputs, **{keyword: self.cache}, use_cache=True)
            self.cache = cache_of(out)[1]
        self.logprobs = F.log_softmax(out.logits.float(), dim=-1)

    def take(self, shape: torch.Size) -> torch.Tensor:
        """The reward log-probs for base logits of ``shape`` (batch, k, vocab): the last k positions."""
        if self.logprobs is None:
            raise RuntimeError("genarm: base logits without a reward forward for the same inputs")
        logprobs, self.logprobs = self.logprobs, None
        batch, k, vocab = shape
        if logprobs.shape[0] != batch or logprobs.shape[1] < k or logprobs.shape[2] != vocab:
            raise RuntimeError(f"genarm: reward log-probs {tuple(logprobs.shape)} do not cover base logits {tuple(shape)}")
        return logprobs[:, -k:]


def combine(stream: RewardStream, alpha: torch.Tensor) -> Edit:
    """The logits edit: (log_softmax(z_base) + alpha * log_softmax(z_r)) / (1 + alpha) per row;
    rows at alpha 0 keep the base logits untouched. ``alpha``: (rows,); one row broadcasts."""
    def edit(logits: torch.Tensor) -> torch.Tensor:  # (batch, k, vocab)
        reward = stream.take(logits.shape)
        a = alpha.to(logits.device, torch.float32).reshape(-1, 1, 1)
        mixed = (F.log_softmax(logits.float(), dim=-1) + a * reward) / (1 + a)
        return torch.where(a == 0, logits, mixed.to(logits.dtype))

    return edit

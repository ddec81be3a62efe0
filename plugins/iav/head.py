"""The IAV alignment head: a_t over the vocabulary from the final hidden state, in the same pass.

    a_t = W_U  sum_k  Out_k gelu(In_k h_t)        In_k: d_model -> width, Out_k: width -> d_model

``h_t`` is what the LM head reads (the final-normed hidden state, already cut to the positions
whose logits are kept), ``W_U`` the model's own frozen unembedding. The heads are low-rank (each
passes through ``width`` dimensions) and their outputs start at zero, so an untrained head adds
exactly nothing: the steered model starts as the base model, as LoRA's B = 0 does. Reusing
``W_U`` keeps the head small (no vocab-sized matrix of its own) and makes a_t a direction in the
model's own logit space.

The head is added at the ``logits`` site as ``alpha[row] * a_t`` (a Delta on the LM head, which
receives its input), so steering costs one small MLP and one extra unembedding per position and
never a second forward of the backbone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from steerlab.api import Artifact, ConfigError, Delta

TENSORS = ("inner", "outer")


class IAVHead(nn.Module):
    def __init__(self, d_model: int, heads: int, width: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.inner = nn.Parameter(torch.randn(heads, d_model, width, generator=generator) / math.sqrt(d_model))
        self.outer = nn.Parameter(torch.zeros(heads, width, d_model))

    def residual(self, hidden: torch.Tensor) -> torch.Tensor:  # (batch, pos, d_model) -> (batch, pos, d_model), float32
        mid = F.gelu(torch.einsum("bpd,kdw->bpkw", hidden.float(), self.inner))  # (batch, pos, heads, width)
        return torch.einsum("bpkw,kwd->bpd", mid, self.outer)

    def forward(self, hidden: torch.Tensor, unembed: torch.Tensor) -> torch.Tensor:
        """a_t: (batch, pos, vocab) in the hidden state's dtype. ``unembed``: (vocab, d_model)."""
        return F.linear(self.residual(hidden).to(unembed.dtype), unembed).to(hidden.dtype)

    def head_norms(self) -> list[float]:
        """||Out_k|| per head: zero at initialisation, so this is what training wrote into each head."""
        return [float(norm) for norm in self.outer.detach().flatten(1).norm(dim=1)]

    def state(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).detach() for name in TENSORS}

    @classmethod
    def from_artifact(cls, artifact: Artifact, d_model: int) -> "IAVHead":
        """Rebuild a trained head, checking shapes against the loaded model's width."""
        heads, width = int(artifact.meta["heads"]), int(artifact.meta["head_width"])
        head = cls(d_model, heads, width)
        with torch.no_grad():
            head.inner.copy_(artifact.expect("inner", (heads, d_model, width), "iav artifact"))
            head.outer.copy_(artifact.expect("outer", (heads, width, d_model), "iav artifact"))
        return head.requires_grad_(False)


def scaled_delta(head: IAVHead, unembed: torch.Tensor, alpha: torch.Tensor) -> Delta:
    """hidden -> alpha[row] * a_t, for the ``logits`` site. ``alpha``: (rows,); one row broadcasts."""
    if alpha.dim() != 1:
        raise ConfigError(f"iav expects one alpha per row, shape (rows,), got {tuple(alpha.shape)}")

    def delta(hidden: torch.Tensor) -> torch.Tensor:  # (batch, pos, d_model) -> (batch, pos, vocab)
        a_t = head(hidden, unembed)
        return alpha.to(device=a_t.device, dtype=a_t.dtype).reshape(-1, 1, 1) * a_t

    return delta

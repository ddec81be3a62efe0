"""The IAV objective: L = L_pref + lambda_KL * L_KL + lambda_L2 * L_L2.

* ``L_pref``: DPO on the steered logits ``z_base + a_t`` with the base model ``z_base`` as the
  reference. The log-ratio log pi(y|x) - log pi_ref(y|x) is then exactly the effect of a_t on
  the answer's log-probability, so the preference term moves only the head.
* ``L_KL``: KL(steered || base) of the next-token distributions at every answer position of both
  sides, averaged: keeps the head from drifting where the preference says nothing.
* ``L_L2``: the mean squared logit shift a_t^2 over the vocabulary and the answer positions: keeps
  a_t small, so alpha stays a usable dial beyond 1.

All inputs are (rows, T, vocab) or (rows, T), chosen rows first, then the same pairs' rejected rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from steerlab.api import kl_per_token, row_logprobs



@dataclass(frozen=True)
class IAVLoss:
    total: torch.Tensor
    pref: torch.Tensor
    kl: torch.Tensor
    l2: torch.Tensor
    margin: torch.Tensor  # beta-free log-ratio margin, chosen minus rejected: (pairs,)

    def info(self) -> dict[str, torch.Tensor]:
        """What the training log keeps per step: tensors, read back once when training ends (a
        ``float()`` here would wait for the GPU at every step)."""
        return {"pref": self.pref.detach(), "kl": self.kl.detach(), "l2": self.l2.detach(),
                "margin": self.margin.detach().mean(), "accuracy": (self.margin.detach() > 0).float().mean()}


def dpo(log_ratio: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-log sigmoid(beta * (ratio_chosen - ratio_rejected)), mean over pairs; and the margins.
    ``log_ratio``: (2 * pairs,), chosen rows first."""
    chosen, rejected = log_ratio.chunk(2)
    margin = chosen - rejected  # (pairs,)
    return -F.logsigmoid(beta * margin).mean(), margin


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def iav_loss(steered: torch.Tensor, base: torch.Tensor, a_t: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
             beta: float, lambda_kl: float, lambda_l2: float) -> IAVLoss:
    """steered = base + a_t (rows, T, vocab), float32; ``base`` carries no gradient."""
    maskf = mask.float()
    log_ratio = row_logprobs(steered, targets, maskf) - row_logprobs(base, targets, maskf)  # (rows,)
    pref, margin = dpo(log_ratio, beta)
    kl = masked_mean(kl_per_token(steered, base), maskf)
    l2 = masked_mean(a_t.pow(2).mean(-1), maskf)
    return IAVLoss(pref + lambda_kl * kl + lambda_l2 * l2, pref, kl, l2, margin)

"""Training budgets counted in tokens that received gradient, and one stopping rule for both
Panacea and soups (the evidence issue: equal budgets in fact, not in name)."""

import torch

from steerlab.training import answer_tokens, gradient_tokens, kept_gradient_tokens
from steerlab_plugins.panacea import losses
from steerlab_plugins.soups.method import joint_stop


def _step(preference):
    per_group = torch.tensor([2.0, 1.0, 3.0], requires_grad=True)
    pairs = [([1, 2], [5] * 10), ([1], [6] * 20), ([1, 2, 3], [7] * 30)]
    counts = answer_tokens(pairs, torch.tensor([0, 1, 2]), 3)
    return per_group, counts, torch.tensor(preference)


def test_answer_tokens_counts_each_groups_targets_not_its_prompts():
    pairs = [([1, 2, 3], [9] * 4), ([1], [9] * 6), ([4, 4], [9] * 5)]
    assert answer_tokens(pairs, torch.tensor([0, 1, 0]), 2).tolist() == [9.0, 6.0]


def test_tchebycheff_sends_gradient_to_the_worst_weighted_group_only():
    per_group, counts, preference = _step([0.2, 0.5, 0.3])  # weighted losses 0.4, 0.5, 0.9: group 2 wins
    loss = losses.tchebycheff()(per_group, preference)
    assert float(gradient_tokens(loss, per_group, counts)) == 30.0


def test_linear_scalarisation_sends_gradient_to_every_weighted_group():
    per_group, counts, preference = _step([0.2, 0.0, 0.8])  # a zero weight gets no gradient
    loss = losses.linear_scalarisation(per_group, preference)
    assert float(gradient_tokens(loss, per_group, counts)) == 40.0


def test_kept_gradient_tokens_stop_at_the_kept_step():
    log = [{"step": k, "grad_tokens": 10.0} for k in range(5)]
    assert kept_gradient_tokens(log) == 50.0
    log[-1]["best_step"] = 1
    assert kept_gradient_tokens(log) == 20.0


def test_joint_stop_keeps_every_lora_at_the_check_with_the_lowest_mean_heldout_loss():
    # each style alone would stop elsewhere (a: check 0, b: check 2); the mean is lowest at check 1
    held = {"a": [1.0, 1.1, 1.5], "b": [3.0, 2.0, 1.9]}
    logs = {d: [{"step": s, "loss": 0.0} if s % 2 else {"step": s, f"heldout.{d}": held[d][s // 2]} for s in range(5)] for d in held}
    snapshots = {d: [{f"{d}.x.A": torch.full((1,), float(k))} for k in range(3)] for d in held}
    kept = joint_stop(logs, snapshots)
    assert {k: float(t) for k, t in kept.items()} == {"a.x.A": 1.0, "b.x.A": 1.0}
    assert logs["a"][-1]["best_step"] == logs["b"][-1]["best_step"] == 2

"""GenARM on a tiny model: the combined logits, the reward model's own KV cache in step with the
base model, logits_to_keep, per-row alphas, scoped hooks, and training that leaves the base alone."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from steerlab.api import encode_answer, row_logprobs, Artifact, GenerationSettings, Lab, LoadedModel, generate, match_sites, target_logits
from steerlab.model.generation import tokenize_prompts
from steerlab_plugins.genarm.config import GenARMConfig
from steerlab_plugins.genarm.method import GenARMMethod
from steerlab_plugins.genarm.reward import RewardStream, merged_reward_model

TOY = {"prompt": "Can you help me?", "chosen": "Of course, happy to help!", "rejected": "No. Go away."}
TEXTS = ["A considerably longer prompt here", "Why?"]


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def lora_artifact(lab: Lab, rank: int = 2, scale: float = 0.3) -> Artifact:
    """LoRA factors on two projections of every block: random, standing in for training."""
    generator = torch.Generator().manual_seed(1)
    sites = match_sites(lab.model.hf, ["blocks.*.mlp.down_proj", "blocks.*.attn.q_proj"])
    tensors = {}
    for site in sites:
        linear = site.module
        tensors[f"{site.name}.A"] = torch.randn(rank, linear.in_features, generator=generator) * scale
        tensors[f"{site.name}.B"] = torch.randn(linear.out_features, rank, generator=generator) * scale
    return Artifact(tensors, {"rank": rank}, sites=[s.name for s in sites])


def encode(lab: Lab, texts=TEXTS) -> dict[str, torch.Tensor]:
    return tokenize_prompts(lab.model, [lab.model.format_prompt(t) for t in texts])


def forward(model, enc, **extra) -> torch.Tensor:
    with torch.no_grad():
        return model(**enc, **extra).logits


def steered(lab: Lab, method, artifact: Artifact, alphas: list[float], texts=TEXTS) -> torch.Tensor:
    with method.steer(lab, artifact, torch.tensor(alphas)):
        return forward(lab.model.hf, encode(lab, texts))


def formula(base: torch.Tensor, reward: torch.Tensor, alpha: float) -> torch.Tensor:
    return (F.log_softmax(base, -1) + alpha * F.log_softmax(reward, -1)) / (1 + alpha)


def make_lab(model, registry, tmp_path: Path) -> Lab:
    return Lab.for_model(model, registry, tmp_path / "run")


@pytest.fixture()
def lab(tiny_llama, registry, tmp_path):
    return make_lab(tiny_llama, registry, tmp_path)


@pytest.fixture()
def method_and_artifact(lab):
    return GenARMMethod(), lora_artifact(lab)


def test_combined_logits_equal_the_genarm_formula_at_every_position(lab, method_and_artifact):
    method, artifact = method_and_artifact
    enc = encode(lab)
    base, reward = forward(lab.model.hf, enc), forward(method.reward_model(lab, artifact), enc)
    assert not torch.allclose(F.log_softmax(base, -1), F.log_softmax(reward, -1), atol=1e-3)  # the reward model differs
    for alpha in (0.5, 2.0):
        torch.testing.assert_close(steered(lab, method, artifact, [alpha]), formula(base, reward, alpha), atol=1e-5, rtol=1e-5)


def test_logits_to_keep_aligns_the_reward_log_probs_with_the_kept_positions(lab, method_and_artifact):
    method, artifact = method_and_artifact
    pairs = [encode_answer(lab.model, "Hello", "Hi there, friend.", 64), encode_answer(lab.model, "Why is the sky blue?", "Light.", 64)]
    base, targets, mask = target_logits(lab.model, pairs)  # passes logits_to_keep: only the answer positions
    full_reward = forward(method.reward_model(lab, artifact), tokenize_prompts_from(lab, pairs))  # every position
    reward = full_reward[:, -(base.shape[1] + 1):-1]  # the same positions as target_logits keeps
    with method.steer(lab, artifact, torch.tensor([1.5])), torch.no_grad():
        combined, _, _ = target_logits(lab.model, pairs)
    torch.testing.assert_close(combined, formula(base, reward, 1.5), atol=1e-5, rtol=1e-5)


def tokenize_prompts_from(lab: Lab, pairs) -> dict[str, torch.Tensor]:
    from steerlab.model.batching import collate

    return collate([c + t for c, t in pairs], lab.model.tokenizer.pad_token_id, lab.model.device)


def test_alpha_zero_is_exactly_the_base_model_also_beside_steered_rows(lab, method_and_artifact):
    method, artifact = method_and_artifact
    base = forward(lab.model.hf, encode(lab))
    assert torch.equal(steered(lab, method, artifact, [0.0]), base)
    mixed = steered(lab, method, artifact, [0.0, 1.0])
    assert torch.equal(mixed[0], base[0]) and not torch.allclose(mixed[1], base[1])


def test_per_row_alphas_in_one_batch_equal_one_alpha_at_a_time(lab, method_and_artifact):
    method, artifact = method_and_artifact
    alphas, text = [0.0, 0.5, 2.0], ["Name a fruit"]
    per_row = steered(lab, method, artifact, alphas, text * len(alphas))
    single = torch.cat([steered(lab, method, artifact, [a], text) for a in alphas])
    torch.testing.assert_close(per_row, single, atol=1e-5, rtol=1e-5)
    space, prompts = method.control_space(None), ["Tell me a story", "Why is the sky blue?"]
    settings, alphas = GenerationSettings(max_new_tokens=5, batch_size=8), [0.0, 2.0]
    rows = [(a, p) for a in alphas for p in prompts]
    mixed = lab.answer(method, artifact, space, [a for a, _ in rows], [p for _, p in rows], settings, desc=None)
    alone = [g for a in alphas for g in lab.answer(method, artifact, space, [a] * 2, prompts, settings, desc=None)]
    assert [g.output_ids for g in mixed] == [g.output_ids for g in alone]


def test_the_reward_model_keeps_its_own_kv_cache_in_step_on_every_generated_token(tiny_model, registry, tmp_path):
    """Cached decoding (the reward model fed one new token a step, with its own cache) must pick
    the same greedy tokens as recomputing both models over the whole sequence without a cache:
    on Llama and on Gemma 3 (sliding-window layers; the long prompt outruns the 16-token window),
    with a left-padded row in the batch."""
    lab = make_lab(tiny_model, registry, tmp_path)
    method, artifact = GenARMMethod(), lora_artifact(lab)
    model, settings = lab.model, GenerationSettings(max_new_tokens=10, batch_size=2)
    prompts = [model.format_prompt("Tell me a story about a long river"), model.format_prompt("Hi")]
    base = generate(model, prompts, settings)
    seen = []
    with method.steer(lab, artifact, torch.tensor([2.0])), lab.engine.observe_inputs(lambda kw: seen.append(kw["input_ids"].shape[1])):
        cached = generate(model, prompts, settings)
        assert [g.output_ids for g in generate(model, prompts, settings)] == [g.output_ids for g in cached]  # a fresh cache per call
        for gen in cached:
            ids = torch.tensor([gen.prompt_ids])
            for _ in range(len(gen.output_ids)):  # no cache: the whole sequence every step
                nxt = forward(model.hf, {"input_ids": ids}, use_cache=False)[0, -1].argmax()
                ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
            assert ids[0, len(gen.prompt_ids):].tolist() == gen.output_ids
    assert [g.output_ids for g in cached] != [g.output_ids for g in base]
    assert seen.count(1) >= 9  # decode steps fed one new token each


def test_a_reward_cache_out_of_step_with_the_base_is_an_error(lab, method_and_artifact):
    method, artifact = method_and_artifact
    stream = RewardStream(method.reward_model(lab, artifact))
    enc = encode(lab, ["Hi"])
    with torch.no_grad():
        past = lab.model.hf(**enc, use_cache=True).past_key_values  # the base is 1+ positions in; the reward model is not
    with pytest.raises(RuntimeError, match="out of step"):
        stream.observe({"input_ids": enc["input_ids"][:, -1:], "past_key_values": past})


def test_hooks_are_gone_after_the_scope_even_after_an_exception(lab, method_and_artifact):
    method, artifact = method_and_artifact
    method.reward_model(lab, artifact)  # built outside the count
    before, base = hook_count(lab.model.hf), forward(lab.model.hf, encode(lab))
    with pytest.raises(KeyError):
        with method.steer(lab, artifact, torch.tensor([1.0])):
            assert hook_count(lab.model.hf) == before + 2  # the observer and the logits edit
            raise KeyError("inside")
    assert hook_count(lab.model.hf) == before and lab.engine.n_attached == 0
    assert torch.equal(forward(lab.model.hf, encode(lab)), base)


def test_the_reward_model_is_a_hook_free_copy_rebuilt_once_per_artifact(lab, method_and_artifact):
    method, artifact = method_and_artifact
    with lab.engine.edit({"blocks.0.resid_post": lambda act: act + 1.0}):
        reward = merged_reward_model(lab.model, artifact)  # copied while the base is hooked
    assert hook_count(reward) == 0 and reward is not lab.model.hf
    assert method.reward_model(lab, artifact) is method.reward_model(lab, artifact)
    assert method.reward_model(lab, lora_artifact(lab)) is not method.reward_model(lab, artifact)


def test_training_ranks_the_toy_pair_stores_lora_factors_and_leaves_the_base_untouched(lab, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(TOY) + "\n")
    before = {k: v.clone() for k, v in lab.model.hf.state_dict().items()}
    config = GenARMConfig(pairs=str(pairs), rank=2, targets=["blocks.*.mlp.down_proj"], steps=8, pairs_per_step=1, lr=0.02, max_tokens=96, heldout_fraction=0.0)
    method = GenARMMethod()
    artifact = method.train(lab, config)
    after = lab.model.hf.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], v) for k, v in before.items())
    assert sorted(artifact.tensors) == sorted(f"blocks.{i}.mlp.down_proj.{f}" for i in range(4) for f in "AB")
    log = artifact.meta["train_log"]
    assert log[-1]["margin"] > log[0]["margin"] and log[-1]["loss"] < log[0]["loss"]
    reward = LoadedModel("reward", method.reward_model(lab, artifact), lab.model.tokenizer)
    batch = [encode_answer(lab.model, TOY["prompt"], TOY[side], 96) for side in ("chosen", "rejected")]
    with torch.no_grad():
        chosen, rejected = row_logprobs(*target_logits(reward, batch))
    assert float(chosen - rejected) > log[0]["margin"] + 1.0  # the rebuilt reward model ranks better than the base (step 0)


def test_the_reward_model_copy_drops_nnsight_wrappers_left_on_the_base_by_a_trace(tiny_llama):
    """An nnsight trace (a user's, in a notebook) leaves per-instance ``forward`` wrappers on the base's
    modules; the reward model must be a plain copy that runs its own (perturbed) weights."""
    from steerlab_plugins.genarm.reward import copy_of_base
    from tests.conftest import nnsight_trace

    nnsight_trace(tiny_llama)
    assert any("forward" in m.__dict__ for m in tiny_llama.hf.modules())  # what nnsight leaves behind
    clone = copy_of_base(tiny_llama)
    assert not any("forward" in m.__dict__ for m in clone.modules())
    enc = tiny_llama.tokenizer(["one two three"], return_tensors="pt")
    with torch.no_grad():
        before = clone(**enc).logits
        for p in clone.parameters():
            p.add_(0.1)
        assert not torch.allclose(clone(**enc).logits, before)
        assert torch.allclose(tiny_llama.hf(**enc).logits, before)


# --- issue 27: a length-robust margin, held-out pairs, the accuracy GenARM's decoding requires ---

def test_the_mean_margin_is_the_summed_margin_per_answer_token(lab):
    from steerlab_plugins.genarm.method import reward_margins

    batch = [encode_answer(lab.model, TOY["prompt"], TOY[side], 96) for side in ("chosen", "rejected")]
    with torch.no_grad():
        logits, targets, mask = target_logits(lab.model, batch)
        chosen, rejected = row_logprobs(logits, targets, mask.float())
        summed, mean = reward_margins(lab.model, batch, "sum"), reward_margins(lab.model, batch, "mean")
    lengths = [len(t) for _, t in batch]
    torch.testing.assert_close(summed, (chosen - rejected).reshape(1))
    torch.testing.assert_close(mean, (chosen / lengths[0] - rejected / lengths[1]).reshape(1))
    assert lengths[0] != lengths[1]  # the toy pair differs in length: the two margins differ


def test_training_logs_held_out_pair_accuracy_and_the_analysis_says_when_it_is_below_the_requirement(lab, tmp_path):
    from steerlab.api import SweepResult, heldout_accuracy
    from steerlab_plugins.genarm.analysis import analyze

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Question number {i}?", "chosen": f"Glad to help with {i}.", "rejected": "No."}) + "\n"
                             for i in range(8)))
    config = GenARMConfig(pairs=str(pairs), rank=2, targets=["blocks.*.mlp.down_proj"], steps=4, pairs_per_step=2, lr=0.02,
                          max_tokens=64, margin="mean", heldout_fraction=0.4, eval_every=2)
    artifact = GenARMMethod().train(lab, config)
    assert [step for step, _ in heldout_accuracy(artifact.meta["train_log"])] == [2, 4]
    assert artifact.meta["margin"] == "mean" and artifact.meta["heldout_pairs"] > 0 and artifact.meta["require_heldout_accuracy"] == 0.75

    def analysed(final: float):
        log = [dict(row) for row in artifact.meta["train_log"]]
        log[-1]["heldout.accuracy"] = final  # a reward model that ended at this held-out accuracy
        return analyze(lab, Artifact(artifact.tensors, {**artifact.meta, "train_log": log}, sites=artifact.sites), SweepResult([], []), lab.layout.root)

    stalled, trained = analysed(0.5), analysed(0.8)
    assert stalled.summary["reward_model_used"] == 0.0 and "decoding is not used" in stalled.markdown and "Margin `mean`" in stalled.markdown
    assert trained.summary["reward_model_used"] == 1.0 and "its decoding is used" in trained.markdown
    assert any("held-out pair accuracy" in f.caption for f in stalled.figures)


def test_bad_margin_or_requirement_values_name_their_key():
    with pytest.raises(ValueError, match="'margin'"):
        GenARMConfig(pairs="x", margin="max")
    with pytest.raises(ValueError, match="'require_heldout_accuracy'"):
        GenARMConfig(pairs="x", require_heldout_accuracy=1.5)
    with pytest.raises(ValueError, match="'heldout_fraction'"):
        GenARMConfig(pairs="x", heldout_fraction=1.0)

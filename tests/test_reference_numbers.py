"""Token statistics checked against computations written here from first principles: the
perplexity and KL a sweep records must equal a by-hand teacher-forced pass on a tiny model."""

from pathlib import Path

import torch

from steerlab.controls import Scalar
from steerlab.model.generation import GenerationSettings
from steerlab.study.schema import MethodEntry
from steerlab.sweep import token_stats
from steerlab.testing import train_on_tiny
from steerlab.vectors import VectorConfig, VectorMethod
from tests.conftest import write_control_vector


def by_hand_logprobs(model, context: list[int], answer: list[int]) -> torch.Tensor:
    """log p(answer token t | everything before it), one full forward, no batching or padding."""
    ids = torch.tensor([context + answer])
    with torch.no_grad():
        logits = model.hf(input_ids=ids).logits[0].float()  # (T, vocab)
    logp = torch.log_softmax(logits, -1)
    positions = torch.arange(len(context) - 1, len(context) + len(answer) - 1)
    return logp[positions]  # (answer, vocab): the distribution that predicts each answer token


def test_perplexity_and_kl_equal_a_by_hand_teacher_forced_pass(tmp_path: Path):
    write_control_vector(tmp_path / "cv.gguf")
    method, config = VectorMethod(), VectorConfig(file=str(tmp_path / "cv.gguf"), scale=2.0)
    t = train_on_tiny(method, config, tmp_path / "lab")
    entry = MethodEntry("vector", "vector", config, Scalar("strength"), [1.0])
    controls = [1.0, 1.0]
    with t.lab.steer(method, t.artifact, t.space, controls):
        gens = t.lab.generate(["Why is the sky blue?", "Hi"], GenerationSettings(max_new_tokens=6, batch_size=2))
    stats = token_stats(t.lab, method, t.artifact, entry, controls, gens, {"base_nll", "kl"})
    tokenizer = t.lab.model.tokenizer
    for gen, got in zip(gens, stats):
        plain = tokenizer(t.lab.model.format_prompt(gen.prompt), add_special_tokens=False)["input_ids"]
        base = by_hand_logprobs(t.lab.model, plain, gen.output_ids)
        targets = torch.tensor(gen.output_ids)
        nll = -base[torch.arange(len(targets)), targets].mean()
        with t.lab.steer(method, t.artifact, t.space, [1.0]):
            steered = by_hand_logprobs(t.lab.model, list(gen.prompt_ids), gen.output_ids)
        kl = (steered.exp() * (steered - base)).sum(-1).mean()  # KL(steered || unsteered), per token, averaged
        assert abs(got["base_nll"] - float(nll)) < 1e-4
        assert abs(got["kl"] - float(kl)) < 1e-4 and float(kl) > 1e-3

"""The chat-3D baselines: LoRA soups mix updates linearly; prompting writes the mix into a prompt."""

import torch

from steerlab_plugins.prompting import mix_prompt
from steerlab_plugins.soups.method import soup_delta


def test_soup_delta_is_the_lambda_weighted_sum_of_lora_updates_per_row():
    torch.manual_seed(0)
    a, b = torch.randn(3, 2, 8), torch.randn(3, 5, 2)  # three LoRAs: A (r, in), B (out, r)
    x = torch.randn(2, 4, 8)  # (batch, pos, in)
    updates = [x @ a[i].T @ b[i].T for i in range(3)]
    mixed = soup_delta(a, b, torch.tensor([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]]))(x)
    torch.testing.assert_close(mixed[0], (0.2 * updates[0] + 0.3 * updates[1] + 0.5 * updates[2])[0])
    torch.testing.assert_close(mixed[1], updates[1][1])
    torch.testing.assert_close(soup_delta(a, b, torch.tensor([[0.0, 0.0, 1.0]]))(x), updates[2])  # one row broadcasts


def test_mix_prompt_names_the_weights_heaviest_first():
    text = mix_prompt(["helpful: practical", "humorous: jokes", "philosophical: deep"], [0.25, 0.5, 0.25])
    assert text.index("50% humorous") < text.index("25% helpful")
    assert mix_prompt(["a", "b"], [0.0, 1.0]) == "You are an assistant. Answer in this style: b."


def test_soups_training_leaves_the_model_exactly_as_it_was(study_dir, registry, tiny_llama):
    """PEFT wraps modules while training; afterwards every module and weight must be the original."""
    from steerlab.lab import Lab
    from steerlab.layout import RunLayout
    from steerlab.study.loader import load_study

    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    path = study_dir / "soups.toml"
    path.write_text(text + '[methods.soups]\ndata = "data/sft.jsonl"\nrank = 2\nsteps = 2\nper_dimension = 1\nmax_tokens = 32\n')
    study = load_study(path, registry)
    lab = Lab(study=study, model=tiny_llama, registry=registry, layout=RunLayout(study_dir / "run"), show_progress=False)
    modules = {n: type(m) for n, m in tiny_llama.hf.named_modules()}
    params = {n: p.detach().clone() for n, p in tiny_llama.hf.named_parameters()}
    artifact = registry.methods["soups"].train(lab, study.methods[0].config)
    assert {n: type(m) for n, m in tiny_llama.hf.named_modules()} == modules
    assert all(torch.equal(p, params[n]) and not p.requires_grad for n, p in tiny_llama.hf.named_parameters())
    assert any(t.abs().sum() > 0 for k, t in artifact.tensors.items() if k.endswith(".B"))

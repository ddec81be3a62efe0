"""Real models shipped by PyPI packages. Slow; the ones marked ``ci`` also run in CI."""


import numpy as np
import pytest
import torch

from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.metrics.builtin import word_count
from steerlab.model.generation import GenerationSettings
from steerlab.model.zoo import load_model
from steerlab.study.loader import load_study

pytestmark = pytest.mark.slow
STUDY = "studies/concise.toml"


@pytest.fixture(scope="module")
def smollm2(registry):
    return load_model("smollm2-135m-instruct", registry.models, device="cpu")


@pytest.mark.ci
def test_smollm2_loads_offline_with_its_chat_template_and_reloads_from_its_safetensors_copy(smollm2, registry):
    """The reload reads the converted copy (its time is a benchmark, not a test: timings flake on
    a busy machine)."""
    from steerlab.model.zoo import cache_dir

    assert (smollm2.d_model, smollm2.n_layers) == (576, 30)
    assert smollm2.has_chat_template and "<|im_start|>assistant" in smollm2.format_prompt("Hi")
    assert any(cache_dir().rglob("*.safetensors")), "the first load left no safetensors copy to reload from"
    again = load_model("smollm2-135m-instruct", registry.models, device="cpu")
    assert again.d_model == 576


@pytest.mark.ci
def test_concise_vector_shortens_smollm2_answers(smollm2, registry, tmp_path):
    """The study's own data and layer, few pairs and prompts: +0.4 must shorten, -0.4 must not."""
    study = load_study(STUDY, registry, ["data.eval_limit=6"])
    lab = Lab(study=study, model=smollm2, registry=registry, layout=RunLayout(tmp_path), show_progress=False)
    method, entry = registry.methods["actdiff"], study.methods[0]
    artifact = method.train(lab, entry.config)
    assert 30 < artifact.meta["vector_norm"]["15"] < 150  # measured ~63 with steering-vectors
    settings = GenerationSettings(max_new_tokens=160, batch_size=18)
    prompts, controls = lab.eval_prompts(), (0.4, 0.0, -0.4)
    gens = lab.answer(method, artifact, entry.space, [c for c in controls for _ in prompts], prompts * 3, settings)
    words = {c: np.mean([word_count(g.output) for g in gens[k * len(prompts):(k + 1) * len(prompts)]]) for k, c in enumerate(controls)}
    assert words[0.4] < 0.6 * words[0.0], words
    assert words[-0.4] >= 0.9 * words[0.0], words


def test_gemma3_base_loads_without_a_chat_template(registry):
    model = load_model("gemma3-270m", registry.models, device="cpu")
    assert (model.d_model, model.n_layers) == (640, 18)
    assert not model.has_chat_template and model.format_prompt("Hi").endswith("Answer:")
    # The weights work through the lab's own prompt format: a greedy answer names Paris. (A bare
    # "The capital of France is" continues with " the" under transformers 5.25's conversion of the
    # Q4 GGUF, Paris third; a healthy 270M base model may do either, so that was no test of the weights.)
    with torch.no_grad():
        ids = model.tokenizer(model.format_prompt("What is the capital of France?"), return_tensors="pt")
        out = model.hf.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in model.tokenizer.decode(out[0, ids["input_ids"].shape[1]:])

"""One contract test, parametrized over every registered method (PEFT's TEST_CASES habit).

Each method needs a case here: a config table for the tiny study, a neutral control (which
must reproduce the unsteered model exactly, or None if the method has none) and an active
control. The meta-test fails when a registered method has no case.
"""

from pathlib import Path

import pytest
import torch

from steerlab.artifact import Artifact
from steerlab.generation import tokenize_prompts
from steerlab.lab import Lab
from steerlab.study import load_study

CASES = {
    "actdiff": {"table": 'pairs = "data/pairs.jsonl"\nlayer = 1\ncontrols = [-1.0, 0.0, 1.0]', "neutral": 0.0, "active": 1.0},
    "base": {"table": "", "neutral": 0.0, "active": None},
    "panacea": {"table": 'data = "data/sft.jsonl"\nrank = 2\nsteps = 3\nper_dimension = 1\nmax_tokens = 48\nlr = 0.05\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]',
                "neutral": None, "active": [0.0, 1.0, 0.0]},
    "soups": {"table": 'data = "data/sft.jsonl"\nrank = 2\nsteps = 2\nper_dimension = 1\nmax_tokens = 48\nlr = 0.05\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]',
              "neutral": [0.0, 0.0, 0.0], "active": [0.0, 1.0, 0.0]},
    "prompting": {"table": 'styles = "data/styles.json"\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]', "neutral": None, "active": [0.0, 1.0, 0.0]},
}


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_every_registered_method_has_a_contract_case(registry):
    assert set(registry.methods) == set(CASES)


@pytest.fixture(params=sorted(CASES))
def case(request, study_dir: Path, registry, tiny_llama):
    name = request.param
    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    path = study_dir / f"contract_{name}.toml"
    path.write_text(text + f"[methods.{name}]\n{CASES[name]['table']}\n")
    study = load_study(path, registry)
    lab = Lab(study=study, model=tiny_llama, registry=registry, run_dir=study_dir / f"run_{name}", show_progress=False)
    method = registry.methods[name]
    artifact = method.train(lab, study.methods[0].config)
    return name, lab, method, artifact, study.methods[0]


def last_logits(lab, texts):
    enc = tokenize_prompts(lab.model, [lab.model.format_prompt(t) for t in texts])
    with torch.no_grad():
        return lab.model.hf(**enc).logits[:, -1]


def test_artifact_round_trips_through_safetensors_and_json(case, tmp_path):
    name, lab, method, artifact, _ = case
    artifact.save(tmp_path)
    loaded = Artifact.load(tmp_path)
    assert loaded.meta["method"] == name and "versions" in loaded.meta
    assert set(loaded.tensors) == set(artifact.tensors)
    for key, tensor in artifact.tensors.items():
        assert torch.equal(loaded.tensors[key], tensor.cpu())


def test_neutral_control_reproduces_unsteered_logits_exactly(case):
    _, lab, method, artifact, _ = case
    if CASES[case[0]]["neutral"] is None:
        pytest.skip(f"{case[0]} has no neutral control")
    base = last_logits(lab, ["Hi there", "Why?"])
    with method.steer(lab, artifact, CASES[case[0]]["neutral"]):
        assert torch.equal(last_logits(lab, ["Hi there", "Why?"]), base)


def test_active_control_changes_output_and_hooks_go_away_even_after_errors(case):
    name, lab, method, artifact, _ = case
    active = CASES[name]["active"]
    if active is None:
        pytest.skip(f"{name} has no active control")
    before, base = hook_count(lab.model.hf), last_logits(lab, ["Hi there"])
    with method.steer(lab, artifact, active):
        assert not torch.allclose(last_logits(lab, ["Hi there"]), base)
    assert hook_count(lab.model.hf) == before
    with pytest.raises(KeyError):
        with method.steer(lab, artifact, active):
            raise KeyError("inside")
    assert hook_count(lab.model.hf) == before
    assert torch.equal(last_logits(lab, ["Hi there"]), base)


def test_batched_equals_unbatched_under_steering(case):
    name, lab, method, artifact, _ = case
    control = CASES[name]["active"] if CASES[name]["active"] is not None else CASES[name]["neutral"]
    texts = ["A considerably longer prompt here", "Short"]
    with method.steer(lab, artifact, control):
        batched = last_logits(lab, texts)
        single = torch.cat([last_logits(lab, [t]) for t in texts])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_evaluate_returns_records_for_every_prompt_and_control(case):
    name, lab, method, artifact, entry = case
    lab.study.metrics[:] = ["length", "kl"]
    result = method.evaluate(lab, entry.name, artifact, entry.config, entry.controls)
    n_prompts = len(lab.eval_prompts())
    assert len(result["records"]) == n_prompts * len(entry.controls)
    record = result["records"][0]
    assert set(record) == {"prompt", "control", "output", "scores"}
    assert {"words", "tokens", "stopped", "kl"} <= set(record["scores"])
    assert all(isinstance(v, float) for v in result["summary"].values())
    neutral = [r for r in result["records"] if r["control"] == CASES[name]["neutral"]]
    assert all(r["scores"]["kl"] == 0.0 for r in neutral)

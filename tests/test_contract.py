"""One contract test, parametrized over every registered method (PEFT's TEST_CASES habit).

Each method needs a case here: a config table for the tiny study, a neutral control (which
must reproduce the unsteered model exactly, or None if the method has none) and an active
control, both in the method's own control-space syntax. The meta-test fails when a registered
method has no case.
"""

from pathlib import Path

import pytest
import torch

from steerlab.artifact import Artifact
from steerlab.model.generation import GenerationSettings, tokenize_prompts
from steerlab.run.lab import Lab
from steerlab.run.layout import RunLayout
from steerlab.study.loader import load_study

SFT = 'data = "data/sft.jsonl"\nrank = 2\nper_dimension = 1\nmax_tokens = 48\nlr = 0.05\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]'
CASES = {
    "actdiff": {"table": 'pairs = "data/pairs.jsonl"\nlayer = 1\ncontrols = [-1.0, 0.0, 1.0]', "neutral": "0", "active": "1.0", "other": "-1.0"},
    "base": {"table": "", "neutral": "0", "active": None, "other": None},
    "panacea": {"table": SFT + "\nsteps = 3", "neutral": None, "active": "humorous=1", "other": "helpful=0.5,philosophical=0.5"},
    "soups": {"table": SFT + "\nsteps = 2", "neutral": None, "active": "humorous=1", "other": "helpful=1"},
    "prompting": {"table": 'styles = "data/styles.json"\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]', "neutral": None,
                  "active": "humorous=1", "other": "helpful=1"},
    "iav": {"table": 'pairs = "data/prefs.jsonl"\nheads = 2\nhead_width = 8\nsteps = 3\npairs_per_step = 2\nmax_tokens = 64\nlr = 0.05\ncontrols = [0.0, 1.0, 2.0]',
            "neutral": "0", "active": "1", "other": "2"},
    "genarm": {"table": 'pairs = "data/prefs.jsonl"\nrank = 2\ntargets = ["blocks.*.mlp.down_proj"]\nsteps = 2\npairs_per_step = 1\nmax_tokens = 64\nlr = 0.05\ncontrols = [0.0, 1.0]',
               "neutral": "0", "active": "1", "other": "2"},
    # courteous at 0 is the plain prompt, but its KL in a sweep batch that mixes in system-prompted rows is ~1e-8, not 0
    # (the steered pass pads those rows differently from the base pass): so no neutral here, 0 as the other control.
    "transfer": {"table": 'source_model = "tiny-llama-wide"\nsource_layer = 1\npairs = "data/pairs.jsonl"\nfit_texts = "data/judge.jsonl"\ncontrols = [-0.4, 0.0, 0.4]',
                 "neutral": "0", "active": "0.4", "other": "-0.4"},
    "vector": {"table": 'file = "data/cv.gguf"\ncontrols = [-1.0, 0.0, 1.0]', "neutral": "0", "active": "1", "other": "-1"},
    "courteous": {"table": "controls = [0.0, 1.0]", "neutral": None, "active": "1", "other": "0"},
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
    lab = Lab(study=study, model=tiny_llama, registry=registry, layout=RunLayout(study_dir / f"run_{name}"), show_progress=False)
    entry = study.methods[0]
    method = registry.methods[name]
    artifact = method.train(lab, entry.config)
    controls = {k: entry.space.parse(CASES[name][k]) if CASES[name][k] is not None else None for k in ("neutral", "active", "other")}
    return name, lab, method, artifact, entry, controls


def last_logits(lab, texts, systems=None):
    systems = systems or [None] * len(texts)
    enc = tokenize_prompts(lab.model, [lab.model.format_prompt(t, s) for t, s in zip(texts, systems)])
    with torch.no_grad():
        return lab.model.hf(**enc).logits[:, -1]


def steered_logits(lab, method, artifact, entry, controls, texts):
    systems = lab.system_prompts(method, artifact, entry.space, controls)
    systems = systems * len(texts) if len(systems) == 1 else systems  # one control broadcasts
    with lab.steer(method, artifact, entry.space, controls):
        return last_logits(lab, texts, systems)


def test_artifact_round_trips_through_safetensors_and_json(case, tmp_path):
    _, _, _, artifact, _, _ = case
    artifact.save(tmp_path)
    loaded = Artifact.load(tmp_path)
    assert loaded.meta == artifact.meta and loaded.sites == artifact.sites and loaded.vectors == artifact.vectors
    assert set(loaded.tensors) == set(artifact.tensors)
    for key, tensor in artifact.tensors.items():
        assert torch.equal(loaded.tensors[key], tensor.cpu())


def test_neutral_control_reproduces_unsteered_logits_exactly(case):
    name, lab, method, artifact, entry, controls = case
    if controls["neutral"] is None:
        pytest.skip(f"{name} has no neutral control")
    base = last_logits(lab, ["Hi there", "Why?"])
    assert torch.equal(steered_logits(lab, method, artifact, entry, [controls["neutral"]], ["Hi there", "Why?"]), base)


def test_active_control_changes_output_and_hooks_go_away_even_after_errors(case):
    name, lab, method, artifact, entry, controls = case
    if controls["active"] is None:
        pytest.skip(f"{name} has no active control")
    before, base = hook_count(lab.model.hf), last_logits(lab, ["Hi there"])
    assert not torch.allclose(steered_logits(lab, method, artifact, entry, [controls["active"]], ["Hi there"]), base)
    assert hook_count(lab.model.hf) == before
    with pytest.raises(KeyError):
        with lab.steer(method, artifact, entry.space, [controls["active"]]):
            raise KeyError("inside")
    assert hook_count(lab.model.hf) == before
    assert torch.equal(last_logits(lab, ["Hi there"]), base)


def test_batched_equals_unbatched_under_steering(case):
    name, lab, method, artifact, entry, controls = case
    control = controls["active"] if controls["active"] is not None else controls["neutral"]
    texts = ["A considerably longer prompt here", "Short"]
    batched = steered_logits(lab, method, artifact, entry, [control], texts)
    single = torch.cat([steered_logits(lab, method, artifact, entry, [control], [t]) for t in texts])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_mixed_controls_in_one_batch_give_the_same_greedy_answers_as_one_control_at_a_time(case):
    """Per-row controls: a sweep packs several controls into one generate call."""
    name, lab, method, artifact, entry, controls = case
    chosen = [c for c in (controls["active"], controls["other"], controls["neutral"]) if c is not None]
    if len(chosen) < 2:
        pytest.skip(f"{name} has a single control")
    prompts = ["Tell me a story", "Why is the sky blue?", "Name a fruit"]
    settings = GenerationSettings(max_new_tokens=8, batch_size=16)
    rows = [(c, p) for c in chosen for p in prompts]
    mixed = lab.answer(method, artifact, entry.space, [c for c, _ in rows], [p for _, p in rows], settings, desc=None)
    one_at_a_time = [g for c in chosen for g in lab.answer(method, artifact, entry.space, [c] * len(prompts), prompts, settings, desc=None)]
    assert [g.output_ids for g in mixed] == [g.output_ids for g in one_at_a_time]
    # ... and not vacuously: in one forward, each row is steered by its own control
    texts = ["Name a fruit"] * len(chosen)
    per_row = steered_logits(lab, method, artifact, entry, chosen, texts)
    single = torch.cat([steered_logits(lab, method, artifact, entry, [c], ["Name a fruit"]) for c in chosen])
    torch.testing.assert_close(per_row, single, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(per_row[0], per_row[1])


def test_evaluate_returns_a_record_for_every_prompt_and_control(case):
    name, lab, method, artifact, entry, controls = case
    study = lab.study
    lab.study = type(study)(**{**study.__dict__, "metrics": [m for m in study.metrics if m.name in ("length", "kl")]})
    result = method.evaluate(lab, entry, artifact)
    n_prompts = len(lab.eval_prompts())
    assert len(result.records) == n_prompts * len(entry.controls)
    assert [p.label for p in result.points] == [entry.space.key(c) for c in entry.controls]
    assert all(p.n == n_prompts for p in result.points)
    record = result.records[0]
    assert {"words", "tokens", "stopped", "kl"} <= set(record.scores)
    assert all(isinstance(v, float) for v in result.summary().values())
    neutral = [r for r in result.records if controls["neutral"] is not None and r.label == entry.space.key(controls["neutral"])]
    assert all(r.scores["kl"] == 0.0 for r in neutral)

"""One contract test, parametrized over every registered method (PEFT's TEST_CASES habit).

Each method needs a case here: a config table for the tiny study, a neutral control (which
must reproduce the unsteered model exactly, or None if the method has none) and an active
control, both in the method's own control-space syntax. The meta-test fails when a registered
method has no case.

The contract runs in full on tiny-llama; ``test_every_method_keeps_the_contract_on_every_architecture``
runs it again on a 2-block model of every other supported architecture (Mistral, Qwen 2 and 3,
Gemma 2 and 3, OLMo 2, GPT-2, Pythia, Phi-3, and OPT, GPT-Neo and Phi, read by detection alone), each
method trained once with its fewest steps.
"""

from pathlib import Path

import dataclasses

import pytest

from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.model.tiny import TINY_ARCHITECTURES
from steerlab.model.zoo import load_model
from steerlab.study.loader import load_study
from steerlab.testing import (PROMPTS, Trained, check_active_changes_and_cleans_up, check_batched_equals_unbatched, check_neutral_is_exact,
                              check_per_row_controls, check_round_trip)
from conftest import write_control_vector

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
    "transfer": {"table": 'source_model = "tiny-llama-wide"\nsource_layer = 1\npairs = "data/pairs.jsonl"\nfit_texts = "data/judge.jsonl"\ncontrols = [-0.4, 0.0, 0.4]',
                 "neutral": "0", "active": "0.4", "other": "-0.4"},
    "vector": {"table": 'file = "data/cv.gguf"\ncontrols = [-1.0, 0.0, 1.0]', "neutral": "0", "active": "1", "other": "-1"},
    "courteous": {"table": "controls = [0.0, 1.0]", "neutral": "0", "active": "1", "other": None},
    "instructed": {"table": "controls = [0.0, 1.0]", "neutral": "0", "active": "1", "other": None},
}


def test_every_registered_method_has_a_contract_case(registry):
    assert set(registry.methods) == set(CASES)


@pytest.fixture(params=sorted(CASES))
def case(request, study_dir: Path, registry, tiny_llama):
    """(name, Trained, entry, controls): the method trained from its case's study table."""
    name = request.param
    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    path = study_dir / f"contract_{name}.toml"
    path.write_text(text + f"[methods.{name}]\n{CASES[name]['table']}\n")
    study = load_study(path, registry)
    lab = Lab(study=study, model=tiny_llama, registry=registry, layout=RunLayout(study_dir / f"run_{name}"), show_progress=False)
    entry = study.methods[0]
    method = registry.methods[name]
    trained = Trained(lab, method, entry.space, method.train(lab, entry.config))
    controls = {k: entry.space.parse(CASES[name][k]) if CASES[name][k] is not None else None for k in ("neutral", "active", "other")}
    return name, trained, entry, controls


def test_artifact_round_trips_through_safetensors_and_json(case, tmp_path):
    check_round_trip(case[1], tmp_path)


def test_neutral_control_reproduces_unsteered_logits_exactly(case):
    name, trained, _, controls = case
    if controls["neutral"] is None:
        pytest.skip(f"{name} has no neutral control")
    check_neutral_is_exact(trained, controls["neutral"])


def test_active_control_changes_output_and_hooks_go_away_even_after_errors(case):
    name, trained, _, controls = case
    if controls["active"] is None:
        pytest.skip(f"{name} has no active control")
    check_active_changes_and_cleans_up(trained, controls["active"])


def test_batched_equals_unbatched_under_steering(case):
    _, trained, _, controls = case
    check_batched_equals_unbatched(trained, controls["active"] if controls["active"] is not None else controls["neutral"])


def test_mixed_controls_in_one_batch_give_the_same_greedy_answers_as_one_control_at_a_time(case):
    """Per-row controls: a sweep packs several controls into one generate call."""
    name, trained, _, controls = case
    chosen = [c for c in (controls["active"], controls["other"], controls["neutral"]) if c is not None]
    if len(chosen) < 2:
        pytest.skip(f"{name} has a single control")
    check_per_row_controls(trained, chosen)


def test_evaluate_returns_a_record_for_every_prompt_and_control(case):
    name, trained, entry, controls = case
    lab = trained.lab
    study = lab.study
    lab.study = dataclasses.replace(study, metrics=[m for m in study.metrics if m.name in ("length", "kl")])
    result = trained.method.evaluate(lab, entry, trained.artifact)
    n_prompts = len(lab.eval_prompts())
    assert len(result.records) == n_prompts * len(entry.controls)
    assert [p.label for p in result.points] == [entry.space.key(c) for c in entry.controls]
    assert all(p.n == n_prompts for p in result.points)
    record = result.records[0]
    assert {"words", "tokens", "stopped", "kl"} <= set(record.scores)
    assert all(isinstance(v, float) for v in result.summary().values())
    neutral = [r for r in result.records if controls["neutral"] is not None and r.label == entry.space.key(controls["neutral"])]
    assert all(r.scores["kl"] == 0.0 for r in neutral)


@pytest.mark.parametrize("name", sorted(CASES))
def test_generate_takes_one_control_flag_for_every_builtin_method(name, study_dir, capsys):
    """`steerlab generate RUN --control TEXT` for every method, read by the method's own control space."""
    import os

    from steerlab.cli import main

    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    text = text.replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length"]').replace("max_new_tokens = 6", "max_new_tokens = 2")
    path = study_dir / f"gen_{name}.toml"
    path.write_text(text + f"[methods.{name}]\n{CASES[name]['table']}\n")
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", "data.eval_limit=1"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    capsys.readouterr()
    control = CASES[name]["active"] or CASES[name]["neutral"]
    assert main(["generate", str(run_dir), "Why?", "--control", control, "--max-new-tokens", "2"]) == 0
    assert f"[{name} " in capsys.readouterr().out


ARCHITECTURES = ["tiny-gemma3", *(f"tiny-{family}" for family in TINY_ARCHITECTURES)]


SMALLEST = {"transfer": '\npooling = "last"\nadapter = "procrustes"\nfit_limit = 10\npairs_limit = 2'}  # a fit on 10 rows


def fewest_steps(table: str) -> str:
    """A case's table with two optimisation steps (the first is the learning-rate warm-up's, at 0):
    enough to move every trained method off its zero-initialised start (LoRA B, Panacea U), which is
    all the contract needs."""
    return "\n".join("steps = 2" if line.startswith("steps = ") else line for line in table.splitlines())


@pytest.mark.parametrize("model_name", ARCHITECTURES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_method_keeps_the_contract_on_every_architecture(name, model_name, study_dir, registry, tmp_path):
    """Each method trained once on a tiny model of each architecture, then every check of the
    contract: round trip, neutral exact, active changes and cleans up, batched = unbatched, per-row controls."""
    model = load_model(model_name, registry.models, device="cpu")
    write_control_vector(study_dir / "data" / "cv.gguf", model.d_model, model.n_layers, blocks=(1,))
    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0].replace('model = "tiny-llama"', f'model = "{model_name}"')
    path = study_dir / f"arch_{name}.toml"
    path.write_text(text + f"[methods.{name}]\n{fewest_steps(CASES[name]['table'])}{SMALLEST.get(name, '')}\n")
    study = load_study(path, registry)
    entry, method = study.methods[0], registry.methods[study.methods[0].method]
    lab = Lab(study=study, model=model, registry=registry, layout=RunLayout(study_dir / "run"), show_progress=False)
    trained = Trained(lab, method, entry.space, method.train(lab, entry.config))
    controls = {k: entry.space.parse(CASES[name][k]) for k in ("neutral", "active", "other") if CASES[name][k] is not None}
    check_round_trip(trained, tmp_path / "artifact")
    if "neutral" in controls:
        check_neutral_is_exact(trained, controls["neutral"])
    if "active" in controls:
        check_active_changes_and_cleans_up(trained, controls["active"])
    check_batched_equals_unbatched(trained, controls.get("active", controls.get("neutral")))
    if len(controls) > 1:
        check_per_row_controls(trained, [controls[k] for k in ("active", "other", "neutral") if k in controls], PROMPTS[:2], max_new_tokens=4)

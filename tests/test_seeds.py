"""Training seeds: every trained entry once per seed, untrained ones once, --only per (entry,
seed), a resumed split run equal to one process, and the bad inputs of the seed keys."""

import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file

from steerlab.cli import main

SFT = 'data = "data/sft.jsonl"\nrank = 2\nper_dimension = 1\nmax_tokens = 48\nlr = 0.05\nsteps = 2\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]'

STUDY = f"""
[study]
name = "seeded"
model = "tiny-llama"
seeds = [4, 1]

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 4
batch_size = 4

[metrics]
use = ["length", "fluency"]

[methods.panacea]
{SFT}

[methods.prompting]
styles = "data/styles.json"
controls = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]

[methods.base]
"""


@pytest.fixture()
def seeded(study_dir: Path) -> Path:
    (study_dir / "seeded.toml").write_text(STUDY)
    return study_dir


def run(folder: Path, *args: str) -> int:
    return main(["run", *args, "--no-progress"])


def latest(out: Path) -> Path:
    return sorted(out.iterdir(), key=os.path.getmtime)[-1]


def scores(run_dir: Path) -> dict:
    methods = json.loads((run_dir / "results.json").read_text())["methods"]
    return {n: (m["seeds"], [(r["seed"], r["prompt"], r["label"], r["output"], r["scores"]) for r in m["records"]]) for n, m in methods.items()}


def test_a_trained_entry_runs_once_per_seed_and_an_untrained_one_once(seeded):
    assert run(seeded, str(seeded / "seeded.toml"), "--out", str(seeded / "runs")) == 0
    done = latest(seeded / "runs")
    for folder in ("methods/panacea/seed-4", "methods/panacea/seed-1", "methods/prompting", "methods/base"):
        assert (done / folder / "result.json").exists(), folder
    assert not (done / "methods/prompting/seed-4").exists()
    a, b = (load_file(done / f"methods/panacea/seed-{s}/artifact.safetensors") for s in (4, 1))
    assert any(not (a[k] == b[k]).all() for k in a), "two seeds trained the same adapter"
    results = json.loads((done / "results.json").read_text())
    assert results["study"]["seeds"] == [4, 1]
    panacea, base = results["methods"]["panacea"], results["methods"]["base"]
    assert panacea["seeds"] == [4, 1] and base["seeds"] == [4]
    assert sorted({r["seed"] for r in panacea["records"]}) == [1, 4] and {r["seed"] for r in base["records"]} == {4}
    assert len(panacea["records"]) == 2 * 2 * 3 and all(p["n"] == 6 for p in panacea["points"])  # 2 seeds x 2 controls x 3 prompts


def test_a_run_split_by_entry_and_seed_resumes_to_the_numbers_of_one_process(seeded):
    assert run(seeded, str(seeded / "seeded.toml"), "--out", str(seeded / "whole")) == 0
    whole = latest(seeded / "whole")
    assert run(seeded, str(seeded / "seeded.toml"), "--out", str(seeded / "split"), "--only", "panacea@1") == 0
    split = latest(seeded / "split")
    assert (split / "methods/panacea/seed-1/result.json").exists() and not (split / "methods/panacea/seed-4").exists()
    (split / "methods/panacea/seed-1/artifact.safetensors").unlink()  # a finished piece needs no tensors to be read back
    assert run(seeded, "--resume", str(split), "--only", "panacea@4", "--only", "base") == 0
    assert not (split / "results.json").exists()
    assert run(seeded, "--resume", str(split)) == 0
    assert scores(split) == scores(whole)


@pytest.mark.parametrize("study_line, expected", [
    ("seeds = [1, 1]", "key 'seeds' must be a non-empty list of distinct integers"),
    ("seeds = []", "key 'seeds' must be a non-empty list of distinct integers"),
    ("seeds = [-2]", "key 'seeds' must be a non-empty list of distinct integers"),
    ("seeds = [0, 1.5]", "key 'seeds' expected a list of an integer"),
    ("seeds = 3", "key 'seeds' expected a list of an integer"),
    ("seeds = [0, 1]\nseed = 2", "give either key 'seed' (one seed) or key 'seeds' (a list), not both"),
])
def test_a_bad_seed_list_is_one_line_and_exit_2(seeded, capsys, study_line, expected):
    (seeded / "bad.toml").write_text(STUDY.replace("seeds = [4, 1]", study_line))
    assert run(seeded, str(seeded / "bad.toml"), "--out", str(seeded / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.toml: [study]" in err[0] and expected in err[0], err
    assert not (seeded / "runs").exists()


def test_only_names_a_seed_of_the_study(seeded, capsys):
    assert run(seeded, str(seeded / "seeded.toml"), "--out", str(seeded / "runs"), "--only", "panacea@7") == 2
    assert "--only panacea@7: expected NAME@SEED with SEED one of the study's seeds [4, 1]" in capsys.readouterr().err


def test_resume_refuses_a_changed_seed_list(seeded, capsys):
    assert run(seeded, str(seeded / "seeded.toml"), "--out", str(seeded / "runs"), "--only", "base") == 0
    done = latest(seeded / "runs")
    request = json.loads((done / "run.json").read_text())
    (done / "run.json").write_text(json.dumps({**request, "seeds": [4]}))
    assert run(seeded, "--resume", str(done)) == 2
    assert "seeds [4, 1] differ from the seeds [4]" in capsys.readouterr().err


def test_generate_and_the_python_api_open_a_multi_seed_run_at_the_seed_asked_for(seeded, capsys):
    import torch

    import steerlab

    assert run(seeded, str(seeded / "seeded.toml"), "--out", str(seeded / "runs")) == 0
    done = latest(seeded / "runs")
    model = steerlab.load_model("tiny-llama")
    ids = model.tokenizer(["Why is the sky blue?"], return_tensors="pt")["input_ids"]
    logits = {}
    for seed in (4, 1):
        opened = steerlab.open_run(done, seed=seed)
        assert opened.methods == ["panacea", "prompting", "base"]  # untrained entries are shared by every seed
        with opened.steering(model.hf, method="panacea", control="humorous=1"), torch.no_grad():
            logits[seed] = model.hf(input_ids=ids).logits
    assert not torch.allclose(logits[4], logits[1])  # each seed's own adapter
    assert main(["generate", str(done), "Why?", "--method", "panacea", "--control", "humorous=1", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert steerlab.open_run(done, seed=1).generate("Why?", method="panacea", control="humorous=1")[0] in printed
    assert main(["generate", str(done), "Why?", "--seed", "7"]) == 2
    assert "--seed 7: expected one of the run's training seeds [4, 1]" in capsys.readouterr().err

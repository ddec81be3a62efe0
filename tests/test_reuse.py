"""``reuse_from``: a piece takes an artifact trained in another run only when that run trained it
exactly as this study would (same seed, training keys, data contents), else it trains and says why."""

import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file

from steerlab.cli import main

SFT = 'data = "data/sft.jsonl"\nrank = 2\nper_dimension = 1\nmax_tokens = 48\nlr = 0.05\nsteps = 2'

SOURCE = f"""
[study]
name = "source"
model = "tiny-llama"
seeds = [4, 1]

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 4
batch_size = 4

[metrics]
use = ["length"]

[methods.panacea]
{SFT}
controls = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]
"""


def reusing(run: Path, seeds: str = "[1]", training: str = SFT) -> str:
    """A second study with another sweep (grid step, controls) that reuses ``run``'s Panacea."""
    return (SOURCE.replace('name = "source"', 'name = "reuser"').replace("seeds = [4, 1]", f"seeds = {seeds}")
            .replace(SFT, training).replace("controls = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]",
                                            f'grid_step = 0.5\ncontrols = [[0.0, 1.0, 0.0]]\nreuse_from = "{run}"'))


def latest(out: Path) -> Path:
    return sorted(out.iterdir(), key=os.path.getmtime)[-1]


def run_study(folder: Path, name: str, text: str) -> Path:
    (folder / f"{name}.toml").write_text(text)
    assert main(["run", str(folder / f"{name}.toml"), "--out", str(folder / name), "--no-progress"]) == 0
    return latest(folder / name)


@pytest.fixture()
def source(study_dir: Path) -> Path:
    return run_study(study_dir, "source", SOURCE)


def header(folder: Path) -> dict:
    return json.loads((folder / "artifact.json").read_text())["header"]


def same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(a / "artifact.safetensors"), load_file(b / "artifact.safetensors")
    return x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x)


def test_a_matching_artifact_is_reused_at_its_seed_and_keeps_its_training_time(study_dir, source, monkeypatch, capsys):
    from steerlab_plugins.panacea.method import PanaceaMethod

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a matching artifact was there")

    monkeypatch.setattr(PanaceaMethod, "train", no_training)
    done = run_study(study_dir, "reuser", reusing(source, seeds="[1, 4]"))
    for seed in (1, 4):
        mine, theirs = done / f"methods/panacea/seed-{seed}", source / f"methods/panacea/seed-{seed}"
        assert same_tensors(mine, theirs)
        assert header(mine)["reused_from"] == str(theirs) and header(mine)["train_seed"] == seed
        assert header(mine)["train_seconds"] == header(theirs)["train_seconds"] > 0
    assert "panacea@1: reusing the artifact trained in" in capsys.readouterr().err
    records = json.loads((done / "results.json").read_text())["methods"]["panacea"]["records"]
    assert {r["label"] for r in records} == {"(0.00,1.00,0.00)"}  # its own sweep, not the source's


def test_retraining_gives_the_tensors_a_reuse_takes(study_dir, source):
    """The premise of reuse: training is a function of the seed, the entry and its settings."""
    fresh = run_study(study_dir, "fresh", reusing(source).replace(f'reuse_from = "{source}"', ""))
    assert not header(fresh / "methods/panacea").get("reused_from")
    assert same_tensors(fresh / "methods/panacea", source / "methods/panacea/seed-1")


@pytest.mark.parametrize("change, reason", [
    ("steps", "trained with steps = 2, this study has steps = 3"),
    ("data", "changed since that run began"),
    ("seed", "no kept artifact of entry 'panacea' at seed 7"),
    ("tensors", "no kept artifact of entry 'panacea' at seed 1 (a published run keeps JSON only)"),
    ("folder", "no such run folder"),
])
def test_anything_short_of_a_match_trains_and_says_why(study_dir, source, capsys, change, reason):
    training, seeds, run = SFT, "[1]", source
    if change == "steps":
        training = SFT.replace("steps = 2", "steps = 3")
    elif change == "data":
        with (study_dir / "data/sft.jsonl").open("a") as f:
            f.write(json.dumps({"prompt": "Where?", "style": "helpful", "response": "Here."}) + "\n")
    elif change == "seed":
        seeds = "[7]"
    elif change == "tensors":
        (source / "methods/panacea/seed-1/artifact.safetensors").unlink()
    else:
        run = study_dir / "nowhere"
    done = run_study(study_dir, "reuser", reusing(run, seeds=seeds, training=training))
    err = capsys.readouterr().err
    assert "not reusing an artifact" in err and reason in err, err
    assert not header(done / "methods/panacea").get("reused_from")
    assert header(done / "methods/panacea")["train_seconds"] > 0


def test_a_bad_reuse_from_is_one_line_and_exit_2(study_dir, capsys):
    (study_dir / "bad.toml").write_text(SOURCE.replace("lr = 0.05", "lr = 0.05\nreuse_from = 3"))
    assert main(["run", str(study_dir / "bad.toml"), "--out", str(study_dir / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.toml: [methods.panacea]: key 'reuse_from' expected the path of a run folder" in err[0], err
    assert not (study_dir / "runs").exists()

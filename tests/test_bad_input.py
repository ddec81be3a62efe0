"""A table of bad inputs, as a careful and as an adversarial user would type them: a study file,
a data file, a command line, a corrupt artifact or run folder. Every one must end in exit 2 with
one line naming the file, the key or flag and what was expected; no traceback (an exception
escaping ``main`` fails the test), and no run folder left behind when the run never started.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from steerlab.cli import main

Edit = Callable[[Path], list[str]]  # prepares the study folder; returns the argv


def one_error_line(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith(("Loading weights", "steerlab: running"))]
    assert code == 2, (code, err)
    assert len(err) == 1 and err[0].startswith("steerlab: error: "), err
    return err[0]


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def run_argv(study_dir: Path, *extra: str) -> list[str]:
    return ["run", str(study_dir / "tiny.toml"), "--out", str(study_dir / "runs"), "--no-progress", *extra]


def study_case(old: str, new: str) -> Edit:
    def edit(study_dir: Path) -> list[str]:
        replace(study_dir / "tiny.toml", old, new)
        return run_argv(study_dir)
    return edit


def data_case(name: str, content: bytes | None) -> Edit:
    def edit(study_dir: Path) -> list[str]:
        path = study_dir / "data" / name
        if content is None:  # a folder where a file should be
            path.unlink()
            path.mkdir()
        else:
            path.write_bytes(content)
        return run_argv(study_dir)
    return edit


def panacea_table(extra: str) -> Edit:
    def edit(study_dir: Path) -> list[str]:
        replace(study_dir / "tiny.toml", "[methods.base]", '[methods.panacea]\ndata = "data/sft.jsonl"\nrank = 2\nsteps = 2\n' + extra + "\n[methods.base]")
        return run_argv(study_dir)
    return edit


def not_a_model(study_dir: Path) -> list[str]:
    (study_dir / "junk").mkdir()
    (study_dir / "junk" / "config.json").write_text("{}")
    replace(study_dir / "tiny.toml", 'model = "tiny-llama"', f'model = "{study_dir / "junk"}"')
    return run_argv(study_dir)


def out_is_a_file(study_dir: Path) -> list[str]:
    (study_dir / "afile").write_text("x")
    return ["run", str(study_dir / "tiny.toml"), "--out", str(study_dir / "afile"), "--no-progress"]


def out_under_a_file(study_dir: Path) -> list[str]:
    (study_dir / "afile").write_text("x")
    return ["run", str(study_dir / "tiny.toml"), "--out", str(study_dir / "afile" / "runs"), "--no-progress"]


STARTS = {  # bad input caught before a run folder exists: (prepare, words the one line must hold)
    "grid step 0": (panacea_table("grid_step = 0.0"), ["[methods.panacea]", "grid step"]),
    "grid step not 1/n": (panacea_table("grid_step = 0.3"), ["[methods.panacea]", "grid step must be 1/n"]),
    "token budget shorter than prompts": (panacea_table("max_tokens = 3"), ["[methods.panacea]", "max_tokens", "raise max_tokens"]),
    "nan control": (study_case("controls = [-1.0", "controls = [nan, -1.0"), ["[methods.actdiff]", "'controls'", "finite"]),
    "inf control": (study_case("controls = [-1.0", "controls = [inf, -1.0"), ["[methods.actdiff]", "'controls'", "finite"]),
    "nan setting": (study_case("layer_sweep_tokens = 4", "layer_sweep_tokens = 4\nlayer_sweep_control = nan"),
                    ["[methods.actdiff]", "'layer_sweep_control'", "finite"]),
    "unknown device": (study_case("seed = 3", 'seed = 3\ndevice = "tpu"'), ["[study]", "unknown device 'tpu'"]),
    "absent cuda": (study_case("seed = 3", 'seed = 3\ndevice = "cuda:7"'), ["[study]", "not available"]),
    "unknown dtype": (study_case("seed = 3", 'seed = 3\ndtype = "float8"'), ["[study]", "unknown dtype 'float8'"]),
    "seed out of range": (study_case("seed = 3", "seed = 99999999999"), ["[study]", "'seed'"]),
    "negative temperature": (study_case("batch_size = 2", "batch_size = 2\ntemperature = -0.5"), ["[generation]", "'temperature'"]),
    "top_p above 1": (study_case("batch_size = 2", "batch_size = 2\ntop_p = 2.0"), ["[generation]", "'top_p'"]),
    "unknown pareto axis": (study_case("[quick]", '[pareto]\naxes = ["judge.cats", "judge.dogs"]\n\n[quick]'),
                            ["[pareto]", "'axes'", "judge.dogs", "judge.cats"]),
    "quick typo": (study_case("[quick]\n", '[quick]\n"methods.actdiff.layr" = 2\n'), ["[quick]", "'layr'"]),
    "layer out of range": (study_case("layer = 1", "layer = 9"), ["[methods.actdiff]", "layer 9 out of range"]),
    "not a model": (not_a_model, ["junk", "cannot be loaded"]),
    "study not utf-8": (data_case("../tiny.toml", b"[study]\nname = \"t\xff\"\n"), ["tiny.toml", "not UTF-8"]),
    "data line is a number": (data_case("eval.jsonl", b'{"text": "hi"}\n42\n'), ["eval.jsonl:2", "JSON object"]),
    "data line is null": (data_case("pairs.jsonl", b"null\n"), ["pairs.jsonl:1", "JSON object"]),
    "data key not a string": (data_case("eval.jsonl", b'{"text": 3}\n'), ["eval.jsonl:1", "'text'", "string"]),
    "data key missing": (data_case("judge.jsonl", b'{"text": "a"}\n'), ["judge.jsonl:1", "'label'"]),
    "data not utf-8": (data_case("eval.jsonl", b'{"text": "\xff"}\n'), ["eval.jsonl", "not UTF-8"]),
    "data is a folder": (data_case("eval.jsonl", None), ["eval.jsonl", "folder"]),
    "data is empty": (data_case("eval.jsonl", b"\n"), ["eval.jsonl", "no records"]),
    "empty prompt": (data_case("eval.jsonl", b'{"text": "Hi."}\n{"text": "  "}\n'), ["eval.jsonl:2", "'text'", "empty"]),
    "unknown model name": (study_case('model = "tiny-llama"', 'model = "tiny-lama"'), ["[study]", "'model'", "unknown model 'tiny-lama'", "tiny-llama"]),
    "empty model": (study_case('model = "tiny-llama"', 'model = ""'), ["[study]", "'model'"]),
    "entry model unknown": (study_case("[methods.base]", '[methods.base]\nmodel = "nope"'), ["[methods.base]", "'model'", "unknown model 'nope'"]),
    "negative layer": (study_case("layer = 1", "layer = -2"), ["[methods.actdiff]", "'layer'", "-2"]),
    "concentration 0": (panacea_table("concentration = 0.0"), ["[methods.panacea]", "'concentration'", "> 0"]),
    "holdout above its range": (panacea_table("holdout = 1.5\neval_every = 1"), ["[methods.panacea]", "'holdout'", "1.5"]),
    "out is a file": (out_is_a_file, ["--out", "not a folder"]),
    "out under a file": (out_under_a_file, ["--out", "cannot create a run folder"]),
    "set without =": (lambda d: run_argv(d, "--set", "seed"), ["--set", "KEY.PATH=VALUE"]),
    "unknown plugin file": (lambda d: run_argv(d, "--plugin", str(d / "nope.py")), ["nope.py", "plugin file not found"]),
}


@pytest.mark.parametrize("case", sorted(STARTS))
def test_bad_input_before_a_run_starts_is_one_line_exit_2_and_leaves_no_run_folder(case, study_dir, capsys):
    prepare, words = STARTS[case]
    line = one_error_line(capsys, prepare(study_dir))
    for word in words:
        assert word in line, (word, line)
    runs = study_dir / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_a_judge_file_of_one_label_names_the_file(study_dir, capsys):
    (study_dir / "data" / "judge.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n')
    assert main(run_argv(study_dir)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("steerlab: error:")]
    assert len(err) == 1 and "judge.jsonl" in err[0] and "two labels" in err[0], err


def test_a_byte_order_mark_is_read_not_refused(tmp_path):
    """Windows editors save UTF-8 with a BOM; the records are the same."""
    from steerlab.storage import read_jsonl

    path = tmp_path / "eval.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "Hi."}\n')
    assert read_jsonl(path, ("text",)) == [{"text": "Hi."}]


# ---- a finished run, then something broken in it or around it --------------------------------

def run_once(study_dir: Path) -> Path:
    out = study_dir / "runs"
    assert main(["run", str(study_dir / "tiny.toml"), "--quick", "--out", str(out), "--no-progress",
                 "--set", "methods.actdiff.layer_sweep=[]"]) == 0
    return sorted(out.iterdir(), key=os.path.getmtime)[-1]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One finished tiny run (module-wide: the cases below each work on a copy)."""
    from conftest import make_study

    return run_once(make_study(tmp_path_factory.mktemp("pristine")))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def nan_tensor(path: Path) -> None:
    save_file({"layer.1": torch.full((64,), float("nan"))}, str(path))


def foreign_tensor(path: Path) -> None:
    save_file({"something.else": torch.zeros(3)}, str(path))


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def other_method(path: Path) -> None:
    edit_json(path, lambda d: d["header"].update(method="panacea"))


def other_model(path: Path) -> None:
    edit_json(path, lambda d: d["header"]["model"].update(fingerprint="0" * 16))


BROKEN = {  # (file in the run, how it is broken, words, command: "resume" or "generate")
    "truncated safetensors": ("methods/actdiff/artifact.safetensors", truncate, ["artifact.safetensors", "safetensors"], "generate"),
    "foreign safetensors": ("methods/actdiff/artifact.safetensors", foreign_tensor, ["artifact.safetensors", "layer.1"], "generate"),
    "nan tensor": ("methods/actdiff/artifact.safetensors", nan_tensor, ["artifact.safetensors", "NaN"], "resume"),
    "artifact json broken": ("methods/actdiff/artifact.json", lambda p: p.write_text('{"format": '), ["artifact.json", "not valid JSON"], "resume"),
    "artifact of another method": ("methods/actdiff/artifact.json", other_method, ["artifact.json", "method 'panacea'"], "generate"),
    "artifact of another model": ("methods/actdiff/artifact.json", other_model, ["artifact.json", "made on model"], "resume"),
    "run.json partial": ("run.json", lambda p: p.write_text('{"study_path": "'), ["run.json", "not valid JSON"], "resume"),
    "run.json not an object": ("run.json", lambda p: p.write_text("[1, 2]"), ["run.json", "JSON object"], "generate"),
    "result.json wrong shape": ("methods/actdiff/result.json", lambda p: p.write_text('{"points": 3, "records": []}'),
                                ["result.json", "points", "delete it"], "resume"),
    "sweep checkpoint cut short": ("methods/actdiff/sweep.partial.json", truncate, ["sweep.partial.json", "not valid JSON"], "resume-sweep"),
    "sweep checkpoint record broken": ("methods/actdiff/sweep.partial.json",
                                       lambda p: edit_json(p, lambda d: d["batches"]["0"][0].update(prompt=1)),
                                       ["sweep.partial.json", "prompt", "delete it"], "resume-sweep"),
    "unsteered answers malformed": ("base_generations.json", lambda p: p.write_text('[{"nope": 1}]'), ["base_generations.json", "malformed"], "resume-sweep"),
    "data changed since the run began": ("<data>", lambda p: p.write_text('{"text": "A new prompt."}\n'), ["eval.jsonl", "changed since run"], "resume"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_corrupt_run_folder_or_artifact_is_one_line_exit_2(case, pristine, tmp_path, capsys):
    import shutil

    study_src = pristine.parent.parent
    copy = tmp_path / "study"
    shutil.copytree(study_src, copy, ignore=shutil.ignore_patterns("runs"))
    run_dir = copy / "runs" / pristine.name
    shutil.copytree(pristine, run_dir)
    edit_json(run_dir / "run.json", lambda d: d.update(study_path=str(copy / "tiny.toml"),
                                                       data_sha256={str(copy / "data" / Path(k).name): v for k, v in d["data_sha256"].items()}))
    name, breaker, words, command = BROKEN[case]
    if command == "resume-sweep":  # the stage that reads this file must not be finished yet
        (run_dir / "methods/actdiff/result.json").unlink()
        (run_dir / "results.json").unlink()
    target = copy / "data" / "eval.jsonl" if name == "<data>" else run_dir / name
    breaker(target)
    argv = ["generate", str(run_dir), "Why?", "--max-new-tokens", "2"] if command == "generate" else ["run", "--resume", str(run_dir), "--no-progress"]
    line = one_error_line(capsys, argv)
    for word in words:
        assert word in line, (word, line)


def test_resume_refuses_flags_that_would_silently_change_the_run(pristine, capsys):
    for extra in (["--set", "seed=4"], ["--quick"], [str(pristine / "study.toml")], ["--plugin", "x.py"]):
        line = one_error_line(capsys, ["run", "--resume", str(pristine), *extra])
        assert "--resume" in line and "cannot be given with it" in line


def test_resume_works_from_another_folder_because_run_json_keeps_absolute_paths(pristine, tmp_path, monkeypatch, capsys):
    before = json.loads((pristine / "results.json").read_text())
    (pristine / "results.json").unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--resume", str(pristine), "--no-progress"]) == 0
    after = json.loads((pristine / "results.json").read_text())["methods"]
    assert {n: {k: v for k, v in m.items() if k != "cost"} for n, m in after.items()} == \
        {n: {k: v for k, v in m.items() if k != "cost"} for n, m in before["methods"].items()}


@pytest.mark.parametrize(("argv", "words"), [
    (["--max-new-tokens", "0"], ["--max-new-tokens 0"]),
    (["--max-new-tokens", "-5"], ["--max-new-tokens -5"]),
    (["--control", "-inf"], ["--control", "finite"]),
    (["--control", ""], ["--control"]),
    (["--method", "ghost"], ["--method 'ghost'", "entries"]),
])
def test_generate_rejects_bad_flags(pristine, capsys, argv, words):
    line = one_error_line(capsys, ["generate", str(pristine), "Why?", *argv])
    for word in words:
        assert word in line, (word, line)


def test_resume_of_something_that_is_not_a_run(tmp_path, capsys):
    assert "not a run folder" in one_error_line(capsys, ["run", "--resume", str(tmp_path)])


@pytest.mark.parametrize("argv", [["generate", "x", "Why?", "--max-new-tokens", "abc"], ["run"], ["nonsense"], ["inspect"]])
def test_a_malformed_command_line_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("steerlab: error:"), err

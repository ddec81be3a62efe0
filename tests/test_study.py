"""Study validation: every error names the file, the key and what was expected; exit 2."""

from pathlib import Path

import pytest

from steerlab.cli import main
from steerlab.errors import ConfigError
from steerlab.controls import Scalar, Simplex
from steerlab.study.loader import load_study


def edit(study_dir: Path, old: str, new: str) -> Path:
    path = study_dir / "tiny.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    return path


def test_the_tiny_study_validates_into_frozen_configs(study_dir, registry):
    study = load_study(study_dir / "tiny.toml", registry)
    actdiff = study.methods[0]
    assert actdiff.method == "actdiff" and actdiff.config.layer == 1
    assert actdiff.controls == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert Path(actdiff.config.pairs).is_absolute()
    with pytest.raises(AttributeError):
        actdiff.config.layer = 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("layer = 1", "layr = 1", r"tiny.toml: \[methods.actdiff\]: unknown key 'layr' \(expected one of: .*layer"),
        ("[methods.base]", "[methods.base]\ncontrol = 1", r"\[methods.base\]: unknown key 'control' \(expected one of: concept, controls, method, model, reuse_from\)"),
        ("layer = 1", 'layer = "one"', r"\[methods.actdiff\]: key 'layer' expected an integer, got 'one'"),
        ('pairs = "data/pairs.jsonl"', 'pairs = "data/nope.jsonl"', r"key 'pairs': file not found: .*nope.jsonl"),
        ("[methods.base]", "[methods.ghost]", r"\[methods.ghost\] key 'method': unknown method 'ghost' \(expected one of: .*actdiff"),
        ('model = "tiny-llama"', "model = 3", r"\[study\]: key 'model' expected a string"),
        ("max_new_tokens = 6", "max_new_tokens = 0", r"\[generation\]: key 'max_new_tokens' must be >= 1"),
        ('"judge"]', '"judje"]', r"\[metrics\] key 'use': unknown metric 'judje'"),
        ("layer = 1", 'layer = 1\naggregator = "median"', r"key 'aggregator' must be one of"),
        ("controls = [-1.0", 'controls = ["big", -1.0', r"key 'controls': method 'actdiff': expected a number \(strength\), got 'big'"),
        ("controls = [-1.0", "controls = [nan, -1.0", r"key 'controls': method 'actdiff': expected a number \(strength\), finite, got nan"),
        ("controls = [-1.0", "controls = [-1.0, -1.0", r"key 'controls': method 'actdiff': control -1 is listed twice"),
        ("[quick]\n", "[quick]\n\"generation.max_new_tokns\" = 3\n", r"tiny.toml \(with its \[quick\] overrides\): \[generation\]: unknown key 'max_new_tokns'"),
        ("[metrics.judge]", "[judge]", r"unknown table 'judge'.*the judge's settings live in \[metrics.judge\]"),
        ("seed = 3", "seed = -1", r"\[study\]: key 'seed' must be between 0 and"),
        ("batch_size = 2", "batch_size = 2\ntop_p = 2.0", r"\[generation\]: key 'top_p' must be in \(0, 1\]"),
        ("batch_size = 2", "batch_size = 2\ntemperature = -1.0", r"\[generation\]: key 'temperature' must be a finite number > 0"),
    ],
)
def test_bad_study_names_file_key_and_expectation(study_dir, registry, old, new, message):
    path = edit(study_dir, old, new)
    with pytest.raises(ConfigError, match=message):
        load_study(path, registry)


def test_cli_exits_2_with_one_line_naming_the_misspelled_key(study_dir, capsys):
    path = edit(study_dir, "layer = 1", "layr = 1")
    assert main(["run", str(path), "--out", str(study_dir / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tiny.toml" in err and "'layr'" in err
    assert not (study_dir / "runs").exists()


def test_broken_toml_exits_2_with_file_and_line(study_dir, capsys):
    path = edit(study_dir, "seed = 3", "seed = = 3")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "tiny.toml: invalid TOML" in err and "line 5" in err


def test_set_overrides_any_key_before_validation(study_dir, registry):
    study = load_study(study_dir / "tiny.toml", registry, ["methods.actdiff.layer=2", "generation.max_new_tokens=9", "study.description=hello world"])
    assert study.methods[0].config.layer == 2
    assert study.generation.max_new_tokens == 9
    assert study.meta.description == "hello world"
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_study(study_dir / "tiny.toml", registry, ["methods.actdiff.nope=1"])


def test_quick_keeps_negative_zero_positive_and_applies_quick_table(study_dir, registry):
    study = load_study(study_dir / "tiny.toml", registry, quick=True)
    assert study.methods[0].controls == [-1.0, 0.0, 1.0]
    assert study.generation.max_new_tokens == 4
    assert study.data.eval_limit == 6


def test_quick_thinning_lives_in_the_control_space():
    assert Scalar().quick([-2.0, -1.0, 0.0, 1.0, 2.0]) == [-2.0, 0.0, 2.0]
    assert Scalar().quick([0.1, 0.5, 0.9, 1.3]) == [0.1, 1.3]
    simplex = Simplex(["a", "b"], 0.25)
    assert simplex.quick(simplex.default_grid()) == [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]

"""``steerlab new-plugin``: the package it writes installs (a real pip install into a folder of its
own, so the test venv is untouched), lists, runs in a study and passes its own contract test."""

import os
import subprocess
import sys
from pathlib import Path


from steerlab.cli import main


def test_new_plugin_refuses_a_bad_name_or_an_existing_folder(tmp_path, capsys):
    for bad in ("My-Method", "class", "9lives", "Upper"):
        assert main(["new-plugin", bad, "--dir", str(tmp_path / bad)]) == 2
        assert "lower-case Python identifier" in capsys.readouterr().err
        assert not (tmp_path / bad).exists()
    (tmp_path / "taken").mkdir()
    assert main(["new-plugin", "taken", "--dir", str(tmp_path / "taken")]) == 2
    assert "never overwrites" in capsys.readouterr().err


def test_the_scaffolded_plugin_installs_lists_runs_in_a_study_and_passes_its_own_test(tmp_path, capsys):
    plugin = tmp_path / "my_steer"
    assert main(["new-plugin", "my_steer", "--dir", str(plugin)]) == 0
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(plugin)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    run = lambda *argv, cwd=plugin: subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True)  # noqa: E731
    listed = run("-m", "steerlab.cli", "plugins")
    assert listed.returncode == 0 and any(line.split()[:3] == ["method", "my_steer", "my_steer"] for line in listed.stdout.splitlines()), listed.stdout
    study = run("-m", "steerlab.cli", "run", "example.toml", "--out", str(tmp_path / "runs"), "--no-progress")
    assert study.returncode == 0, study.stderr[-2000:]
    assert any((tmp_path / "runs").glob("*/methods/my_steer/artifact.safetensors"))
    own_test = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
    assert own_test.returncode == 0 and "1 passed" in own_test.stdout, own_test.stdout[-2000:]


def test_the_scaffolded_package_requires_the_python_that_steerlab_itself_requires(tmp_path, monkeypatch):
    import tomllib
    from importlib import metadata

    from steerlab import scaffold

    assert main(["new-plugin", "my_steer", "--dir", str(tmp_path / "a")]) == 0
    written = tomllib.loads((tmp_path / "a" / "pyproject.toml").read_text())["project"]["requires-python"]
    ours = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["requires-python"]
    assert written == metadata.metadata("steerlab")["Requires-Python"] == ours
    monkeypatch.setattr(scaffold.metadata, "metadata", lambda name: {"Requires-Python": ">=3.12"})
    assert main(["new-plugin", "my_steer", "--dir", str(tmp_path / "b")]) == 0
    assert tomllib.loads((tmp_path / "b" / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.12"

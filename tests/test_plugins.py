"""Plugin discovery: entry points, local files, loud failures, duplicate names."""

import re
import sys
import textwrap
from pathlib import Path

import pytest

from steerlab.errors import ConfigError
from steerlab.plugin import build_registry

LOCAL_PLUGIN = '''
from contextlib import nullcontext
from steerlab.api import Artifact, BaseMethod, hookimpl

class Echo(BaseMethod):
    name = "{name}"
    description = "does nothing, loudly"
    def train(self, lab, config):
        return Artifact({{}})
    def steer(self, lab, artifact, controls):
        return nullcontext()

@hookimpl
def steerlab_methods(register):
    register(Echo())
'''


def write_plugin(path: Path, name: str = "echo") -> Path:
    path.write_text(LOCAL_PLUGIN.format(name=name))
    return path


def test_builtins_register_through_the_entry_point_group(registry):
    assert registry.providers[("methods", "actdiff")] == "actdiff"
    assert registry.providers[("methods", "base")] == "core"
    assert {"length", "fluency", "kl", "similarity", "judge"} <= set(registry.metrics)
    assert {"vector", "svd"} <= set(registry.inspectors)
    assert {"smollm2-135m-instruct", "gemma3-270m", "tiny-llama", "tiny-gemma3"} <= set(registry.models)
    assert "concise" in registry.datasets


def test_a_local_plugin_file_adds_a_method(tmp_path):
    path = write_plugin(tmp_path / "echo_plugin.py")
    registry = build_registry([path])
    assert registry.methods["echo"].description == "does nothing, loudly"
    assert registry.providers[("methods", "echo")] == str(path)


def test_an_installed_distribution_is_discovered_by_entry_point(tmp_path, monkeypatch):
    """A fake installed package (dist-info + module on sys.path), found the way pip installs are."""
    write_plugin(tmp_path / "thirdparty_steer.py", name="thirdparty")
    info = tmp_path / "thirdparty_steer-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-steer\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[steerlab]\nthirdparty = thirdparty_steer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry()
    assert registry.providers[("methods", "thirdparty")] == "thirdparty"
    sys.modules.pop("thirdparty_steer", None)


def test_a_misspelled_hook_fails_loudly(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(textwrap.dedent('''
        from steerlab.hookspecs import hookimpl
        @hookimpl
        def steerlab_method(register):
            pass
    '''))
    with pytest.raises(ConfigError, match="unknown hook.*steerlab_method"):
        build_registry([path])


def test_the_same_name_registered_twice_names_both_plugins(tmp_path):
    path = write_plugin(tmp_path / "dup.py", name="actdiff")
    with pytest.raises(ConfigError, match="'actdiff' registered twice: by 'actdiff' and by"):
        build_registry([path])


def test_a_missing_or_broken_plugin_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="plugin file not found"):
        build_registry([tmp_path / "nope.py"])
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    with pytest.raises(ConfigError, match="broken.py: plugin failed to import: ModuleNotFoundError"):
        build_registry([tmp_path / "broken.py"])


def readme_block(heading: str, index: int = 0) -> str:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)[index]


def test_the_readme_tutorial_plugin_steers_per_row_and_passes_inspect_vector(tmp_path, study_dir, tiny_llama, registry, capsys):
    """The README's 'Write your own method' example, run as written: in a study, through
    ``generate`` and through ``inspect vector`` (it declares its residual vector)."""
    import os

    import torch

    from steerlab.cli import main
    from steerlab.model.generation import tokenize_prompts
    from steerlab.lab import Lab
    from steerlab.layout import RunLayout

    path = study_dir / "my_method.py"
    path.write_text(readme_block("## Write your own method"))
    method = build_registry([path]).methods["random-direction"]
    lab = Lab(study=None, model=tiny_llama, registry=registry, layout=RunLayout(tmp_path), show_progress=False)
    artifact = method.train(lab, method.Config(layer=1))
    enc = tokenize_prompts(tiny_llama, ["Hello", "Hello"])
    with torch.no_grad():
        base = tiny_llama.hf(**enc).logits
        with method.steer(lab, artifact, torch.tensor([5.0, 0.0])):
            steered = tiny_llama.hf(**enc).logits
        assert torch.equal(tiny_llama.hf(**enc).logits, base)
    assert not torch.allclose(base[0], steered[0]) and torch.equal(base[1], steered[1])  # row 2 at norm 0

    study = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    (study_dir / "rd.toml").write_text(study.replace("seed = 3", 'seed = 3\nplugins = ["my_method.py"]')
                                       .replace(', "judge"]', "]").replace('[metrics.judge]\ndata = "data/judge.jsonl"\n', "")
                                       + "[methods.random-direction]\nlayer = 1\ncontrols = [-4.0, 0.0, 4.0]\n")
    out = study_dir / "runs"
    assert main(["run", str(study_dir / "rd.toml"), "--out", str(out), "--no-progress"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    capsys.readouterr()
    assert main(["inspect", "vector", str(run_dir), "--top", "3"]) == 0
    assert "## Logit lens" in capsys.readouterr().out


def test_the_readme_control_space_example_is_one_class_that_validates_and_thins(tmp_path):
    namespace: dict = {}
    exec(readme_block("## Write your own method", 1), namespace)
    space = namespace["Temperature"]()
    assert space.check_all([0.5, 1.0, 2.0, 4.0]) == [0.5, 1.0, 2.0, 4.0]
    assert space.quick([0.5, 1.0, 2.0, 4.0]) == [0.5, 1.0, 4.0]
    assert space.key(space.parse("2")) == "T=2"
    with pytest.raises(ValueError, match="must be > 0"):
        space.check(-1.0)
    with pytest.raises(ValueError, match="finite"):
        space.check(float("nan"))
    assert space.tensor([0.5, 2.0]).tolist() == [0.5, 2.0]


def test_a_method_missing_a_member_is_refused_at_registration_naming_plugin_and_member(tmp_path):
    path = tmp_path / "half.py"
    path.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from steerlab.api import hookimpl

        class Half:
            name = "half"
            description = "no steer"
            Config = dataclass(frozen=True)(type("C", (), {}))
            def control_space(self, config): ...
            def train(self, lab, config): ...

        @hookimpl
        def steerlab_methods(register):
            register(Half())
    '''))
    with pytest.raises(ConfigError, match=r"plugin '.*half.py': method 'half' lacks 'steer'"):
        build_registry([path])


def test_a_plugin_hook_that_raises_is_one_error_naming_the_plugin(tmp_path):
    path = tmp_path / "boom.py"
    path.write_text("from steerlab.api import hookimpl\n@hookimpl\ndef steerlab_metrics(register):\n    raise RuntimeError('oops')\n")
    with pytest.raises(ConfigError, match=r"plugin '.*boom.py': hook steerlab_metrics failed: RuntimeError: oops"):
        build_registry([path])


def install_fake_distribution(folder: Path, dist: str, entry_point: str, module: str) -> None:
    """A dist-info declaring a ``steerlab`` entry point, on sys.path: what ``pip install`` leaves."""
    info = folder / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[steerlab]\n{entry_point} = {module}\n")


def test_an_installed_plugin_whose_module_is_gone_is_left_out_with_one_warning_line(tmp_path, monkeypatch):
    """An editable install whose folder was deleted: the entry point names a module that no longer exists."""
    install_fake_distribution(tmp_path, "ghost-steer", "ghost", "ghost_steer")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(Warning) as caught:
        registry = build_registry()
    assert "actdiff" in registry.methods and "base" in registry.methods  # everything else still loads
    [broken] = registry.broken
    assert (broken.name, broken.value, broken.distribution) == ("ghost", "ghost_steer", "ghost-steer")
    [line] = [str(w.message) for w in caught if "ghost" in str(w.message)]
    assert "\n" not in line
    assert line.startswith("plugin 'ghost' (ghost_steer) of the installed distribution 'ghost-steer' cannot be imported")
    assert "ModuleNotFoundError" in line and line.endswith("`pip uninstall ghost-steer`")


def test_a_plugin_that_raises_while_importing_is_left_out_too(tmp_path, monkeypatch):
    (tmp_path / "crashy_steer.py").write_text("raise RuntimeError('half-installed')\n")
    install_fake_distribution(tmp_path, "crashy-steer", "crashy", "crashy_steer")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(Warning, match=r"plugin 'crashy'.*RuntimeError: half-installed.*pip uninstall crashy-steer"):
        registry = build_registry()
    assert [b.name for b in registry.broken] == ["crashy"] and "panacea" in registry.methods
    sys.modules.pop("crashy_steer", None)


def test_steerlab_plugins_lists_what_loaded_and_marks_the_broken_plugin(tmp_path, monkeypatch, capsys):
    from steerlab.cli import main

    install_fake_distribution(tmp_path, "ghost-steer", "ghost", "ghost_steer")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plugins", "--verbose"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split()[:3] for line in out.splitlines()]
    assert ["method", "actdiff", "actdiff"] in rows and ["broken", "ghost", "ghost-steer"] in rows
    assert "BROKEN" in out and "Traceback" not in err
    warned = [line for line in err.splitlines() if "ghost" in line]
    assert len(warned) == 1 and warned[0].startswith("steerlab: warning: plugin 'ghost' (ghost_steer)")


def test_a_command_that_needs_the_broken_plugin_exits_2_naming_it_and_how_to_remove_it(tmp_path, monkeypatch, capsys, study_dir):
    from steerlab.cli import main

    install_fake_distribution(tmp_path, "ghost-steer", "ghost", "ghost_steer")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    (study_dir / "ghost.toml").write_text(text + "[methods.ghost]\nstrength = 1\n")
    assert main(["run", str(study_dir / "ghost.toml"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    error = [line for line in err.splitlines() if line.startswith("steerlab: error:")]
    assert len(error) == 1 and "unknown method 'ghost'" in error[0]
    assert "distribution 'ghost-steer' cannot be imported" in error[0] and "pip uninstall ghost-steer" in error[0]
    assert not (tmp_path / "runs").exists()

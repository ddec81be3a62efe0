"""The Python API (``steerlab.open_run`` / ``load_model`` / ``run_study``, docs/python-api.md) on one
tiny run holding every built-in method that trains: the same greedy tokens as ``steerlab
generate``, the model given back exactly, controls checked by each method's own control space."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import torch

import steerlab
from conftest import make_study
from steerlab.cli import main
from steerlab.errors import ConfigError
from steerlab.model.generation import stop_ids
from steerlab.model.zoo import LoadedModel
from steerlab.run import tools
from steerlab.study.loader import override_text, parse_override
from steerlab.testing import hook_count
from test_contract import CASES

ROOT = Path(__file__).parent.parent
STEERED = ("actdiff", "panacea", "soups", "iav", "genarm")  # every method that trains and steers the model itself
ACTIVE = {"actdiff": "-4", "panacea": "philosophical=1", "soups": "helpful=1", "iav": "2", "genarm": "2", "base": "0"}
PROMPT = "Hello!"
TOKENS = 5


def tiny_study(folder: Path, methods: tuple[str, ...]) -> Path:
    """The shared tiny study (tiny-llama, 3 eval prompts) with only the length metric and the
    contract test's table for each method."""
    text = (folder / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    text = text.replace('use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length"]')
    path = folder / f"{'_'.join(methods)}.toml"
    path.write_text(text + "".join(f"[methods.{name}]\n{CASES[name]['table']}\n\n" for name in methods))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> steerlab.Run:
    folder = make_study(tmp_path_factory.mktemp("notebook"))
    study = tiny_study(folder, (*STEERED, "prompting", "base"))
    return steerlab.run_study(study, {"data.eval_limit": 1}, out=folder / "runs", show_progress=False, **{"generation.max_new_tokens": 2})


@pytest.fixture(scope="module")
def cli_entry(tiny_run: steerlab.Run):
    """``tools.open_run(RUN, METHOD)``, the way ``steerlab generate`` opens a run, once per method."""
    opened: dict[str, tools.OpenRun] = {}

    def entry(method: str) -> tools.OpenRun:
        if method not in opened:
            opened[method] = tools.open_run(tiny_run.folder, method)
        return opened[method]

    return entry


@pytest.fixture()
def user_model() -> LoadedModel:
    """A second copy of the run's model, as a user would load it."""
    return steerlab.load_model("tiny-llama", device="cpu")


def prompt_inputs(model, prompt: str = PROMPT, system: str | None = None) -> dict[str, torch.Tensor]:
    return model.tokenizer([model.format_prompt(prompt, system)], return_tensors="pt", add_special_tokens=False)


def greedy(model, inputs: dict[str, torch.Tensor], **extra) -> torch.Tensor:
    with torch.no_grad():
        return model.hf.generate(**inputs, max_new_tokens=TOKENS, do_sample=False, top_k=None,
                                 pad_token_id=model.tokenizer.pad_token_id, **extra)


def cut(model, ids: list[int]) -> list[int]:
    """New tokens up to the first stop token, as ``steerlab generate`` cuts an answer."""
    stops = stop_ids(model)
    return next((ids[:i] for i, t in enumerate(ids) if t in stops), ids)


def run_state(model) -> tuple[int, bool, dict[str, torch.Tensor]]:
    """Hooks, instance forwards and every parameter: what must be the same after steering."""
    wrapped = any("forward" in vars(m) for m in model.hf.modules())
    return hook_count(model.hf), wrapped, {k: v.clone() for k, v in model.hf.state_dict().items()}


@pytest.mark.parametrize("method", STEERED)
def test_steering_a_plain_hf_model_gives_the_greedy_tokens_of_steerlab_generate(method, tiny_run, cli_entry, user_model):
    control = ACTIVE[method]
    cli = cli_entry(method)  # the CLI's own path: open the run, then answer
    [[expected]] = tools.answer(cli, [PROMPT], [cli.control(control)], tools.with_max_new_tokens(cli.lab.settings, TOKENS))
    inputs = prompt_inputs(user_model)
    with tiny_run.steering(user_model.hf, method=method, control=control):
        steered = greedy(user_model, inputs)[0, inputs["input_ids"].shape[1]:].tolist()
    assert cut(user_model, steered) == expected.output_ids
    assert steered != greedy(user_model, inputs)[0, inputs["input_ids"].shape[1]:].tolist()  # it did steer
    assert tiny_run.generate(PROMPT, method=method, control=control, max_new_tokens=TOKENS) == [expected.output]


def test_run_generate_answers_what_the_steerlab_generate_command_prints(tiny_run, capsys):
    argv = ["generate", str(tiny_run.folder), PROMPT, "Name a fruit.", "--method", "panacea", "--control", "humorous=1", "--max-new-tokens", "4"]
    assert main(argv) == 0
    answers = tiny_run.generate([PROMPT, "Name a fruit."], method="panacea", control=[0, 1, 0], max_new_tokens=4)
    blocks = [f"### {p}\n[panacea lambda=(0.00,1.00,0.00)] {a}\n\n" for p, a in zip([PROMPT, "Name a fruit."], answers)]
    assert capsys.readouterr().out == "".join(blocks)


@pytest.mark.parametrize("method", STEERED)
def test_every_decoding_step_is_steered_as_the_run_steers_a_full_forward(method, tiny_run, cli_entry, user_model):
    """The scores of each step of the user's ``generate`` (KV cache, one new token per step) equal
    the logits of one full forward of the finished sequence steered through the run's own lab."""
    control = ACTIVE[method]
    inputs = prompt_inputs(user_model)
    with tiny_run.steering(user_model.hf, method=method, control=control):
        out = greedy(user_model, inputs, output_scores=True, return_dict_in_generate=True)
    scores = torch.stack(out.scores, dim=1)[0]  # (steps, vocab)
    cli = cli_entry(method)
    with torch.no_grad(), cli.lab.steer(cli.method, cli.artifact, cli.entry.space, [cli.control(control)]):
        full = cli.lab.model.hf(input_ids=out.sequences).logits[0]  # (positions, vocab)
    start = inputs["input_ids"].shape[1] - 1  # the position whose logits choose the first new token
    torch.testing.assert_close(scores, full[start:start + len(scores)], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", (*STEERED, "base"))
def test_steering_gives_the_model_back_exactly_also_after_an_exception(method, tiny_run, user_model):
    inputs = prompt_inputs(user_model)
    with torch.no_grad():
        before = user_model.hf(**inputs).logits
    state = run_state(user_model)
    with torch.no_grad(), tiny_run.steering(user_model.hf, method=method, control=ACTIVE[method]):
        steered = user_model.hf(**inputs).logits
    with pytest.raises(RuntimeError, match="inside the block"), torch.no_grad():
        with tiny_run.steering(user_model.hf, method=method, control=ACTIVE[method]):
            user_model.hf(**inputs)
            raise RuntimeError("inside the block")
    with torch.no_grad():
        after = user_model.hf(**inputs).logits
    assert torch.equal(before, after)
    hooks, wrapped, params = run_state(user_model)
    assert (hooks, wrapped) == state[:2] == (0, False)
    assert all(torch.equal(params[k], state[2][k]) for k in params)
    assert torch.equal(before, steered) == (method == "base")


def test_methods_lists_the_trained_entries_and_an_unknown_one_is_one_error(tiny_run):
    assert tiny_run.methods == [*STEERED, "prompting", "base"]
    with pytest.raises(ConfigError, match=r"method 'nope': no such method entry in .* \(entries: actdiff, panacea"):
        tiny_run.generate(PROMPT, method="nope")


@pytest.mark.parametrize("method, control, expected", [
    ("actdiff", "humorous=1", "expected a number (strength)"),
    ("panacea", 0.5, "expected 3 weights for helpful, humorous, philosophical"),
    ("soups", [0.5, 0.6, 0.0], "must be >= 0 and sum to 1"),
    ("panacea", {"funny": 1.0}, "unknown dimension 'funny'"),
    ("iav", -1.0, "alpha must be >= 0"),
    ("genarm", float("nan"), "finite"),
])
def test_a_bad_control_is_a_config_error_naming_the_method_before_anything_is_attached(method, control, expected, tiny_run, user_model):
    for call in (lambda: tiny_run.generate(PROMPT, method=method, control=control),
                 lambda: tiny_run.steering(user_model.hf, method=method, control=control).__enter__()):
        with pytest.raises(ConfigError) as caught:
            call()
        assert f"for method '{method}' ({method})" in str(caught.value) and expected in str(caught.value)
    assert run_state(user_model)[:2] == (0, False)


def test_a_control_is_read_alike_as_text_list_dict_or_number(tiny_run):
    assert tiny_run.control("panacea", "humorous=1") == tiny_run.control("panacea", [0, 1, 0]) \
        == tiny_run.control("panacea", {"humorous": 1}) == (0.0, 1.0, 0.0)
    assert tiny_run.control("iav", "1.5") == tiny_run.control("iav", 1.5) == 1.5
    assert tiny_run.control("actdiff") == 1.0  # none: the last control of the run's sweep, as the CLI
    same = [tiny_run.generate(PROMPT, method="soups", control=c, max_new_tokens=3) for c in ("helpful=1", [1, 0, 0])]
    assert same[0] == same[1]


def test_a_model_with_other_weights_is_refused(tiny_run, user_model):
    with torch.no_grad():
        user_model.hf.model.norm.weight += 1.0
    with pytest.raises(ConfigError, match="artifact was made on model 'tiny-llama'"):
        with tiny_run.steering(user_model.hf, method="actdiff", control=1.0):
            pass
    assert run_state(user_model)[:2] == (0, False)


def test_prompting_is_refused_by_steering_and_gives_its_system_prompt_instead(tiny_run, user_model):
    with pytest.raises(ConfigError, match="'prompting' .* steers through the system prompt.*run.system_prompt"):
        with tiny_run.steering(user_model.hf, method="prompting", control="humorous=1"):
            pass
    system = tiny_run.system_prompt("prompting", "humorous=1")
    assert isinstance(system, str) and system and tiny_run.system_prompt("panacea", "humorous=1") is None
    answer = tiny_run.generate(PROMPT, method="prompting", control="humorous=1", max_new_tokens=TOKENS)
    inputs = prompt_inputs(user_model, PROMPT, system)
    own = cut(user_model, greedy(user_model, inputs)[0, inputs["input_ids"].shape[1]:].tolist())
    assert answer == [user_model.tokenizer.decode(own, skip_special_tokens=True).strip()]


def test_run_study_keeps_python_overrides_as_set_text_in_run_json(tiny_run):
    request = json.loads((tiny_run.folder / "run.json").read_text())
    assert request["overrides"] == ["data.eval_limit=1", "generation.max_new_tokens=2"]
    assert tiny_run.study.data.eval_limit == 1 and tiny_run.study.generation.max_new_tokens == 2


@pytest.mark.parametrize("value", [4, -2, 0.1, 1e-5, 2.5e20, True, False, "a \"quoted\" path\\n", "é", [1, 2.5, "x"],
                                   [[0.5, 0.5], [1.0, 0.0]], {"a": 1, "b c": [True]}])
def test_a_python_override_reads_back_as_the_same_value(value):
    text = override_text("methods.x.key", value)
    assert parse_override(text) == (["methods", "x", "key"], value)
    assert tomllib.loads(f"v = {text.split('=', 1)[1]}")["v"] == value


def test_an_override_that_is_no_study_key_or_has_no_toml_form_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match="expected a dotted study key"):
        override_text("data..eval_limit", 1)
    with pytest.raises(ConfigError, match="run_study: unknown option 'quik'"):
        steerlab.run_study(tmp_path / "none.toml", quik=True)
    with pytest.raises(ConfigError, match=r"override 'data.x': .* has no TOML form"):
        override_text("data.x", object())


def test_the_public_names_are_importable_from_steerlab_itself():
    assert {"open_run", "load_model", "run_study", "Run", "ConfigError"} <= set(dir(steerlab))
    assert steerlab.ConfigError is ConfigError
    with pytest.raises(AttributeError):
        steerlab.no_such_name  # noqa: B018


def test_the_python_api_page_runs_as_written_on_a_tiny_run(tiny_run, tmp_path, monkeypatch, capsys):
    """Every python block of docs/python-api.md, in order, with the placeholders swapped for a tiny run."""
    page = (ROOT / "docs" / "python-api.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", page, re.S))
    folder = make_study(tmp_path)
    swaps = {"runs/chat3d-20261126-101500": str(tiny_run.folder), "runs/iav-20261126-140000": str(tiny_run.folder),
             "smollm2-135m-instruct": "tiny-llama", "studies/concise.toml": str(tiny_study(folder, ("actdiff", "base"))),
             "max_new_tokens=40": "max_new_tokens=4"}  # a tiny random model says nothing worth 40 tokens
    for placeholder, real in swaps.items():
        assert placeholder in code, placeholder
        code = code.replace(placeholder, real)
    monkeypatch.chdir(tmp_path)  # run_study writes runs/ under the working folder
    namespace: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "control 0.5 for method 'panacea' (panacea): expected 3 weights" in out
    assert namespace["concise"].methods == ["actdiff", "base"] and namespace["concise"].folder.parent == tmp_path / "runs"
    assert hook_count(namespace["hf"]) == 0

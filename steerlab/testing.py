"""The shared contract test, public: every built-in method passes it, and so should yours.

    from steerlab.testing import check_method

    def test_my_method_keeps_the_steerlab_contract(tmp_path):
        check_method(MyMethod(), MyConfig(layer=1), active="0.5", neutral="0", tmp_path=tmp_path)

On a tiny random model built in memory (seconds, offline), ``check_method`` trains the method
and checks what every steering method owes its users:

* the artifact round-trips through safetensors + JSON;
* the neutral control (if the method has one) reproduces the unsteered logits exactly;
* an active control changes them, and every hook is gone on exit, also after an exception;
* a left-padded batch equals its rows one at a time under steering;
* several controls in one batch (one per row) give each row exactly what its control gives alone,
  and the same greedy answers as one control at a time.

Each check is also a function of its own, for tests that want one of them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steerlab.artifact import Artifact
from steerlab.controls import Control, ControlSpace
from steerlab.lab import Lab, Steers
from steerlab.model.generation import GenerationSettings, tokenize_prompts
from steerlab.model.zoo import load_model
from steerlab.plugin import build_registry

PROMPTS = ["Tell me a story", "Why is the sky blue?", "Name a fruit"]
PADDED_PROMPTS = ["Name a fruit", "Tell me a long story about a lighthouse keeper and the sea", "Why?"]  # three lengths


@dataclass
class Trained:
    """A method trained on a tiny model, with what the checks need."""

    lab: Lab
    method: Any
    space: ControlSpace
    artifact: Artifact


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def last_logits(lab: Lab, texts: list[str], systems: list[str | None] | None = None) -> torch.Tensor:
    systems = systems or [None] * len(texts)
    enc = tokenize_prompts(lab.model, [lab.model.format_prompt(t, s) for t, s in zip(texts, systems)])
    with torch.no_grad():
        return lab.model.hf(**enc).logits[:, -1]


def steered_logits(t: Trained, controls: list[Control], texts: list[str]) -> torch.Tensor:
    """Last-position logits of ``texts`` steered with one control per row (one broadcasts)."""
    systems = t.lab.system_prompts(t.method, t.artifact, t.space, controls)
    systems = systems * len(texts) if len(systems) == 1 else systems
    with t.lab.steer(t.method, t.artifact, t.space, controls):
        return last_logits(t.lab, texts, systems)


def train_on_tiny(method: Steers, config: Any, folder: Path, model: str = "tiny-llama", plugin_files: list[Path] = ()) -> Trained:  # type: ignore[assignment]
    registry = build_registry(plugin_files)
    lab = Lab.for_model(load_model(model, registry.models, device="cpu"), registry, folder)
    return Trained(lab, method, method.control_space(config), method.train(lab, config))


def check_round_trip(t: Trained, folder: Path) -> None:
    t.artifact.save(folder)
    loaded = Artifact.load(folder)
    assert loaded.meta == t.artifact.meta and loaded.sites == t.artifact.sites and loaded.vectors == t.artifact.vectors
    assert set(loaded.tensors) == set(t.artifact.tensors)
    for key, tensor in t.artifact.tensors.items():
        assert torch.equal(loaded.tensors[key], tensor.cpu()), key


def check_neutral_is_exact(t: Trained, neutral: Control) -> None:
    base = last_logits(t.lab, ["Hi there", "Why?"])
    assert torch.equal(steered_logits(t, [neutral], ["Hi there", "Why?"]), base), "the neutral control changed the logits"


def check_active_changes_and_cleans_up(t: Trained, active: Control) -> None:
    before, base = hook_count(t.lab.model.hf), last_logits(t.lab, ["Hi there"])
    assert not torch.allclose(steered_logits(t, [active], ["Hi there"]), base), "the active control changed nothing"
    assert hook_count(t.lab.model.hf) == before, "hooks left behind"
    try:
        with t.lab.steer(t.method, t.artifact, t.space, [active]):
            raise KeyError("inside")
    except KeyError:
        pass
    assert hook_count(t.lab.model.hf) == before, "hooks left behind after an exception"
    assert torch.equal(last_logits(t.lab, ["Hi there"]), base), "the model was not restored"


def check_batched_equals_unbatched(t: Trained, control: Control) -> None:
    texts = ["A considerably longer prompt here", "Short"]
    batched = steered_logits(t, [control], texts)
    single = torch.cat([steered_logits(t, [control], [x]) for x in texts])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def check_per_row_controls(t: Trained, controls: list[Control], prompts: list[str] = PROMPTS, max_new_tokens: int = 8) -> None:
    """Several controls in one batch give each row what its control gives alone: the same greedy
    answers (``max_new_tokens`` decode steps under the KV cache) and the same logits."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=16)
    rows = [(c, p) for c in controls for p in prompts]
    mixed = t.lab.answer(t.method, t.artifact, t.space, [c for c, _ in rows], [p for _, p in rows], settings, desc=None)
    alone = [g for c in controls for g in t.lab.answer(t.method, t.artifact, t.space, [c] * len(prompts), prompts, settings, desc=None)]
    assert [g.output_ids for g in mixed] == [g.output_ids for g in alone], "mixed controls answered differently"
    # rows of different lengths, so each row is left-padded differently in the batch
    texts = [PADDED_PROMPTS[i % len(PADDED_PROMPTS)] for i in range(len(controls))]
    per_row = steered_logits(t, controls, texts)
    single = torch.cat([steered_logits(t, [c], [text]) for c, text in zip(controls, texts)])
    torch.testing.assert_close(per_row, single, atol=1e-5, rtol=1e-5)
    same_prompt = steered_logits(t, controls[:2], ["Name a fruit"] * 2)
    assert not torch.allclose(same_prompt[0], same_prompt[1]), "two controls gave the same logits"


def check_method(method: Steers, config: Any, active: str, neutral: str | None = None, other: str | None = None,
                 tmp_path: Path | None = None, model: str = "tiny-llama") -> Trained:
    """Every check above on ``method`` trained with ``config``; controls are given as
    ``--control`` text for the method's own control space (``other``: a second active control)."""
    folder = Path(tmp_path or tempfile.mkdtemp())
    t = train_on_tiny(method, config, folder / "lab", model)
    parse = t.space.parse
    check_round_trip(t, folder / "artifact")
    if neutral is not None:
        check_neutral_is_exact(t, parse(neutral))
    check_active_changes_and_cleans_up(t, parse(active))
    check_batched_equals_unbatched(t, parse(active))
    controls = [parse(c) for c in (active, other, neutral) if c is not None]
    if len(controls) > 1:
        check_per_row_controls(t, controls)
    return t

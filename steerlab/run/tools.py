"""Users' tools on a finished run: reopen its model, method and artifact; answer new prompts.

``open_run`` is what ``steerlab generate``, ``steerlab inspect`` and ``steerlab export`` share:
the run's study and plugins as the run began (plus any ``--plugin`` given now), its model, and
one method entry's artifact, checked against that method and model. ``answer`` is the one code
path from an opened entry, prompts and controls to answers: ``steerlab generate`` and the Python
API's ``Run.generate`` (``steerlab.notebook``) both call it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from steerlab.artifact import Artifact
from steerlab.controls import Control
from steerlab.errors import ConfigError
from steerlab.inspect.base import OpenRun
from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.model.generation import Generation, GenerationSettings
from steerlab.model.zoo import LoadedModel, describe
from steerlab.registry import Registry
from steerlab.run.runner import load_study_model, reopen, seed_layout
from steerlab.study.schema import MethodEntry, Study

Accept = Callable[[MethodEntry, Artifact], bool]


def trained_entries(study: Study, layout: RunLayout) -> list[MethodEntry]:
    """The run's method entries whose artifact is on disk, in study order."""
    return [e for e in study.methods if Artifact.exists(layout.method(e.name))]


def find_entry(study: Study, layout: RunLayout, method_name: str | None = None, accept: Accept | None = None,
               wanted: str = "", flag: str = "--method") -> tuple[MethodEntry, Artifact]:
    """One trained entry and its artifact: ``method_name``, or the first that ``accept``s."""
    names = [e.name for e in study.methods]
    if method_name is not None and method_name not in names:
        raise ConfigError(f"{flag} {method_name!r}: no such method entry in {layout.root} (entries: {', '.join(names)})")
    for entry in trained_entries(study, layout):
        if method_name not in (None, entry.name):
            continue
        artifact = Artifact.load(layout.method(entry.name))
        if accept is None or accept(entry, artifact):
            return entry, artifact
    label = f" {method_name!r}" if method_name else ""
    raise ConfigError(f"{layout.root}: no trained method{label}{wanted} in this run")


def check_model(layout: RunLayout, entry: MethodEntry, artifact: Artifact, model: LoadedModel) -> None:
    """Refuse a model whose weights are not the ones the artifact was trained on."""
    artifact.check_made_for(entry.method, describe(model), layout.method(entry.name) / "artifact.json")


def open_run(run_dir: Path, method_name: str | None = None, plugin_files: list[str] = (),  # type: ignore[assignment]
             accept: Accept | None = None, wanted: str = "", seed: int | None = None) -> OpenRun:
    """Load a run's study, model and one method's artifact (the first trained entry that
    ``accept``s, or ``method_name``; of training seed ``seed``, default the study's first)."""
    study, registry, layout, _ = reopen(run_dir, plugin_files, check_data=False)
    layout = seed_layout(study, registry, layout, seed)
    entry, artifact = find_entry(study, layout, method_name, accept, wanted)
    model = load_study_model(study, registry, entry.model)
    return opened(study, registry, layout, entry, artifact, model)


def opened(study: Study, registry: Registry, layout: RunLayout, entry: MethodEntry, artifact: Artifact,
           model: LoadedModel, lab: Lab | None = None) -> OpenRun:
    """An entry ready to answer on ``model`` (checked against the artifact); ``lab``: reuse one."""
    check_model(layout, entry, artifact, model)
    lab = lab or Lab(study=study, model=model, registry=registry, layout=layout, show_progress=False)
    return OpenRun(lab, entry, registry.methods[entry.method], artifact)


def with_max_new_tokens(settings: GenerationSettings, max_new_tokens: int | None, flag: str = "--max-new-tokens") -> GenerationSettings:
    """The run's generation settings with another token cap (None: the study's)."""
    if max_new_tokens is None:
        return settings
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"{flag} {max_new_tokens!r}: expected a whole number >= 1")
    return dataclasses.replace(settings, max_new_tokens=max_new_tokens)


def answer(run: OpenRun, prompts: Sequence[str], controls: Sequence[Control],
           settings: GenerationSettings | None = None) -> list[list[Generation]]:
    """Answers ``[control][prompt]``: every (control, prompt) row goes through the lab's batched,
    length-sorted, per-row-steered generation, as a sweep's rows do."""
    if not prompts or not controls:
        return [[] for _ in controls]
    rows = [(c, p) for c in controls for p in prompts]
    gens = run.lab.answer(run.method, run.artifact, run.entry.space, [c for c, _ in rows], [p for _, p in rows],
                          settings or run.lab.settings, desc=None)
    n = len(prompts)
    return [gens[k * n:(k + 1) * n] for k in range(len(controls))]


def generate_from_run(run_dir: Path, prompts: list[str], controls: list[str], method_name: str | None = None,
                      max_new_tokens: int | None = None, plugin_files: list[str] = (),  # type: ignore[assignment]
                      seed: int | None = None) -> list[str]:
    """Answer ``prompts`` at each control (text for the method's control space; none: the last
    control of the study's sweep); returns printable blocks, one per prompt."""
    run = open_run(run_dir, method_name, plugin_files, seed=seed)
    settings = with_max_new_tokens(run.lab.settings, max_new_tokens)
    chosen = [run.control(c) for c in controls] or [run.entry.controls[-1]]
    gens = answer(run, prompts, chosen, settings)
    space = run.entry.space
    blocks = []
    for i, prompt in enumerate(prompts):
        lines = [f"### {prompt}"]
        lines += [f"[{run.entry.name} {space.label}={space.key(c)}] {gens[k][i].output}" for k, c in enumerate(chosen)]
        blocks.append("\n".join(lines) + "\n")
    return blocks

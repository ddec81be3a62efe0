"""The Python API for notebooks and scripts: ``steerlab.open_run``, ``steerlab.load_model`` and
``steerlab.run_study`` (documented, with an example a test runs, in ``docs/python-api.md``).

Why a second front end beside the CLI: a trained artifact (a Panacea adapter, soups' LoRAs, an
IAV head, GenARM's reward model) should be usable on a model a user already holds, the way
steering-vectors' ``SteeringVector.apply(model, multiplier)`` is, without building a ``Lab`` from a
study by hand. Nothing here re-implements the CLI: ``Run.generate`` goes through the same
``steerlab.run.tools.answer`` as ``steerlab generate``, and ``Run.steering`` enters the method's
own ``steer`` through a ``Lab`` around the given model, so its hooks and wrapped forwards are
removed on exit exactly as in a sweep. (``steerlab.api`` is the other public surface: the one
plugins import.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from steerlab.artifact import Artifact
from steerlab.controls import Control
from steerlab.errors import ConfigError
from steerlab.inspect.base import OpenRun, read_control
from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.model.zoo import LoadedModel
from steerlab.model.zoo import load_model as zoo_load_model
from steerlab.plugin import build_registry
from steerlab.registry import Registry
from steerlab.run import runner
from steerlab.run.tools import answer, check_model, find_entry, opened, trained_entries, with_max_new_tokens
from steerlab.study.loader import override_text
from steerlab.study.schema import MethodEntry, Study

PathLike = str | Path


class Run:
    """A finished run folder, opened: each trained method answers prompts (``generate``) or
    steers a model of your own (``steering``). The run's model is loaded on first ``generate``
    only; ``steering`` never loads it."""

    def __init__(self, study: Study, registry: Registry, layout: RunLayout, models: Mapping[str, LoadedModel] | None = None) -> None:
        self.study, self.registry, self.layout = study, registry, layout
        self._labs: dict[str, Lab] = {}  # model name -> the lab generate answers in (one engine per model)
        self._loaded: dict[str, Artifact] = {}  # entry -> its artifact as read
        self._placed: dict[tuple[str, str, str], Artifact] = {}  # (entry, device, dtype) -> the artifact steering there
        for name, model in (models or {}).items():
            self._labs[name] = Lab(study=study, model=model, registry=registry, layout=layout, show_progress=False)

    @property
    def folder(self) -> Path:
        """The run folder (``runs/<study>-<timestamp>``)."""
        return self.layout.root

    @property
    def methods(self) -> list[str]:
        """The run's trained method entries, by name (``method=`` takes one; the first is the default)."""
        return [e.name for e in trained_entries(self.study, self.layout)]

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, methods={self.methods})"

    def control(self, method: str | None = None, control: Any = None) -> Control:
        """``control`` as the method's control space reads it (text like ``--control``, a number,
        a list or a dict of weights); None: the last control of the run's sweep, as the CLI does."""
        entry = self._entry(method)
        return entry.controls[-1] if control is None else read_control(entry, control, "control")

    def generate(self, prompts: str | Sequence[str], method: str | None = None, control: Any = None,
                 max_new_tokens: int | None = None) -> list[str]:
        """One answer per prompt (a lone string is one prompt), steered by ``method`` at ``control``,
        generated exactly as ``steerlab generate`` does (the study's generation settings, batched)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        run = self.open_entry(method)
        settings = with_max_new_tokens(run.lab.settings, max_new_tokens, "max_new_tokens")
        [gens] = answer(run, prompts, [self.control(run.entry.name, control)], settings)
        return [g.output for g in gens]

    def system_prompt(self, method: str | None = None, control: Any = None) -> str | None:
        """The system prompt the method asks for at ``control`` (a prompting baseline steers with
        it: give it to ``LoadedModel.format_prompt``); None for the methods that steer the model."""
        entry = self._entry(method)
        steerer = self.registry.methods[entry.method]
        [system] = steerer.system_prompts(self._artifact(entry), entry.space.tensor([self.control(entry.name, control)]))
        return system

    @contextmanager
    def steering(self, model: torch.nn.Module | LoadedModel, method: str | None = None, control: Any = None) -> Iterator[None]:
        """Steer ``model`` (a Hugging Face causal LM with the run's weights, or a ``LoadedModel``)
        in place inside the ``with`` block: plain forwards and ``model.generate`` alike. Whatever
        the method attached (hooks, wrapped forwards) is removed on exit, also after an exception."""
        entry = self._entry(method)
        chosen = self.control(entry.name, control)
        target = as_loaded(model, entry.model or self.study.meta.model)
        lab = Lab(study=self.study, model=target, registry=self.registry, layout=self.layout, show_progress=False)
        steerer = self.registry.methods[entry.method]
        artifact = self._checked(entry, target)
        if any(s is not None for s in lab.system_prompts(steerer, artifact, entry.space, [chosen])):
            raise ConfigError(f"method '{entry.name}' ({entry.method}) steers through the system prompt, not the model: "
                              f"format your prompt with run.system_prompt(method={entry.name!r}, control=...) instead")
        with lab.steer(steerer, artifact, entry.space, [chosen]):
            yield

    def _entry(self, method: str | None) -> MethodEntry:
        return find_entry(self.study, self.layout, method, flag="method")[0]

    def _artifact(self, entry: MethodEntry, model: LoadedModel | None = None) -> Artifact:
        """The entry's artifact, read once; with ``model``, one object per device and dtype (the
        tensors shared): methods cache what they rebuild from an artifact (an adapter, a head, a
        reward model) keyed by the artifact object, so a model elsewhere needs an object of its own."""
        if entry.name not in self._loaded:
            self._loaded[entry.name] = Artifact.load(self.layout.method(entry.name))
        if model is None:
            return self._loaded[entry.name]
        key = (entry.name, str(model.device), str(next(model.hf.parameters()).dtype))
        if key not in self._placed:
            self._placed[key] = copy.copy(self._loaded[entry.name])
        return self._placed[key]

    def _checked(self, entry: MethodEntry, model: LoadedModel) -> Artifact:
        artifact = self._artifact(entry, model)
        check_model(self.layout, entry, artifact, model)
        return artifact

    def open_entry(self, method: str | None = None) -> OpenRun:
        """The entry on the run's own model (loaded once per model name), ready to answer: its
        lab, method, control space and artifact (``steerlab serve`` keeps one per entry)."""
        entry = self._entry(method)
        name = entry.model or self.study.meta.model
        if name not in self._labs:
            model = runner.load_study_model(self.study, self.registry, name)
            self._labs[name] = Lab(study=self.study, model=model, registry=self.registry, layout=self.layout, show_progress=False)
        lab = self._labs[name]
        return opened(self.study, self.registry, self.layout, entry, self._artifact(entry, lab.model), lab.model, lab)


def as_loaded(model: torch.nn.Module | LoadedModel, name: str) -> LoadedModel:
    """A user's model as the ``LoadedModel`` a ``Lab`` holds, left exactly as it is (no eval(),
    no requires_grad change: ``steering`` must give the model back untouched)."""
    if isinstance(model, LoadedModel):
        return model
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise ConfigError(f"steering: expected a Hugging Face causal LM (or a steerlab LoadedModel), got {type(model).__name__}")
    # Not steerlab.wrap: wrap prepares a model (eval mode, frozen weights, left padding), and the
    # user's model must come back as it went in. Its layout is still read the one way (layout_of,
    # on first use), and a model outside the table takes an override through steerlab.wrap first.
    return LoadedModel(name=name, hf=model, tokenizer=None)  # type: ignore[arg-type]  # steer never tokenizes


def open_run(path: PathLike, plugins: Sequence[PathLike] = (), seed: int | None = None) -> Run:
    """Open a finished run folder (``runs/<study>-<timestamp>``) with its study and plugins as the
    run began, plus local plugin files in ``plugins``. A run trained with several ``seeds`` is
    opened at one of them (``seed``; default the study's first)."""
    study, registry, layout, _ = runner.reopen(Path(path), [str(p) for p in plugins], check_data=False)
    return Run(study, registry, runner.seed_layout(study, registry, layout, seed, flag="seed"))


def load_model(name_or_path: str, device: str | None = None, dtype: str | None = None,
               plugins: Sequence[PathLike] = ()) -> LoadedModel:
    """A model by zoo name (``tiny-llama``, ``smollm2-135m-instruct``), local path, ``.gguf`` file or
    hub id, as a study loads it: ``.hf`` is the Hugging Face model, ``.tokenizer`` its tokenizer
    (left padding), ``.format_prompt(text, system)`` the chat formatting steerlab uses."""
    registry = build_registry([Path(p) for p in plugins])
    return zoo_load_model(name_or_path, registry.models, device, dtype)


def run_study(path: PathLike, overrides: Mapping[str, Any] | None = None, /, *, quick: bool = False,
              out: PathLike = "runs", plugins: Sequence[PathLike] = (), show_progress: bool = True, **dotted: Any) -> Run:
    """Run a study as ``steerlab run`` does and open the finished run. Overrides are dotted study
    keys with Python values, as a dict or as keywords: ``run_study(path, {"data.eval_limit": 4})``
    or ``run_study(path, **{"data.eval_limit": 4})`` (written into ``run.json`` as ``--set`` would)."""
    undotted = [key for key in dotted if "." not in key]
    if undotted:
        raise ConfigError(f"run_study: unknown option {undotted[0]!r} (study overrides are dotted keys such as "
                          "'data.eval_limit': pass them as **{...} or as a dict after the path)")
    settings = {**(overrides or {}), **dotted}
    texts = [override_text(key, value) for key, value in settings.items()]
    request = runner.RunRequest(str(path), texts, quick, [str(p) for p in plugins])
    session = runner.start(request, Path(out).resolve(), show_progress=show_progress)  # a notebook may change folder later
    runner.execute(session, show_progress=show_progress)
    return Run(session.study, session.registry, session.layout, session.models)

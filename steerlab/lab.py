"""The Lab: what a method's train / steer / evaluate and a metric receive for one run.

It bundles the loaded model, its HookEngine, the study's settings, the plugin registry, the run
folder's layout and shared, lazily built resources (the sentence embedder, the unsteered
answers, each metric's context), so nothing is built twice.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from steerlab.artifact import Artifact
from steerlab.controls import Control, ControlSpace
from steerlab.data.files import read_prompts
from steerlab.errors import ConfigError
from steerlab.layout import RunLayout
from steerlab.model.batching import by_length, token_lengths
from steerlab.model.engine import HookEngine
from steerlab.model.generation import Generation, GenerationSettings, Step, for_device, generate
from steerlab.model.prompts import Prompt, plain, render_all
from steerlab.model.zoo import LoadedModel
from steerlab.storage import read_json, write_json

if TYPE_CHECKING:
    from steerlab.registry import Registry
    from steerlab.results import Record
    from steerlab.study.schema import MethodEntry, Study


class Steers(Protocol):
    """What the lab needs of a method to answer with it (the steering half of Steers)."""

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]: ...

    def system_prompts(self, artifact: Artifact, controls: torch.Tensor) -> list[str | None]: ...


class ControlChooser(Protocol):
    """Which controls of an entry the test split needs, chosen on the dev split (``[compare]``):
    a strength entry is generated at every control on the dev requests and only at its chosen
    control on the test requests, as AxBench does, instead of at every control everywhere."""

    def stages(self, entry: MethodEntry) -> bool: ...

    def is_dev(self, prompt: str) -> bool: ...

    def keep(self, entry: MethodEntry, dev_records: list[Record]) -> set[int]: ...


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class Lab:
    study: Study | None
    model: LoadedModel
    registry: Registry
    layout: RunLayout
    show_progress: bool = True
    engine: HookEngine = field(init=False)
    _resources: dict[str, Any] = field(default_factory=dict, init=False)
    control_chooser: ControlChooser | None = field(default=None, init=False)  # set by the runner once the [compare] reference ran
    train_seed: int | None = field(default=None, init=False)  # the training seed of this lab's (entry, seed) piece (``at_seed``)

    def __post_init__(self) -> None:
        self.engine = HookEngine(self.model.hf)

    @classmethod
    def for_model(cls, model: LoadedModel, registry: Registry, folder: Path, show_progress: bool = False) -> "Lab":
        """A lab with no study (benchmarks, notebooks, tests): files it writes go under ``folder``."""
        return cls(study=None, model=model, registry=registry, layout=RunLayout(Path(folder)), show_progress=show_progress)

    @property
    def seed(self) -> int:
        """The training seed methods draw from: this piece's (``at_seed``), else the study's first."""
        return self.train_seed if self.train_seed is not None else self.study_seed

    @property
    def study_seed(self) -> int:
        """The seed of what every training seed shares (the judges' splits, the unsteered answers),
        so that seeds differ only in what they train."""
        return self.study.meta.first_seed if self.study else 0

    def at_seed(self, seed: int, own_folder: bool) -> "Lab":
        """This lab for one (entry, seed) piece: the same model, engine and shared resources (the
        judge is built once), a different training seed, and with ``own_folder`` the method
        folders of that seed (``methods/NAME/seed-K``)."""
        lab = copy.copy(self)  # shallow: _resources, engine and control_chooser are shared
        lab.train_seed = seed
        lab.layout = self.layout.for_seed(seed if own_folder else None)
        return lab

    @property
    def settings(self) -> GenerationSettings:
        """The study's generation settings, an automatic batch size made concrete for the device."""
        return for_device(self.study.generation if self.study else GenerationSettings(), self.model.device)

    def progress(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
        """A tqdm bar on stderr (silent when progress is off, e.g. in tests)."""
        return tqdm(iterable, desc=desc, total=total, disable=not self.show_progress, leave=False, dynamic_ncols=True)

    def seeded(self, stage: str, shared: bool = False) -> None:
        """Reset every RNG from the seed and the stage name, so stages replay alike on resume
        (``shared``: from the study's first seed, for what every training seed shares)."""
        offset = sum(ord(c) * (i + 1) for i, c in enumerate(stage)) % 100_003
        seed_everything((self.study_seed if shared else self.seed) * 100_003 + offset)

    def resource(self, name: str, build: Callable[[], Any]) -> Any:
        """A shared, expensive object (the sentence embedder) built once per lab."""
        if name not in self._resources:
            self._resources[name] = build()
        return self._resources[name]

    def eval_prompts(self) -> list[str]:
        if self.study is None:
            raise ConfigError("this lab has no study: no eval prompts")
        prompts = self.study.data.select(read_prompts(Path(self.study.data.eval)))
        if not prompts:
            raise ConfigError(f"{self.study.data.eval}: no eval prompt falls in split '{self.study.data.split}'")
        return prompts

    def generate(self, prompts: list[str], settings: GenerationSettings | None = None, desc: str = "generate",
                 system: str | None = None) -> list[Generation]:
        """Format (chat template, optional system prompt) and answer the prompts, unsteered unless
        the caller is inside a ``steer`` context."""
        texts = [self.model.format_prompt(p, system) for p in prompts]
        gens = generate(self.model, texts, settings or self.settings, self.progress, desc)
        for gen, prompt in zip(gens, prompts):
            gen.prompt = prompt
        return gens

    def base_generations(self) -> list[Generation]:
        """Unsteered answers to the eval prompts, generated once per run and model, kept on disk."""
        def build() -> list[Generation]:
            own = self.study is None or self.model.name == self.study.meta.model
            path = self.layout.base_generations("" if own else self.model.name)
            if path.exists():
                rows = read_json(path, "unsteered answers")
                try:
                    return [Generation(**g) for g in rows]
                except TypeError:
                    raise ConfigError(f"{path}: malformed unsteered answers (delete it to regenerate)") from None
            self.seeded("base_generations", shared=True)
            gens = self.generate(self.eval_prompts(), desc="unsteered answers")
            write_json(path, [g.__dict__ for g in gens], indent=None)
            return gens

        return self.resource("base_generations", build)

    def steer(self, method: Steers, artifact: Artifact, space: ControlSpace,
              controls: Sequence[Control]) -> AbstractContextManager[None]:
        """``method`` steering with one control per batch row (a single control broadcasts)."""
        return method.steer(self, artifact, space.tensor(controls, self.model.device))

    def system_prompts(self, method: Steers, artifact: Artifact, space: ControlSpace,
                       controls: Sequence[Control]) -> list[str | None]:
        return method.system_prompts(artifact, space.tensor(controls))

    def answer(self, method: Steers, artifact: Artifact, space: ControlSpace, controls: Sequence[Control],
               prompts: Sequence[Prompt], settings: GenerationSettings | None = None, desc: str | None = "answers",
               watch: Callable[[list[int]], Step] | None = None) -> list[Generation]:
        """Steered answers, one (control, prompt) pair per row: rows are sorted by length and
        batched, each batch generated once with its per-row controls (and system prompts).
        A prompt is a user prompt, a ``Chat`` or a ``Continuation`` (``steerlab.model.prompts``).
        ``watch(rows)`` gives the per-step watch of the generate call answering ``rows`` (indices
        into ``prompts``, in the call's row order): a server streams and ends rows through it."""
        settings = for_device(settings or self.settings, self.model.device)
        backend = self.registry.get("backends", settings.backend, "[generation] key 'backend'")
        texts = render_all(self.model, prompts, self.system_prompts(method, artifact, space, controls))
        out: dict[int, Generation] = {}
        groups = by_length(token_lengths(self.model.tokenizer, texts), settings.batch_size)
        for group in self.progress(groups, desc, len(groups)) if desc else groups:
            watching = {"step": watch(group)} if watch is not None else {}
            with self.steer(method, artifact, space, [controls[i] for i in group]):
                for i, gen in zip(group, backend.generate(self.model, [texts[i] for i in group], settings, **watching)):
                    gen.prompt = plain(prompts[i])
                    out[i] = gen
        return [out[i] for i in range(len(texts))]

"""The Lab: what a method's train / steer / evaluate receive for one run.

It bundles the loaded model, its HookEngine, the study's settings, the plugin registry, the run
folder and shared lazily-built resources (the sentence embedder, the style judge, the unsteered
answers), so methods and metrics never build those twice.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from steerlab.artifact import atomic_write_text
from steerlab.data import read_prompts
from steerlab.engine import HookEngine
from steerlab.generation import Generation, generate
from steerlab.models import LoadedModel
from steerlab.plugin import Registry
from steerlab.study import GenerationSettings, Study


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class Lab:
    study: Study
    model: LoadedModel
    registry: Registry
    run_dir: Path
    show_progress: bool = True
    engine: HookEngine = field(init=False)
    _cache: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.engine = HookEngine(self.model.hf)

    @property
    def seed(self) -> int:
        return self.study.meta.seed

    @property
    def quick(self) -> bool:
        return self.study.quick

    def progress(self, iterable: Iterable, desc: str, total: int | None = None) -> Iterable:
        """A tqdm bar on stderr (silent when progress is off, e.g. in tests)."""
        return tqdm(iterable, desc=desc, total=total, disable=not self.show_progress, leave=False, dynamic_ncols=True)

    def seeded(self, stage: str) -> None:
        """Reset every RNG from the study seed and the stage name, so stages replay alike on resume."""
        offset = sum(ord(c) * (i + 1) for i, c in enumerate(stage)) % 100_003
        seed_everything(self.seed * 100_003 + offset)

    def eval_prompts(self) -> list[str]:
        prompts = read_prompts(Path(self.study.data.eval))
        limit = self.study.data.eval_limit
        return prompts[:limit] if limit else prompts

    def generate(self, prompts: list[str], settings: GenerationSettings | None = None, desc: str = "generate") -> list[Generation]:
        """Format (chat template / system prompt in force) and answer the prompts."""
        texts = [self.model.format_prompt(p) for p in prompts]
        gens = generate(self.model, texts, settings or self.study.generation, self._progress_fn, desc)
        for gen, prompt in zip(gens, prompts):
            gen.prompt = prompt
        return gens

    def _progress_fn(self, iterable: Iterable, desc: str, total: int) -> Iterable:
        return self.progress(iterable, desc, total)

    def base_generations(self) -> list[Generation]:
        """Unsteered answers to the eval prompts, generated once per run and kept on disk."""
        if "base" not in self._cache:
            path = self.run_dir / "base_generations.json"
            if path.exists():
                self._cache["base"] = [Generation(**g) for g in json.loads(path.read_text())]
            else:
                self.seeded("base_generations")
                gens = self.generate(self.eval_prompts(), desc="unsteered answers")
                atomic_write_text(path, json.dumps([g.__dict__ for g in gens]))
                self._cache["base"] = gens
        return self._cache["base"]

    def embedder(self) -> Any:
        if "embedder" not in self._cache:
            from steerlab.metrics.embedding import SentenceEmbedder

            self._cache["embedder"] = SentenceEmbedder.load()
        return self._cache["embedder"]

    def judge(self) -> Any:
        if "judge" not in self._cache:
            from steerlab.metrics.judge import StyleJudge

            self._cache["judge"] = StyleJudge.for_run(self)
        return self._cache["judge"]

    @contextmanager
    def system_prompt(self, text: str) -> Iterator[None]:
        """Prompt-space steering: answers inside use ``text`` as their system prompt."""
        self.model.system_prompts.append(text)
        try:
            yield
        finally:
            self.model.system_prompts.pop()

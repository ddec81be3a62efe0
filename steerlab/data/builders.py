"""Shared machinery for dataset builders that write study data with a real model.

A builder (registered through ``steerlab_datasets``) splits the project's hand-written
instructions by a stable hash of their id, asks the model to answer them in named styles
(system prompt + example turns), keeps candidates that pass a stated filter, and writes JSONL
plus a datasheet. Plugins share this instead of each writing its own generation loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from steerlab.model.generation import Generation, GenerationSettings, generate
from steerlab.model.zoo import LoadedModel
from steerlab.storage import read_jsonl

# The project's hand-written requests, shipped inside the package so builders work after a
# non-editable install too.
INSTRUCTIONS = Path(str(resources.files("steerlab.data") / "instructions.jsonl"))


@dataclass(frozen=True)
class Style:
    """How to ask the model for one style: a system prompt and example (user, assistant) turns."""

    name: str
    system: str
    examples: list[tuple[str, str]] = field(default_factory=list)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}]
        for user, assistant in self.examples:
            turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return turns + [{"role": "user", "content": prompt}]


def load_instructions(path: Path = INSTRUCTIONS) -> list[dict[str, str]]:
    return read_jsonl(path, ("id", "text"))


def split_by_id(rows: list[dict[str, str]], fractions: dict[str, float], salt: str = "steerlab") -> dict[str, list[dict[str, str]]]:
    """Deterministic split: each row goes where the hash of its id falls (no RNG, stable forever)."""
    names, edges, total = list(fractions), [], 0.0
    for name in names:
        total += fractions[name]
        edges.append(total)
    out: dict[str, list[dict[str, str]]] = {name: [] for name in names}
    for row in rows:
        u = int(hashlib.sha256(f"{salt}:{row['id']}".encode()).hexdigest()[:12], 16) / 16**12 * total
        out[names[next(i for i, e in enumerate(edges) if u < e)]].append(row)
    return out


def answer_in_style(
    model: LoadedModel, prompts: list[str], style: Style, settings: GenerationSettings, desc: str = ""
) -> list[Generation]:
    """One answer per prompt in ``style`` (sampled when ``settings.do_sample``)."""
    texts = [model.format_chat(style.messages(p)) for p in prompts]
    progress = lambda it, d, n: tqdm(it, desc=desc or d, total=n, leave=False)  # noqa: E731
    gens = generate(model, texts, settings, progress)
    for gen, prompt in zip(gens, prompts):
        gen.prompt = prompt
    return gens


def style_scores(model: LoadedModel, style: Style, gens: list[Generation], batch_size: int) -> list[float]:
    """How much better ``style``'s context (system prompt + example turns) explains each answer
    than the plain prompt does: mean log p(answer | style) - mean log p(answer | plain), computed
    by the generating model itself. Builders keep the best-scoring candidate per prompt; it is
    never the evaluation judge, so the judge's accuracy stays an independent check."""
    from steerlab.model.scoring import mean_logprobs

    tokens = lambda text: model.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    answers = [tokens(g.output) or [model.tokenizer.eos_token_id] for g in gens]
    styled = [tokens(model.format_chat(style.messages(g.prompt))) for g in gens]
    neutral = [tokens(model.format_prompt(g.prompt)) for g in gens]
    with_style = mean_logprobs(model, list(zip(styled, answers)), batch_size)
    without = mean_logprobs(model, list(zip(neutral, answers)), batch_size)
    return [a - b for a, b in zip(with_style, without)]

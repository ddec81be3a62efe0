"""What a row of a batch answers: one user prompt (a string), a conversation (``Chat``) or raw
text to continue (``Continuation``).

Why three: a sweep and ``steerlab generate`` answer one user prompt each, formatted by the
model's chat template; a server speaking OpenAI's protocol also receives whole conversations
(``/v1/chat/completions``: system, user and assistant turns) and raw text that must not be
wrapped in any template (``/v1/completions``). ``render`` is the one place that turns each of
them, plus the system prompt a prompting method asks for, into the text the model reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from steerlab.model.zoo import LoadedModel

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Chat:
    """A conversation ending in a user turn: ``((role, content), ...)``, roles from ``ROLES``."""

    messages: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a conversation needs at least one message")
        bad = [role for role, _ in self.messages if role not in ROLES]
        if bad:
            raise ValueError(f"unknown role {bad[0]!r} (expected one of: {', '.join(ROLES)})")
        if self.messages[-1][0] != "user":
            raise ValueError(f"a conversation must end with a user message (it ends with {self.messages[-1][0]!r})")

    def with_system(self, system: str | None) -> list[dict[str, str]]:
        """The messages, with ``system`` (a method's steering prompt) in front: it leads a system
        message the conversation already has, joined by a blank line, so both are read."""
        messages = [{"role": r, "content": c} for r, c in self.messages]
        if system is None:
            return messages
        if messages[0]["role"] == "system":
            return [{"role": "system", "content": f"{system}\n\n{messages[0]['content']}"}, *messages[1:]]
        return [{"role": "system", "content": system}, *messages]


@dataclass(frozen=True)
class Continuation:
    """Raw text the model continues as it stands (no chat template; the model's BOS in front, as
    its tokenizer would add one)."""

    text: str


Prompt = str | Chat | Continuation


def render(model: LoadedModel, prompt: Prompt, system: str | None = None) -> str:
    """The text ``model`` reads for ``prompt`` under the steering system prompt ``system``."""
    if isinstance(prompt, Chat):
        return model.format_chat(prompt.with_system(system))
    if isinstance(prompt, Continuation):
        if system is not None:
            raise ValueError("raw text to continue has no place for a system prompt (a prompting method needs a chat)")
        return model.bos_text + prompt.text
    return model.format_prompt(prompt, system)


def plain(prompt: Prompt) -> str:
    """The prompt as a record keeps it: the text itself, or a conversation's last user turn."""
    if isinstance(prompt, Chat):
        return prompt.messages[-1][1]
    if isinstance(prompt, Continuation):
        return prompt.text
    return prompt


def render_all(model: LoadedModel, prompts: Sequence[Prompt], systems: Sequence[str | None]) -> list[str]:
    """``render`` for each (prompt, system) row."""
    return [render(model, p, s) for p, s in zip(prompts, systems, strict=True)]

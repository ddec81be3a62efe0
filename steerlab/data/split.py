"""Dev and test are a property of the prompt: a stable hash of its text puts it in one half.

The same halves serve two uses. A study may run on one half only (``[data] split = "dev"``, e.g.
an ablation that picks settings), and a study that runs on all prompts reads both: every choice
it makes (a strength, an adapter, an alpha) reads the dev half, every verdict the test half, so
nothing reported was tuned on what it reports. The hash is salted (``split:``) so that it does not
line up with other hashes of the same text (the ``[compare]`` split, dataset builders).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def in_dev_half(text: str) -> bool:
    """Whether ``text`` falls in the dev half (the first half of the hash range)."""
    return int(hashlib.sha256(f"split:{text}".encode()).hexdigest()[:8], 16) < 2**31


@dataclass(frozen=True)
class PromptSplit:
    """A run's prompts in their order, cut into the dev half (choices) and the test half (verdicts)."""

    dev: list[str]
    test: list[str]

    @classmethod
    def of(cls, prompts: Iterable[str]) -> "PromptSplit":
        ordered = list(dict.fromkeys(prompts))
        return cls([p for p in ordered if in_dev_half(p)], [p for p in ordered if not in_dev_half(p)])

    @property
    def usable(self) -> bool:
        """Both halves hold a prompt: a choice can be made on one and read on the other."""
        return bool(self.dev) and bool(self.test)

    def describe(self) -> str:
        """One sentence for a report: which prompts chose and which reported."""
        return (f"chosen on the {len(self.dev)} dev prompts, reported on the {len(self.test)} test prompts "
                "(a stable hash of each prompt's text, the halves `[data] split` selects)")

"""One request's row inside a decoding batch: its own token cap and stop sequences, the client's
presence, and the text it streams.

The worker thread sees each row's new token after every step (``Row.push``, called from the
generation watch) and answers whether the row is over; the rest of the batch goes on. Streamed
text never takes back what it sent: a suffix that may still turn into a stop sequence, an
unfinished UTF-8 character and trailing whitespace are held back until the next token settles
them, so the streamed pieces add up to exactly the answer a non-streamed request gets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steerlab.model.generation import Generation, answer_row, stop_ids
from steerlab.model.zoo import LoadedModel

REPLACEMENT = "\ufffd"  # what a decoder writes for bytes that do not (yet) form a character


def held_from(text: str, stops: Sequence[str]) -> int:
    """Where the longest suffix of ``text`` that begins some stop string starts (len: none)."""
    longest = max((len(s) for s in stops), default=0)
    for start in range(max(0, len(text) - longest + 1), len(text)):
        tail = text[start:]
        if any(s.startswith(tail) for s in stops):
            return start
    return len(text)


class TextStream:
    """The settled text of a growing answer, sent in pieces that are never taken back."""

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str]) -> None:
        self.decode, self.stops, self.sent = decode, list(stops), ""

    def settled(self, ids: list[int], text: str) -> str:
        """The part of ``text`` (the decoded ``ids``) no later token can change or cut."""
        held = held_from(text, self.stops)
        if held < len(text):  # a stop string may begin here: keep back the tokens that reach into it
            kept = next(k for k in range(len(ids), -1, -1) if len(self.decode(ids[:k])) <= held)
            text = self.decode(ids[:kept])
        return text.rstrip(REPLACEMENT).strip()

    def advance(self, ids: list[int], text: str) -> str:
        """The new settled text since the last call ('' when nothing settled)."""
        now = self.settled(ids, text)
        if len(now) <= len(self.sent) or not now.startswith(self.sent):
            return ""
        piece, self.sent = now[len(self.sent):], now
        return piece

    def rest(self, final: str) -> str | None:
        """What is left to send of the final answer; None when what was sent is not its start
        (a decoder that rewrote earlier text: counted by the batcher, never seen in tests)."""
        return final[len(self.sent):] if final.startswith(self.sent) else None


@dataclass
class Row:
    """A request's decoding state; ``push`` runs on the worker thread, ``cancel`` anywhere."""

    model: LoadedModel = field(repr=False)
    max_tokens: int
    stops: list[str]  # the request's stop sequences (the model's own are added by ``answer_row``)
    streaming: bool
    emit: Callable[[str], None] = field(default=lambda piece: None, repr=False)  # where streamed pieces go (thread-safe)
    ids: list[int] = field(default_factory=list)
    reason: str | None = None  # stop | length | cancelled
    cancelled: bool = False
    stream: TextStream | None = field(default=None, init=False, repr=False)
    _stop_tokens: set[int] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self._stop_tokens = stop_ids(self.model)
        self._strings = [*self.model.stop_strings, *self.stops]
        if self.streaming:
            self.stream = TextStream(self._decode, self._strings)

    def _decode(self, ids: list[int]) -> str:
        return self.model.tokenizer.decode(ids, skip_special_tokens=True)

    def cancel(self) -> None:
        self.cancelled = True

    def push(self, token: int) -> bool:
        """Take the row's next token; True when the row is over (it then gets padding)."""
        if self.reason is not None:
            return True
        if self.cancelled or token in self._stop_tokens:
            self.reason = "cancelled" if self.cancelled else "stop"
            return True
        self.ids.append(token)
        text = self._decode(self.ids) if self._strings or self.stream else ""
        if any(s in text for s in self._strings):
            self.reason = "stop"
        elif len(self.ids) >= self.max_tokens:
            self.reason = "length"
        elif self.stream is not None:
            piece = self.stream.advance(self.ids, text)
            if piece:
                self.emit(piece)
        return self.reason is not None

    def answer(self, gen: Generation) -> "Answer":
        """The finished row as the request's answer (cut as ``steerlab generate`` cuts), with what
        is left to stream."""
        final = answer_row(self.model, gen.prompt, gen.prompt_ids, self.ids, self.stops)
        rest = self.stream.rest(final.output) if self.stream is not None else None
        reason = "stop" if self.reason == "stop" or final.stopped else "length"
        return Answer(final.output, reason, len(gen.prompt_ids), len(final.output_ids), rest, self.reason == "cancelled")


@dataclass(frozen=True)
class Answer:
    """A finished request: OpenAI's ``finish_reason`` and ``usage`` numbers, and for a stream the
    text it has not sent yet (None: the stream could not be continued exactly)."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    rest: str | None = None
    cancelled: bool = False

    def usage(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

"""OpenAI's chat and text completion protocol, declared once (pydantic): what ``steerlab serve``
reads and writes, plus the one field the protocol lacks, ``steering``.

Requests keep OpenAI's names and ranges (``max_tokens``, ``temperature`` 0-2, ``top_p`` in (0, 1],
``stop``, ``seed``, ``stream``); fields a client may send that steerlab does not use (``user``,
``presence_penalty``, ...) are ignored, as vLLM ignores them, but the ``steering`` object is
strict (a misspelt ``contol`` is an error, not an unsteered answer). Every error is OpenAI's
``{"error": {"message", "type", "param", "code"}}`` with ``param`` naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

INVALID = "invalid_request_error"


class ApiError(Exception):
    """A request the server refuses: an HTTP status and OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = INVALID, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str = INVALID, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def encodable(value: Any) -> Any:
    """Text the tokenizer can take: JSON may carry a lone UTF-16 surrogate (``"\\ud800"``), which
    Python keeps in a ``str`` but no UTF-8 encoder accepts; refused here, it is a 400 naming the
    field instead of a tokenizer's TypeError (a 500) in the middle of a batch."""
    texts = [value] if isinstance(value, str) else [getattr(v, "text", v) for v in value or []]
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"not valid Unicode text (a lone surrogate {text[exc.start]!r} at character {exc.start})") from None
    return value


class Steering(BaseModel):
    """steerlab's extra field: the method's control, read by its control space (a number for a
    scalar; ``{"helpful": 0.5, "humorous": 0.5}``, a list or ``"helpful=0.5,humorous=0.5"`` for a
    simplex). Absent: the method's neutral control (a method without one requires it)."""

    model_config = ConfigDict(extra="forbid")
    control: Any = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class Sampling(BaseModel):
    """What chat and text completions share."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: str
    max_tokens: int | None = Field(None, strict=True)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, strict=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, strict=True)
    steering: Steering | None = None

    _text_stop = field_validator("stop")(encodable)

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def token_cap(self) -> int | None:
        return self.max_tokens


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    _text_content = field_validator("content")(encodable)

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(Sampling):
    messages: list[Message]
    max_completion_tokens: int | None = Field(None, strict=True)

    def token_cap(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(Sampling):
    prompt: str | list[str]
    _text_prompt = field_validator("prompt")(encodable)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    steering: dict[str, Any]  # the control the answer was steered with, as its space writes it


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None
    steering: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "steerlab"
    steering: dict[str, Any]  # the method and its control space: kind, label, dimensions, widget, neutral, the run's controls


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

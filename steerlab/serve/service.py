"""From an OpenAI request to a batch row and back: every check a request must pass (each refusal
an ``ApiError`` naming the field), the job it becomes, and the response it gets.

Decisions the protocol leaves open, taken here and documented in docs/serving.md:
* no ``steering``: the method's neutral control; a method without one (a simplex: Panacea,
  soups, prompting) answers 400 naming ``steering.control`` and giving an example;
* no ``temperature`` and no ``top_p``: the run's own decoding (greedy in every built-in study),
  so a served answer equals ``steerlab generate``; ``temperature`` 0 is greedy too;
* no ``max_tokens``: the study's ``max_new_tokens``, within the limit and the model's context;
* ``/v1/completions`` continues the raw text (no chat template), as OpenAI and vLLM do; a
  method that steers through a system prompt needs ``/v1/chat/completions``.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from steerlab.controls import Control
from steerlab.errors import ConfigError
from steerlab.inspect.base import OpenRun, read_control
from steerlab.model.prompts import Chat, Continuation, Prompt, render
from steerlab.model.zoo import LoadedModel
from steerlab.serve.batcher import Batcher, Decoding, Job
from steerlab.serve.protocol import ApiError, ChatRequest, CompletionRequest, ModelCard, ModelList, Sampling
from steerlab.serve.rows import Row

MAX_STOPS = 16
GREEDY = Decoding(False, 1.0, 1.0)  # every greedy request shares one group, whatever it asked of sampling


@dataclass(frozen=True)
class ServeOptions:
    """``steerlab serve``'s flags."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 20.0
    max_tokens_limit: int = 1024
    max_queue: int = 256

    def __post_init__(self) -> None:
        for flag, value, low in (("--port", self.port, 0), ("--max-batch", self.max_batch, 1),
                                 ("--max-tokens-limit", self.max_tokens_limit, 1), ("--max-queue", self.max_queue, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{flag} {value!r}: expected a whole number >= {low}")
        if self.port > 65535:
            raise ValueError(f"--port {self.port}: expected a port number up to 65535")
        if not math.isfinite(self.max_wait_ms) or self.max_wait_ms < 0:
            raise ValueError(f"--max-wait-ms {self.max_wait_ms}: expected a number of milliseconds >= 0")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key: expected a non-empty key")


def context_length(model: LoadedModel) -> int | None:
    """The most positions the model reads (None when its config does not say)."""
    config = model.hf.config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


class Service:
    """The run's entries behind the protocol: checks requests, makes jobs, shapes responses."""

    def __init__(self, entries: dict[str, OpenRun], options: ServeOptions) -> None:
        self.entries, self.options = entries, options
        self.batcher = Batcher(entries, options.max_batch, options.max_wait_ms / 1000, options.max_queue)
        self.created = int(time.time())

    def models(self) -> ModelList:
        return ModelList(data=[ModelCard(id=name, created=self.created, steering=describe(run)) for name, run in self.entries.items()])

    def chat_job(self, request: ChatRequest) -> Job:
        return self._job(request, chat_prompt(request), "messages", "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens")

    def completion_job(self, request: CompletionRequest) -> Job:
        return self._job(request, completion_prompt(request), "prompt", "max_tokens")

    def _job(self, request: Sampling, prompt: Prompt, prompt_field: str, cap_field: str) -> Job:
        if request.n != 1:
            raise ApiError(400, f"n {request.n}: this server answers one choice per request (n = 1)", "n")
        run = self.entry(request.model)
        control = self.control(run, request)
        stops = check_stops(request.stops())
        text = self.formatted(run, prompt, control)
        prompt_tokens = len(run.lab.model.tokenizer(text, add_special_tokens=False)["input_ids"])
        cap = self.token_cap(run, request.token_cap(), prompt_tokens, prompt_field, cap_field)
        row = Row(run.lab.model, cap, stops, request.stream)
        job = Job(request.model, prompt, control, decoding(request, run), row, asyncio.get_running_loop())
        self.batcher.submit(job)
        return job

    def entry(self, name: str) -> OpenRun:
        if name not in self.entries:
            raise ApiError(404, f"model {name!r} does not exist; this server has: {', '.join(self.entries)}", "model", code="model_not_found")
        return self.entries[name]

    @staticmethod
    def control(run: OpenRun, request: Sampling) -> Control:
        value = request.steering.control if request.steering is not None else None
        space = run.entry.space
        if value is None:
            neutral = space.neutral()
            if neutral is None:
                example = space.to_json(run.entry.controls[-1])
                raise ApiError(400, f"method {run.entry.name!r} ({run.entry.method}) has no neutral {space.label}: send "
                                    f"\"steering\": {{\"control\": ...}}, e.g. {example}", "steering.control")
            return neutral
        try:
            return read_control(run.entry, value, "steering.control")
        except ConfigError as exc:
            raise ApiError(400, str(exc), "steering.control") from None

    @staticmethod
    def formatted(run: OpenRun, prompt: Prompt, control: Control) -> str:
        [system] = run.lab.system_prompts(run.method, run.artifact, run.entry.space, [control])
        try:
            return render(run.lab.model, prompt, system)
        except ValueError:
            raise ApiError(400, f"method {run.entry.name!r} ({run.entry.method}) steers through a system prompt: "
                                "use /v1/chat/completions", "model") from None

    def token_cap(self, run: OpenRun, asked: int | None, prompt_tokens: int, prompt_field: str, cap_field: str) -> int:
        """The request's ``max_tokens``, checked against the limit and the model's context."""
        limit, context = self.options.max_tokens_limit, context_length(run.lab.model)
        room = None if context is None else context - prompt_tokens
        if room is not None and room < 1:
            raise ApiError(400, f"the prompt is {prompt_tokens} tokens; the model's context holds {context}", prompt_field,
                           code="context_length_exceeded")
        if asked is None:
            return min(run.lab.settings.max_new_tokens, limit, room if room is not None else limit)
        if not 1 <= asked <= limit:
            raise ApiError(400, f"{cap_field} {asked}: expected a whole number from 1 to {limit}", cap_field)
        if room is not None and asked > room:
            raise ApiError(400, f"{cap_field} {asked}: the prompt is {prompt_tokens} tokens and the model's context holds "
                                f"{context}, so at most {room} can follow", cap_field, code="context_length_exceeded")
        return asked


def describe(run: OpenRun) -> dict[str, Any]:
    """A method entry and its control space, for /v1/models and the playground's widgets."""
    space, entry = run.entry.space, run.entry
    neutral = space.neutral()
    return {"method": entry.method, **space.describe(), **space.widget(entry.controls),
            "neutral": None if neutral is None else space.to_json(neutral),
            "controls": [space.to_json(c) for c in entry.controls]}


def chat_prompt(request: ChatRequest) -> Prompt:
    """One user message alone is a plain prompt (exactly what ``steerlab generate`` answers);
    anything else is a ``Chat`` (``developer`` read as ``system``)."""
    if not request.messages:
        raise ApiError(400, "messages: expected at least one message", "messages")
    turns = tuple(("system" if m.role == "developer" else m.role, m.text()) for m in request.messages)
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    try:
        return Chat(turns)
    except ValueError as exc:
        raise ApiError(400, f"messages: {exc}", "messages") from None


def completion_prompt(request: CompletionRequest) -> Prompt:
    prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
    if len(prompts) != 1:
        raise ApiError(400, f"prompt: expected one text (this server answers one prompt per request), got {len(prompts)}", "prompt")
    if not prompts[0]:
        raise ApiError(400, "prompt: expected a non-empty text", "prompt")
    return Continuation(prompts[0])


def check_stops(stops: list[str]) -> list[str]:
    if len(stops) > MAX_STOPS or any(not s for s in stops):
        raise ApiError(400, f"stop: expected up to {MAX_STOPS} non-empty strings", "stop")
    return stops


def decoding(request: Sampling, run: OpenRun) -> Decoding:
    """Greedy at temperature 0; the run's decoding when neither temperature nor top_p is given."""
    base = run.lab.settings
    if request.temperature is None and request.top_p is None:
        return Decoding(True, base.temperature, base.top_p, request.seed) if base.do_sample else GREEDY
    temperature = 1.0 if request.temperature is None else request.temperature
    if temperature == 0:
        return GREEDY
    return Decoding(True, temperature, request.top_p if request.top_p is not None else 1.0, request.seed)


def completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"

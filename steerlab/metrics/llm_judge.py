"""``llm_judge``: answers scored by a language model behind any OpenAI-compatible endpoint, with
AxBench's judge protocol (Wu et al. 2025): three questions per answer, each rated 0, 1 or 2 after
a short explanation, in the form ``Rating: [[score]]``:

* **concept** (per concept of ``[metrics.llm_judge] concepts``): is the concept in the answer?
* **instruction**: does the answer still relate to the request?
* **fluency**: is the answer fluent, whatever its content?

and per concept their harmonic mean (0 when any of the three is 0), ``llm_judge.CONCEPT.harmonic``.
The endpoint can be a hosted API, vLLM, llama.cpp's server or ``steerlab serve`` itself.

Every reply is kept in ``metrics/llm_judge/cache.json`` (JSON, never pickle), keyed by a hash of
the request (endpoint, model, messages, decoding), so a resumed or repeated scoring asks nothing
twice. A reply without a readable rating scores NaN (never a guess) and the report section
counts them. Requests retry with exponential backoff on connection errors, 429 and 5xx; an
endpoint that stays unreachable is one line naming its URL, and a study whose judge is
unreachable when it starts stops with exit 2 before its run folder exists (``check``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from steerlab.errors import ConfigError
from steerlab.metrics.base import BaseMetric, MetricContext, Sample
from steerlab.results import Section
from steerlab.stats import harmonic_mean
from steerlab.storage import read_json, write_json
from steerlab.config import help_field

CONCEPT = """[System]
Please act as an impartial judge and rate how clearly the concept below appears in the text fragment. \
Consider only whether the concept is there, not grammar or coherence.

First explain briefly which words or phrases of the fragment refer to the concept, if any. Then rate 0 if \
the concept is absent, 1 if it is only loosely or partly present, 2 if it is clearly present, in exactly \
this form: "Rating: [[score]]".

[Concept Start]
{concept}
[Concept End]

[Text Fragment Start]
{answer}
[Text Fragment End]
"""

INSTRUCTION = """[System]
Please act as an impartial judge and rate how closely the text fragment relates to the instruction \
below, regardless of grammar, coherence or how informative it is.

First explain briefly which parts of the fragment relate to the instruction, if any. Then rate 0 if \
the fragment is unrelated, 1 if it is somewhat related, 2 if it clearly addresses the instruction, in \
exactly this form: "Rating: [[score]]".

[Instruction Start]
{instruction}
[Instruction End]

[Text Fragment Start]
{answer}
[Text Fragment End]
"""

FLUENCY = """[System]
Please act as an impartial judge and rate the fluency of the text fragment below, disregarding how \
complete, relevant or informative it is.

First describe briefly any unnatural phrasing, grammatical errors or repetition. Then rate 0 if the \
fragment is not fluent (incomprehensible or repetitive), 1 if it is somewhat fluent with noticeable \
errors or awkward phrasing, 2 if it is fluent and nearly perfect, in exactly this form: "Rating: [[score]]".

[Text Fragment Start]
{answer}
[Text Fragment End]
"""

RATING = re.compile(r"Rating:\s*\[\[\s*([0-9]+(?:\.[0-9]+)?)\s*\]\]")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class LLMJudgeConfig:
    base_url: str = field(metadata={"help": "the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (steerlab serve, vLLM) or https://api.openai.com/v1"})
    model: str = field(metadata={"help": "the judge model's id at that endpoint"})
    api_key_env: str = help_field("", "environment variable holding the endpoint's API key (empty: send none)")
    concepts: dict = help_field({}, "concept name -> the concept as the judge reads it, e.g. {humorous = \"jokes and humour\"}")
    max_tokens: int = help_field(256, "most tokens of a judge reply (the explanation and the rating)")
    temperature: float = help_field(0.0, "judge sampling temperature (0: greedy, as AxBench)")
    timeout: float = help_field(60.0, "seconds to wait for one reply")
    retries: int = help_field(3, "tries after the first on a connection error, a timeout, 429 or 5xx")
    backoff: float = help_field(1.0, "seconds before the first retry, doubled at each further one")
    concurrency: int = help_field(8, "judge requests in flight at once (a batching server answers them together)")

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"key 'base_url' must be an http(s) URL of an OpenAI-compatible endpoint (got {self.base_url!r})")
        if not self.model:
            raise ValueError("key 'model' must name the judge model at the endpoint")
        if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in self.concepts.items()):
            raise ValueError("key 'concepts' must map each concept name to a non-empty description")
        for key, low in (("max_tokens", 1), ("retries", 0), ("concurrency", 1)):
            if getattr(self, key) < low:
                raise ValueError(f"key '{key}' must be >= {low} (got {getattr(self, key)})")
        for key in ("timeout", "backoff", "temperature"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0 or (key == "timeout" and value == 0):
                raise ValueError(f"key '{key}' must be a finite number {'> 0' if key == 'timeout' else '>= 0'} (got {value})")


def parse_rating(reply: str) -> float:
    """The last ``Rating: [[x]]`` of a reply, x in [0, 2]; NaN when there is none (never a guess)."""
    found = RATING.findall(reply)
    value = float(found[-1]) if found else math.nan
    return value if 0.0 <= value <= 2.0 else math.nan


def questions(config: LLMJudgeConfig, sample: Sample) -> dict[str, str]:
    """The judge prompts for one answer, by the score each gives."""
    asked = {"llm_judge.instruction": INSTRUCTION.format(instruction=sample.prompt, answer=sample.output),
             "llm_judge.fluency": FLUENCY.format(answer=sample.output)}
    for name, concept in config.concepts.items():
        asked[f"llm_judge.{name}"] = CONCEPT.format(concept=concept, answer=sample.output)
    return asked


def with_harmonic(config: LLMJudgeConfig, ratings: dict[str, float]) -> dict[str, float]:
    """The ratings plus each concept's harmonic mean of concept, instruction and fluency."""
    shared = (ratings["llm_judge.instruction"], ratings["llm_judge.fluency"])
    return {**ratings, **{f"llm_judge.{c}.harmonic": harmonic_mean((ratings[f"llm_judge.{c}"], *shared)) for c in config.concepts}}


class ReplyCache:
    """Judge replies by request hash, in a JSON file (read once, written after each scoring call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = read_json(path, "judge reply cache") if path.exists() else {"replies": {}}
        if not isinstance(data, dict) or not isinstance(data.get("replies"), dict):
            raise ConfigError(f"{path}: malformed judge reply cache (delete it to ask the judge again)")
        self.replies: dict[str, str] = data["replies"]
        self._lock = threading.Lock()

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self.replies[key] = reply

    def save(self) -> None:
        with self._lock:
            write_json(self.path, {"replies": self.replies}, indent=None)


class JudgeClient:
    """Chat completions at an OpenAI-compatible endpoint, with retries and backoff."""

    def __init__(self, config: LLMJudgeConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config, self.url = config, config.base_url.rstrip("/")
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self.http = httpx.Client(timeout=config.timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})

    def request(self, prompt: str) -> dict[str, Any]:
        """The request body for one judge prompt (also what the cache is keyed by, with the URL)."""
        return {"model": self.config.model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": self.config.max_tokens, "temperature": self.config.temperature}

    def ask(self, body: dict[str, Any]) -> str:
        """The judge's reply text; retried on transient failures, else one ConfigError line."""
        last = ""
        for attempt in range(self.config.retries + 1):
            if attempt:
                time.sleep(self.config.backoff * 2 ** (attempt - 1))
            try:
                response = self.http.post(f"{self.url}/chat/completions", json=body)
            except httpx.TransportError as exc:
                last = f"unreachable ({type(exc).__name__}: {exc})"
                continue
            if response.status_code in RETRY_STATUS:
                last = f"answered HTTP {response.status_code}"
                continue
            return self._reply(response)
        raise ConfigError(f"[metrics.llm_judge] base_url {self.url}: {last} after {self.config.retries + 1} tries")

    def _reply(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            message = body.get("error", {}).get("message", "") if isinstance(body, dict) and isinstance(body.get("error"), dict) else response.text[:200]
            raise ConfigError(f"[metrics.llm_judge] base_url {self.url}: HTTP {response.status_code} for model {self.config.model!r}: {message}")
        try:
            return str(body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise ConfigError(f"[metrics.llm_judge] base_url {self.url}: a reply without choices[0].message.content") from None

    def check(self) -> None:
        """ValueError (one line, naming the URL) unless the endpoint answers and serves the model."""
        try:
            response = self.http.get(f"{self.url}/models", timeout=min(self.config.timeout, 10.0))
        except httpx.TransportError as exc:
            raise ValueError(f"base_url {self.url}: unreachable ({type(exc).__name__}: {exc})") from None
        if response.status_code in (401, 403):
            where = f"set {self.config.api_key_env}" if self.config.api_key_env else "set api_key_env to the variable holding the key"
            raise ValueError(f"base_url {self.url}: the endpoint refused the request (HTTP {response.status_code}); {where}")
        served = _model_ids(response)
        if served is not None and self.config.model not in served:
            raise ValueError(f"model {self.config.model!r} is not served at {self.url} (it serves: {', '.join(served) or 'nothing'})")


def _model_ids(response: httpx.Response) -> list[str] | None:
    """The ids a ``/models`` answer lists; None when the endpoint has no such list."""
    try:
        return [m["id"] for m in response.json()["data"]] if response.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        return None


class LLMJudgeMetric(BaseMetric):
    """AxBench's LLM judge through any OpenAI-compatible endpoint (see the module docstring)."""

    name = "llm_judge"
    description = "an LLM judge at an OpenAI-compatible endpoint, AxBench's protocol: concept, instruction, fluency (0-2) and their harmonic mean"
    Config = LLMJudgeConfig

    def outputs(self, config: LLMJudgeConfig) -> list[str]:
        return (["llm_judge.instruction", "llm_judge.fluency"] + [f"llm_judge.{c}" for c in config.concepts]
                + [f"llm_judge.{c}.harmonic" for c in config.concepts])

    def check(self, config: LLMJudgeConfig) -> None:
        JudgeClient(config).check()

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        client = ctx.memo("client", lambda: JudgeClient(ctx.config))
        cache = ctx.memo("cache", lambda: ReplyCache(ctx.folder / "cache.json"))
        keyed = [{name: (self._key(client, prompt), prompt) for name, prompt in questions(ctx.config, s).items()} for s in samples]
        self._fill(client, cache, [pair for asked in keyed for pair in asked.values()])
        return [with_harmonic(ctx.config, {name: parse_rating(cache.replies[key]) for name, (key, _) in asked.items()}) for asked in keyed]

    @staticmethod
    def _key(client: JudgeClient, prompt: str) -> str:
        return ReplyCache.key({"base_url": client.url, **client.request(prompt)})

    @staticmethod
    def _fill(client: JudgeClient, cache: ReplyCache, wanted: list[tuple[str, str]]) -> None:
        """Ask the judge every (key, prompt) the cache lacks, several at once; then save the cache."""
        missing = list({k: p for k, p in wanted if k not in cache.replies}.items())
        if not missing:
            return
        try:
            with ThreadPoolExecutor(client.config.concurrency) as pool:
                for (key, _), reply in zip(missing, pool.map(lambda kp: client.ask(client.request(kp[1])), missing)):
                    cache.put(key, reply)
        finally:
            cache.save()  # what was answered is kept, also when a later request failed

    def section(self, ctx: MetricContext) -> Section:
        cache = ctx.memo("cache", lambda: ReplyCache(ctx.folder / "cache.json"))
        replies = list(cache.replies.values())
        unreadable = sum(math.isnan(parse_rating(r)) for r in replies)
        text = (f"Judge **{ctx.config.model}** at `{ctx.config.base_url}`, AxBench's protocol: concept, instruction and fluency "
                f"rated 0-2, their harmonic mean 0 when any is 0. {len(replies)} judge replies (kept in "
                f"`{ctx.lab.layout.relative(cache.path)}`); **{unreadable}** had no readable `Rating: [[0-2]]` and scored NaN.")
        return Section(summary={"replies": float(len(replies)), "unparseable": float(unreadable),
                                "unparseable_share": unreadable / len(replies) if replies else math.nan},
                       markdown=text, data={"model": ctx.config.model, "base_url": ctx.config.base_url})

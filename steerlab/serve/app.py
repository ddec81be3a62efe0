"""``steerlab serve RUN``: the run's methods behind an OpenAI-compatible HTTP API (FastAPI on
uvicorn), with a playground page at ``/``.

Routes: ``GET /v1/models`` (one model per trained method entry, with its control space),
``POST /v1/chat/completions`` and ``POST /v1/completions`` (OpenAI's shapes, ``stream`` as
server-sent events, the control in ``"steering": {"control": ...}``), ``GET /health`` and the
playground. The model and artifacts are loaded once, before the port opens; a bad request is a
4xx in OpenAI's error shape and never reaches the model.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import secrets
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from steerlab.errors import ConfigError
from steerlab.serve.batcher import Job
from steerlab.serve.protocol import (ApiError, ChatChoice, ChatChunk, ChatChunkChoice, ChatCompletion, ChatMessage, ChatRequest, Completion,
                                     CompletionRequest, Delta, TextChoice, Usage, error_body)
from steerlab.serve.rows import Answer
from steerlab.serve.service import ServeOptions, Service, completion_id

if TYPE_CHECKING:
    from steerlab.notebook import Run

log = logging.getLogger("steerlab.serve")


def create_app(service: Service) -> FastAPI:
    """The HTTP application around ``service`` (its batcher runs while the app does)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(service.batcher.run())
        yield
        service.batcher.stop()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    app = FastAPI(title="steerlab", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service
    _add_error_handlers(app)
    app.include_router(_api(service), dependencies=[Depends(_key_check(service.options.api_key))])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> str:
        return files("steerlab.serve").joinpath("playground.html").read_text(encoding="utf-8")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        stats = service.batcher.stats
        return {"status": "ok", "waiting": service.batcher.waiting, "running": stats.running, "batches": len(stats.batches)}

    return app


def _api(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/models")
    async def models() -> dict[str, Any]:
        return service.models().model_dump()

    @router.post("/chat/completions", response_model=None)
    async def chat(request: ChatRequest) -> dict[str, Any] | StreamingResponse:
        job = service.chat_job(request)
        if request.stream:
            return _events(_chat_stream(job, request))
        answer = await job.answer()
        choice = ChatChoice(message=ChatMessage(content=answer.text), finish_reason=answer.finish_reason)
        return ChatCompletion(id=completion_id("chatcmpl"), created=int(time.time()), model=request.model, choices=[choice],
                              usage=Usage(**answer.usage()), steering=_steering(service, job)).model_dump()

    @router.post("/completions", response_model=None)
    async def complete(request: CompletionRequest) -> dict[str, Any] | StreamingResponse:
        job = service.completion_job(request)
        if request.stream:
            return _events(_text_stream(job, request))
        answer = await job.answer()
        return Completion(id=completion_id("cmpl"), created=int(time.time()), model=request.model,
                          choices=[TextChoice(text=answer.text, finish_reason=answer.finish_reason)],
                          usage=Usage(**answer.usage()), steering=_steering(service, job)).model_dump()

    return router


def _steering(service: Service, job: Job) -> dict[str, Any]:
    return {"control": service.entries[job.entry].entry.space.to_json(job.control)}


def _events(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def sse(data: Any) -> str:
    """One server-sent event carrying ``data`` as JSON (a pydantic model or a dict)."""
    payload = data.model_dump_json(exclude_none=False) if hasattr(data, "model_dump_json") else json.dumps(data)
    return f"data: {payload}\n\n"


async def _pieces(job: Job) -> AsyncIterator[str | Answer]:
    """A job's streamed pieces then its answer; the row is freed when the client goes away."""
    try:
        async for item in job.items():
            if isinstance(item, Answer) and item.rest is None and job.row.streaming:
                log.warning("request %d: the decoder rewrote text already streamed; the stream ends without the rest", job.id)
            yield item
    finally:
        job.row.cancel()  # a no-op once the row is over; ends it mid-batch when the client left


async def _chat_stream(job: Job, request: ChatRequest) -> AsyncIterator[str]:
    ident, created = completion_id("chatcmpl"), int(time.time())

    def chunk(delta: Delta, finish: str | None = None) -> str:
        return sse(ChatChunk(id=ident, created=created, model=request.model, choices=[ChatChunkChoice(delta=delta, finish_reason=finish)]))

    yield chunk(Delta(role="assistant", content=""))
    try:
        async for item in _pieces(job):
            if isinstance(item, str):
                yield chunk(Delta(content=item))
                continue
            if item.rest:
                yield chunk(Delta(content=item.rest))
            yield chunk(Delta(), item.finish_reason)
            if request.stream_options is not None and request.stream_options.include_usage:
                yield sse(ChatChunk(id=ident, created=created, model=request.model, choices=[], usage=Usage(**item.usage())))
    except ApiError as exc:
        yield sse(exc.body())
    yield "data: [DONE]\n\n"


async def _text_stream(job: Job, request: CompletionRequest) -> AsyncIterator[str]:
    ident, created = completion_id("cmpl"), int(time.time())

    def chunk(text: str, finish: str | None = None, usage: Usage | None = None) -> str:
        return sse(Completion(id=ident, created=created, model=request.model, choices=[TextChoice(text=text, finish_reason=finish)], usage=usage))

    try:
        async for item in _pieces(job):
            if isinstance(item, str):
                yield chunk(item)
                continue
            include = request.stream_options is not None and request.stream_options.include_usage
            yield chunk(item.rest or "", item.finish_reason, Usage(**item.usage()) if include else None)
    except ApiError as exc:
        yield sse(exc.body())
    yield "data: [DONE]\n\n"


def _key_check(api_key: str | None) -> Any:
    """A dependency refusing /v1 requests without ``Authorization: Bearer KEY`` (when a key is set)."""
    async def check(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer KEY'", kind="authentication_error",
                           code="invalid_api_key")
    return check


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal in OpenAI's error shape: ours, pydantic's (400, naming the field), unknown
    routes and methods, and anything unexpected (500; the server goes on)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc.errors())
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {exc.detail}"), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}: {exc}", "server_error"), status_code=500)


def validation_message(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    """Pydantic's first complaint as one line and the field it names (``messages.0.role``)."""
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    if param is None:
        return f"request body: {first.get('msg')} (expected a JSON object)", None
    return f"{param}: {first.get('msg')}", param


def open_service(run_dir: Path, options: ServeOptions, plugins: Sequence[str] = ()) -> Service:
    """The run opened, every trained entry's model and artifact loaded once, checked for serving."""
    from steerlab.notebook import open_run

    return service_for(open_run(run_dir, plugins), options)


def service_for(run: "Run", options: ServeOptions) -> Service:
    """A service over an opened run (``steerlab.open_run``): its trained entries, each checked."""
    if not run.methods:
        raise ConfigError(f"{run.folder}: no trained method to serve")
    entries = {name: run.open_entry(name) for name in run.methods}
    for name, entry in entries.items():
        settings = entry.lab.settings
        backend = entry.lab.registry.get("backends", settings.backend, "[generation] key 'backend'")
        if "step" not in inspect.signature(backend.generate).parameters:
            raise ConfigError(f"{run.study.path}: [generation] backend {settings.backend!r} cannot watch decoding steps "
                              "(generate(..., step)), which steerlab serve needs; serve with backend = \"hf\"")
    return Service(entries, options)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(run_dir: Path, options: ServeOptions, plugins: Sequence[str] = ()) -> None:
    """Load the run, then answer on ``options.host:options.port`` until interrupted."""
    import uvicorn

    service = open_service(run_dir, options, plugins)
    if not is_loopback(options.host) and options.api_key is None:
        print(f"steerlab: warning: serving on {options.host} without --api-key: anyone who reaches this port can use it", file=sys.stderr)
    url = f"http://{options.host}:{options.port}"
    print(f"steerlab: serving {run_dir} ({', '.join(service.entries)}): playground {url}/ , OpenAI API {url}/v1", file=sys.stderr)
    uvicorn.run(create_app(service), host=options.host, port=options.port, log_level="warning")


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` on a free port of ``host`` in a thread (tests, benchmarks): yields its base
    URL, and stops it on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()

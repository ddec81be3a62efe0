"""``steerlab serve`` on a tiny run (actdiff, Panacea, prompting, base): OpenAI's protocol with a
control per request, greedy answers equal to ``steerlab generate`` alone or batched, streams that
add up to the answer, the official client, and bad requests that never hurt the server."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import steerlab
from conftest import make_study
from steerlab.cli import main
from steerlab.serve.app import create_app, running, service_for
from steerlab.serve.rows import Row, held_from
from steerlab.serve.service import ServeOptions
from test_notebook import tiny_study

PROMPT = "Why is the sky blue?"
WEB = httpx.Client(timeout=60)  # one client: each new one builds an SSL context (~0.1 s)
CONTROLS = {"actdiff": 1.0, "panacea": {"humorous": 1.0}, "prompting": [0.0, 0.5, 0.5], "base": None}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> steerlab.Run:
    folder = make_study(tmp_path_factory.mktemp("serve"))
    study = tiny_study(folder, ("actdiff", "panacea", "prompting", "base"))
    # a repetition penalty makes the random model's answers differ with the control (without one, each
    # answer repeats one token, often whitespace), so equal answers are a real check
    return steerlab.run_study(study, {"data.eval_limit": 1, "generation.repetition_penalty": 2.0}, out=folder / "runs",
                              show_progress=False, **{"generation.max_new_tokens": 2})


@pytest.fixture(scope="module")
def served(tiny_run: steerlab.Run) -> steerlab.Run:
    """The run opened a second time, as ``steerlab serve`` opens it (its own copy of the model)."""
    return steerlab.open_run(tiny_run.folder)


@contextlib.contextmanager
def server(run: steerlab.Run, **options) -> Iterator[tuple[str, object]]:
    service = service_for(run, ServeOptions(**{"max_wait_ms": 5.0, **options}))
    with running(create_app(service)) as url:
        yield url, service


@pytest.fixture(scope="module")
def url(served: steerlab.Run) -> Iterator[str]:
    with server(served) as (base, _):
        yield base


def chat(url: str, model: str, control=None, prompt: str = PROMPT, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}
    if control is not None:
        body["steering"] = {"control": control}
    return WEB.post(f"{url}/v1/chat/completions", json=body)


def streamed(url: str, path: str, body: dict) -> tuple[str, list[dict]]:
    """The text a stream adds up to, and its events."""
    events = []
    with WEB.stream("POST", f"{url}{path}", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    pieces = [(e["choices"][0].get("delta", {}).get("content") if "delta" in e["choices"][0] else e["choices"][0]["text"])
              for e in events if e.get("choices")]
    return "".join(p or "" for p in pieces), events


def test_models_lists_each_trained_entry_with_the_widget_its_control_space_asks_for(url, served):
    cards = {m["id"]: m["steering"] for m in WEB.get(f"{url}/v1/models").json()["data"]}
    assert list(cards) == served.methods == ["actdiff", "panacea", "prompting", "base"]
    assert cards["actdiff"] | {"controls": None} == {"method": "actdiff", "kind": "scalar", "label": "strength", "dimensions": [],
                                                     "widget": "slider", "min": -1.0, "max": 1.0, "neutral": 0.0, "controls": None}
    assert cards["panacea"]["widget"] == "simplex" and cards["panacea"]["dimensions"] == ["helpful", "humorous", "philosophical"]
    assert cards["panacea"]["neutral"] is None and cards["base"]["widget"] == "none"


@pytest.mark.parametrize("method", list(CONTROLS))
def test_a_greedy_answer_is_the_answer_of_steerlab_generate_at_the_same_control(method, url, tiny_run):
    response = chat(url, method, CONTROLS[method], max_tokens=12)
    assert response.status_code == 200, response.text
    body = response.json()
    [expected] = tiny_run.generate(PROMPT, method=method, control=CONTROLS[method], max_new_tokens=12)
    assert body["choices"][0]["message"]["content"] == expected
    assert body["object"] == "chat.completion" and body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_a_served_answer_is_what_the_steerlab_generate_command_prints(url, tiny_run, capsys):
    assert main(["generate", str(tiny_run.folder), "Tell me a story", "--method", "actdiff", "--control", "0.5", "--max-new-tokens", "16"]) == 0
    printed = capsys.readouterr().out.split("\n")[1].removeprefix("[actdiff strength=+0.5] ")
    assert printed and chat(url, "actdiff", 0.5, "Tell me a story", max_tokens=16).json()["choices"][0]["message"]["content"] == printed


def test_no_steering_means_the_neutral_control_and_a_simplex_without_one_must_be_told(url, tiny_run):
    neutral = chat(url, "actdiff", max_tokens=8).json()
    assert neutral["steering"] == {"control": 0.0}
    assert neutral["choices"][0]["message"]["content"] == tiny_run.generate(PROMPT, method="base", max_new_tokens=8)[0]
    refused = chat(url, "panacea", max_tokens=8)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "steering.control"


def test_eight_concurrent_clients_with_mixed_controls_get_their_one_at_a_time_answers(served, tiny_run):
    requests = [({"actdiff": [-1.0, -0.5, 0.0, 0.5, 1.0, 0.25, -0.25, 0.75][i]}, ["Hello!", PROMPT, "Name a fruit.", "Tell me a story"][i % 4], 6 + i)
                for i in range(8)]
    alone = [tiny_run.generate(p, method="actdiff", control=c["actdiff"], max_new_tokens=n)[0] for c, p, n in requests]
    with server(served, max_batch=8, max_wait_ms=30_000) as (base, service):  # the batch starts when all eight are in
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda r: chat(base, "actdiff", r[0]["actdiff"], r[1], max_tokens=r[2]).json(), requests))
        assert service.batcher.stats.batches == [8]
    assert [a["choices"][0]["message"]["content"] for a in answers] == alone
    assert [a["usage"]["completion_tokens"] <= n for a, (_, _, n) in zip(answers, requests)] == [True] * 8


def test_streamed_pieces_add_up_to_the_unstreamed_answer_in_chat_and_text_completions(url):
    for control in (-1.0, 0.5):  # -1: invalid UTF-8 bytes; 0.5: letters
        body = {"model": "actdiff", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 24, "steering": {"control": control}}
        whole = WEB.post(f"{url}/v1/chat/completions", json=body).json()
        text, events = streamed(url, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}})
        assert text == whole["choices"][0]["message"]["content"]
        assert events[0]["choices"][0]["delta"]["role"] == "assistant" and events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
        assert events[-1]["usage"] == whole["usage"] and events[-1]["choices"] == []
        raw = {"model": "actdiff", "prompt": "Once upon a time", "max_tokens": 16, "steering": {"control": control}}
        whole_text = WEB.post(f"{url}/v1/completions", json=raw).json()["choices"][0]["text"]
        assert streamed(url, "/v1/completions", raw)[0] == whole_text


def test_a_stop_sequence_ends_the_answer_before_it_and_the_stream_never_sends_it(url):
    body = {"model": "actdiff", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 30, "steering": {"control": 0.0}}
    full = WEB.post(f"{url}/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    change = next(i for i in range(len(full) - 1) if full[i] != full[i + 1])  # the answer turns from one letter to another
    stop = full[change : change + 2]  # so its first letter may begin the stop sequence many times before it does
    cut = WEB.post(f"{url}/v1/chat/completions", json={**body, "stop": [stop]}).json()
    assert cut["choices"][0]["finish_reason"] == "stop" and cut["choices"][0]["message"]["content"] == full[:change]
    assert streamed(url, "/v1/chat/completions", {**body, "stop": stop})[0] == full[:change]


def test_a_stream_holds_back_what_may_still_become_a_stop_sequence(served):
    model = served.open_entry("actdiff").lab.model
    ids = model.tokenizer("xyab", add_special_tokens=False)["input_ids"]
    sent: list[str] = []
    row = Row(model, max_tokens=10, stops=["abc"], streaming=True, emit=sent.append)
    assert [row.push(t) for t in ids] == [False] * 4
    assert sent == ["x", "y"]  # "ab" may begin "abc": held back
    assert held_from("xyab", ["abc"]) == 2 and held_from("xyz", ["abc"]) == 3


def test_a_seeded_sampled_request_gives_the_same_answer_each_time(url):
    answers = {chat(url, "actdiff", 0.5, max_tokens=16, temperature=1.0, seed=11).json()["choices"][0]["message"]["content"] for _ in range(2)}
    assert len(answers) == 1


def test_the_official_openai_client_works_unchanged(url):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["actdiff", "panacea", "prompting", "base"]
    messages = [{"role": "user", "content": PROMPT}]
    reply = client.chat.completions.create(model="panacea", messages=messages, max_tokens=10, extra_body={"steering": {"control": {"humorous": 1}}})
    expected = chat(url, "panacea", {"humorous": 1}, max_tokens=10).json()["choices"][0]["message"]["content"]
    assert reply.choices[0].message.content == expected and reply.usage.completion_tokens > 0
    stream = client.chat.completions.create(model="panacea", messages=messages, max_tokens=10, stream=True,
                                            extra_body={"steering": {"control": {"humorous": 1}}})
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
    text = client.completions.create(model="actdiff", prompt="Once upon a time", max_tokens=8, extra_body={"steering": {"control": 0.5}})
    assert text.choices[0].text == WEB.post(f"{url}/v1/completions", json={"model": "actdiff", "prompt": "Once upon a time", "max_tokens": 8,
                                                                             "steering": {"control": 0.5}}).json()["choices"][0]["text"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=messages)


USER = [{"role": "user", "content": "Hi"}]
BAD = {  # (path, body, status, param)
    "malformed JSON": ("/v1/chat/completions", b'{"model": "actdiff", "messages": [', 400, None),
    "a body that is no object": ("/v1/chat/completions", b"[1, 2]", 400, None),
    "an unknown model": ("/v1/chat/completions", {"model": "nope", "messages": USER}, 404, "model"),
    "a NaN control": ("/v1/chat/completions", b'{"model": "actdiff", "messages": [{"role": "user", "content": "Hi"}], "steering": {"control": NaN}}', 400, "steering.control"),
    "an infinite control": ("/v1/chat/completions", b'{"model": "actdiff", "messages": [{"role": "user", "content": "Hi"}], "steering": {"control": Infinity}}', 400, "steering.control"),
    "a control off the simplex": ("/v1/chat/completions", {"model": "panacea", "messages": USER, "steering": {"control": [0.5, 0.6, 0.0]}}, 400, "steering.control"),
    "a negative weight": ("/v1/chat/completions", {"model": "panacea", "messages": USER, "steering": {"control": {"helpful": 1.5, "humorous": -0.5}}}, 400, "steering.control"),
    "an unknown dimension": ("/v1/chat/completions", {"model": "panacea", "messages": USER, "steering": {"control": {"sad": 1}}}, 400, "steering.control"),
    "a control of the wrong type": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "steering": {"control": True}}, 400, "steering.control"),
    "a list for a scalar": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "steering": {"control": [1, 2]}}, 400, "steering.control"),
    "a control for base": ("/v1/chat/completions", {"model": "base", "messages": USER, "steering": {"control": 1}}, 400, "steering.control"),
    "a misspelt steering key": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "steering": {"contol": 1}}, 400, "steering.contol"),
    "missing messages": ("/v1/chat/completions", {"model": "actdiff"}, 400, "messages"),
    "empty messages": ("/v1/chat/completions", {"model": "actdiff", "messages": []}, 400, "messages"),
    "an unknown role": ("/v1/chat/completions", {"model": "actdiff", "messages": [{"role": "robot", "content": "Hi"}]}, 400, "messages.0.role"),
    "a conversation ending with the assistant": ("/v1/chat/completions", {"model": "actdiff", "messages": USER + [{"role": "assistant", "content": "Yo"}]}, 400, "messages"),
    "max_tokens 0": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    "negative max_tokens": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "max_tokens": -5}, 400, "max_tokens"),
    "max_tokens above the limit": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "max_tokens": 5000}, 400, "max_tokens"),
    "max_tokens as text": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "max_tokens": "9"}, 400, "max_tokens"),
    "a prompt longer than the context": ("/v1/chat/completions", {"model": "actdiff", "messages": [{"role": "user", "content": "x" * 600}]}, 400, "messages"),
    "a prompt and max_tokens beyond the context": ("/v1/chat/completions", {"model": "actdiff", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 200}, 400, "max_tokens"),
    "a temperature above 2": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "temperature": 3}, 400, "temperature"),
    "top_p 0": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "top_p": 0}, 400, "top_p"),
    "two choices": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "n": 2}, 400, "n"),
    "an empty stop": ("/v1/chat/completions", {"model": "actdiff", "messages": USER, "stop": [""]}, 400, "stop"),
    "an empty prompt": ("/v1/completions", {"model": "actdiff", "prompt": ""}, 400, "prompt"),
    "a missing prompt": ("/v1/completions", {"model": "actdiff"}, 400, "prompt"),
    "raw text for a prompting method": ("/v1/completions", {"model": "prompting", "prompt": "Hi", "steering": {"control": [1, 0, 0]}}, 400, "model"),
    "a lone surrogate in a message": ("/v1/chat/completions", b'{"model": "actdiff", "messages": [{"role": "user", "content": "\\ud800"}]}', 400, "messages.0.content"),
    "a lone surrogate in a stop": ("/v1/completions", b'{"model": "actdiff", "prompt": "Hi", "stop": ["\\udfff"]}', 400, "stop"),
    "an unknown route": ("/v1/embeddings", {"model": "actdiff", "input": "Hi"}, 404, None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_every_bad_request_is_a_4xx_naming_its_field_and_the_next_request_is_served(case, url):
    path, body, status, param = BAD[case]
    send = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {"json": body}
    response = WEB.post(f"{url}{path}", **send)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param"} and error["message"] and error["param"] == param
    assert chat(url, "actdiff", 0.5, max_tokens=3).status_code == 200


@contextlib.contextmanager
def gated(run: steerlab.Run, free: int) -> Iterator[threading.Event]:
    """The served model's forwards after the first ``free`` wait until the yielded gate opens, so
    a request stays in flight for as long as a test needs (the gate opens on exit in any case)."""
    gate, calls = threading.Event(), iter(range(10**9))

    def hold(module, args) -> None:
        if next(calls) >= free:
            gate.wait(timeout=60)

    handle = run.open_entry("actdiff").lab.model.hf.register_forward_pre_hook(hold)
    try:
        yield gate
    finally:
        gate.set()
        handle.remove()


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_client_that_disconnects_mid_stream_frees_its_batch_row(served):
    body = {"model": "actdiff", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 300, "stream": True}
    with server(served) as (base, service), gated(served, free=3) as gate:  # the prompt and two more steps, then the row waits
        batcher = service.batcher
        with WEB.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()  # kept: a dropped line iterator closes the connection
            assert next(lines).startswith("data: ")
            wait_for(lambda: batcher.live and len(batcher.live[0].row.ids) == 3, "three tokens")
            row = batcher.live[0].row
        wait_for(lambda: row.cancelled, "the server to see the client go")
        gate.set()
        wait_for(lambda: len(batcher.stats.ended) == 1, "the row to end")
        [(_, reason, tokens)] = batcher.stats.ended
        assert reason == "cancelled" and tokens == 3  # ended at the step after the client left, not at its 300-token cap
        assert chat(base, "actdiff", 0.5, max_tokens=4).status_code == 200


def test_a_full_queue_answers_429_and_the_server_goes_on(served):
    with server(served, max_queue=1) as (base, service), gated(served, free=0) as gate, ThreadPoolExecutor(2) as pool:
        running = pool.submit(chat, base, "actdiff", -1.0, "Tell me a story", max_tokens=8)
        wait_for(lambda: service.batcher.stats.running == 1, "the first request to decode")
        waiting = pool.submit(chat, base, "actdiff", 0.5, "Hello!", max_tokens=4)
        wait_for(lambda: WEB.get(f"{base}/health").json()["waiting"] == 1, "the second request to wait")
        full = chat(base, "actdiff", 0.5, max_tokens=4)
        assert full.status_code == 429 and full.json()["error"]["type"] == "rate_limit_error"
        gate.set()
        assert running.result(timeout=60).status_code == 200 and waiting.result(timeout=60).status_code == 200
        assert chat(base, "actdiff", 0.5, max_tokens=4).status_code == 200


def test_an_api_key_guards_the_api_but_not_the_page(served):
    with server(served, api_key="sesame") as (base, _):
        assert WEB.get(f"{base}/v1/models").status_code == 401
        wrong = WEB.get(f"{base}/v1/models", headers={"Authorization": "Bearer open"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        assert WEB.get(f"{base}/v1/models", headers={"Authorization": "Bearer sesame"}).status_code == 200
        assert WEB.get(f"{base}/").status_code == 200 and WEB.get(f"{base}/health").status_code == 200


def test_serve_options_refuse_bad_flags_and_bind_loopback_by_default():
    assert ServeOptions().host == "127.0.0.1"
    for bad in ({"max_batch": 0}, {"port": 70000}, {"max_wait_ms": float("nan")}, {"api_key": " "}):
        with pytest.raises(ValueError):
            ServeOptions(**bad)


def test_steerlab_serve_loads_the_run_and_binds_loopback_unless_told_and_a_bad_flag_is_one_line(tiny_run, monkeypatch, capsys):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))  # the command up to the listening socket
    assert main(["serve", str(tiny_run.folder), "--port", "8123", "--max-batch", "4"]) == 0
    assert (started["host"], started["port"]) == ("127.0.0.1", 8123)
    assert started["app"].state.service.batcher.max_batch == 4
    with running(started["app"]) as base:
        assert [m["id"] for m in WEB.get(f"{base}/v1/models").json()["data"]] == tiny_run.methods
    assert "http://127.0.0.1:8123/" in capsys.readouterr().err
    assert main(["serve", str(tiny_run.folder), "--host", "0.0.0.0"]) == 0
    assert "without --api-key" in capsys.readouterr().err
    assert main(["serve", str(tiny_run.folder), "--max-batch", "0"]) == 2
    assert capsys.readouterr().err == "steerlab: error: steerlab serve: --max-batch 0: expected a whole number >= 1\n"


def browser():
    """Headless Chromium driven by Selenium (Debian's chromium and chromium-driver: bash
    scripts/install.sh dev installs them); skipped only where they are absent and CI does not
    ask for them (.ci/run sets STEERLAB_REQUIRE_BROWSER=1, so CI fails instead)."""
    import shutil

    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        reason = "chromium and chromedriver not found (bash scripts/install.sh dev installs them: apt-get install chromium chromium-driver)"
        if os.environ.get("STEERLAB_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1300,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def answers_on_page(page, timeout: float = 60.0) -> list[tuple[dict | float, str]]:
    """(control, answer) of every column once all of them have finished streaming."""
    from selenium.webdriver.support.ui import WebDriverWait

    answers = lambda: page.find_elements("css selector", ".answer")  # noqa: E731
    WebDriverWait(page, timeout).until(lambda _: all(a.get_attribute("data-state") == "done" for a in answers()))
    controls = [json.loads(r.get_attribute("data-control")) for r in page.find_elements("css selector", ".readout")]
    return list(zip(controls, [a.get_attribute("textContent") for a in answers()]))


def test_the_playground_moves_controls_streams_side_by_side_answers_and_draws_them(url, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select, WebDriverWait

    page = browser()
    try:
        page.get(f"{url}/")
        WebDriverWait(page, 30).until(lambda p: len(p.find_elements("css selector", "#method option")) == 4)
        Select(page.find_element("id", "method")).select_by_value("actdiff")
        page.find_element("id", "max-tokens").clear()
        page.find_element("id", "max-tokens").send_keys("10")
        page.find_element("id", "more").click()  # three columns
        first = page.find_elements("css selector", ".column input[type=range]")[0]
        before = json.loads(page.find_elements("css selector", ".readout")[0].get_attribute("data-control"))
        ActionChains(page).click_and_hold(first).move_by_offset(60, 0).release().perform()  # drag the first slider
        moved = json.loads(page.find_elements("css selector", ".readout")[0].get_attribute("data-control"))
        assert before == -1.0 and moved > before
        page.find_element("id", "send").click()
        scalar = answers_on_page(page)
        Select(page.find_element("id", "method")).select_by_value("panacea")  # a triangle per column
        dot = page.find_elements("css selector", "svg.simplex circle")[0]
        ActionChains(page).click_and_hold(dot).move_by_offset(-40, 50).release().perform()
        page.find_element("id", "send").click()
        simplex = answers_on_page(page)
        shot = tmp_path / "playground.png"
        page.save_screenshot(str(shot))
    finally:
        page.quit()
    assert len(scalar) == 3 and len(simplex) == 3 and simplex[0][0]["helpful"] < 1.0
    for model, rows in (("actdiff", scalar), ("panacea", simplex)):  # the page shows exactly what the API answers
        for control, text in rows:
            assert text == chat(url, model, control, max_tokens=10, temperature=0).json()["choices"][0]["message"]["content"]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert image.size[0] >= 1000 and len(colours) > 50  # not a blank page: text, a triangle, borders
    assert max(count for count, _ in colours) < 0.95 * image.size[0] * image.size[1]
    if os.environ.get("STEERLAB_SCREENSHOT"):
        image.save(os.environ["STEERLAB_SCREENSHOT"])

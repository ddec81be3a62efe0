"""The ``llm_judge`` metric: AxBench's judge protocol through an OpenAI-compatible endpoint, here
``steerlab serve`` on a tiny run (whose random answers are no ratings: the test checks the
protocol, the cache and the count of unreadable replies, not the judge's quality)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import httpx
import pytest

import steerlab
from conftest import make_study
from steerlab.cli import main
from steerlab.errors import ConfigError
from steerlab.metrics.base import MetricContext, Sample
from steerlab.metrics.llm_judge import JudgeClient, LLMJudgeConfig, LLMJudgeMetric, ReplyCache, parse_rating, questions
from steerlab.model.generation import Generation
from steerlab.serve.app import create_app, running, service_for
from steerlab.serve.service import ServeOptions
from steerlab.stats import harmonic_mean
from test_notebook import tiny_study

JUDGE_TABLE = """
[metrics.llm_judge]
base_url = "{url}"
model = "base"
concepts = {{ cats = "cats and kittens" }}
max_tokens = 6
retries = 0
"""


def config(**changes) -> LLMJudgeConfig:
    return LLMJudgeConfig(**{"base_url": "http://judge.test/v1", "model": "judge", "concepts": {"cats": "cats"}, "backoff": 0.0, **changes})


def sample(prompt: str = "Tell me about cats.", answer: str = "Cats purr.") -> Sample:
    gen = Generation(prompt, answer, [], [], True)
    return Sample(prompt, 0.0, "-", gen, gen)


def test_a_rating_counts_only_in_axbench_form_and_range():
    assert parse_rating("The fragment mentions cats. Rating: [[2]]") == 2.0
    assert parse_rating("Rating: [[0]] ... on reflection, Rating: [[1.5]]") == 1.5  # the last one counts
    for unreadable in ("Rating: 2", "Rating: [[3]]", "[[1]]", "", "Rating: [[two]]"):
        assert math.isnan(parse_rating(unreadable))


def test_the_harmonic_mean_is_zero_when_any_score_is_and_unknown_when_any_is():
    assert harmonic_mean((2.0, 1.0, 0.5)) == pytest.approx(statistics.harmonic_mean([2.0, 1.0, 0.5]))
    assert harmonic_mean((2.0, 0.0, 2.0)) == 0.0
    assert math.isnan(harmonic_mean((2.0, math.nan, 2.0)))


def judge_replying(rating_of: dict[str, str], calls: list[dict]) -> httpx.MockTransport:
    """A fake endpoint rating by which AxBench question it is asked."""
    def reply(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        prompt = body["messages"][0]["content"]
        kind = next(k for k in rating_of if f"[{k} Start]" in prompt or (k == "Fluency" and "fluency" in prompt))
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": f"Because. Rating: [[{rating_of[kind]}]]"}}]})
    return httpx.MockTransport(reply)


def test_each_answer_gets_concept_instruction_fluency_and_their_harmonic_mean_asked_once(tmp_path):
    calls: list[dict] = []
    cfg = config()
    ctx = MetricContext(None, cfg, tmp_path)  # type: ignore[arg-type]  # score needs no lab
    ctx._memo["client"] = JudgeClient(cfg, transport=judge_replying({"Concept": "2", "Instruction": "1", "Fluency": "0.5"}, calls))
    metric = LLMJudgeMetric()
    [scores] = metric.score([sample()], ctx)
    assert scores == {"llm_judge.cats": 2.0, "llm_judge.instruction": 1.0, "llm_judge.fluency": 0.5,
                      "llm_judge.cats.harmonic": pytest.approx(3 / (1 / 2 + 1 / 1 + 1 / 0.5))}
    assert set(scores) == set(metric.outputs(cfg)) and len(calls) == 3
    assert calls[0]["model"] == "judge" and calls[0]["temperature"] == 0.0 and calls[0]["max_tokens"] == 256
    assert metric.score([sample()], ctx) == [scores] and len(calls) == 3  # answered from the cache
    assert len(json.loads((tmp_path / "cache.json").read_text())["replies"]) == 3


def test_a_failing_request_is_retried_with_backoff_and_a_dead_endpoint_is_one_line_naming_it():
    answers = iter([httpx.Response(503), httpx.Response(429), httpx.Response(200, json={"choices": [{"message": {"content": "Rating: [[1]]"}}]})])
    client = JudgeClient(config(retries=2), transport=httpx.MockTransport(lambda request: next(answers)))
    assert client.ask(client.request("hi")) == "Rating: [[1]]"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    dead = JudgeClient(config(retries=1), transport=httpx.MockTransport(refuse))
    with pytest.raises(ConfigError, match=r"^\[metrics.llm_judge\] base_url http://judge.test/v1: unreachable .* after 2 tries$"):
        dead.ask(dead.request("hi"))
    with pytest.raises(ValueError, match="^base_url http://judge.test/v1: unreachable"):
        dead.check()
    wrong = JudgeClient(config(), transport=httpx.MockTransport(lambda r: httpx.Response(400, json={"error": {"message": "bad"}})))
    with pytest.raises(ConfigError, match="HTTP 400 for model 'judge': bad"):  # a 4xx is not retried
        wrong.ask(wrong.request("hi"))


LONG_LLAMA = """
from steerlab.hookspecs import hookimpl
from steerlab.model.tiny import tiny_llama
from steerlab.model.zoo import ModelSpec


def long_llama():
    model, tokenizer = tiny_llama()
    model.config.max_position_embeddings = 4096  # rotary positions: nothing else changes
    return model, tokenizer


@hookimpl
def steerlab_models(register):
    register(ModelSpec("tiny-llama-long", long_llama, "tiny-llama reading 4096 positions: a judge prompt is ~550 bytes"))
"""


@pytest.fixture(scope="module")
def judge_url(tmp_path_factory: pytest.TempPathFactory):
    """``steerlab serve`` on a tiny run whose ``base`` entry is the judge (a byte-level model that
    reads more than 512 positions: AxBench's questions are longer), and its service."""
    folder = make_study(tmp_path_factory.mktemp("judge"))
    (folder / "long_llama.py").write_text(LONG_LLAMA)
    study = tiny_study(folder, ("base",))
    study.write_text(study.read_text().replace('model = "tiny-llama"', 'model = "tiny-llama-long"\nplugins = ["long_llama.py"]'))
    run = steerlab.run_study(study, {"data.eval_limit": 1}, out=folder / "runs", show_progress=False)
    service = service_for(steerlab.open_run(run.folder), ServeOptions(max_wait_ms=5.0))
    with running(create_app(service)) as url:
        yield f"{url}/v1", service


def judged_study(folder: Path, url: str) -> Path:
    text = tiny_study(folder, ("base",)).read_text().replace('use = ["length"]', 'use = ["length", "llm_judge"]')
    path = folder / "judged.toml"
    path.write_text(text.replace("[methods.base]", JUDGE_TABLE.format(url=url) + "\n[methods.base]"))
    return path


def test_a_study_scored_through_steerlab_serve_asks_each_question_once_and_counts_unreadable_replies(judge_url, tmp_path):
    url, service = judge_url
    folder = make_study(tmp_path)
    run = steerlab.run_study(judged_study(folder, url), {"data.eval_limit": 2}, out=folder / "runs", show_progress=False,
                             **{"generation.max_new_tokens": 4})
    results = json.loads((run.folder / "results.json").read_text())
    records = results["methods"]["base"]["records"]
    assert len(records) == 2 and all(set(r["scores"]) >= {"llm_judge.cats", "llm_judge.cats.harmonic"} for r in records)
    assert all(r["scores"]["llm_judge.fluency"] is None for r in records)  # a tiny random model writes no ratings: NaN, not a guess
    replies = json.loads((run.folder / "metrics" / "llm_judge" / "cache.json").read_text())["replies"]
    assert len(replies) == 6 and len(service.batcher.stats.ended) == 6  # 2 answers x 3 questions, each asked once
    section = results["metrics"]["llm_judge"]
    assert section["summary"]["replies"] == 6 and section["summary"]["unparseable"] == 6
    cfg = LLMJudgeConfig(base_url=url, model="base", concepts={"cats": "cats and kittens"}, max_tokens=6, retries=0)
    ctx = MetricContext(None, cfg, run.folder / "metrics" / "llm_judge")  # type: ignore[arg-type]
    again = LLMJudgeMetric().score([sample(r["prompt"], r["output"]) for r in records], ctx)
    assert len(service.batcher.stats.ended) == 6 and all(math.isnan(s["llm_judge.cats"]) for s in again)  # the cache answered
    client = JudgeClient(cfg)
    body = client.request(questions(cfg, sample(records[0]["prompt"], records[0]["output"]))["llm_judge.fluency"])
    assert replies[ReplyCache.key({"base_url": url, **body})] == client.ask(body)  # the cache holds the server's answer to that request


def test_a_study_whose_judge_is_unreachable_stops_before_its_run_folder_with_exit_2(tmp_path, capsys):
    folder = make_study(tmp_path)
    study = judged_study(folder, "http://127.0.0.1:9/v1")  # the discard port: nothing listens
    assert main(["run", str(study), "--out", str(folder / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"steerlab: error: {study}: [metrics.llm_judge]: base_url http://127.0.0.1:9/v1: unreachable") and err.count("\n") == 1
    assert not (folder / "runs").exists()

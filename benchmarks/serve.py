"""``steerlab serve`` under load: N greedy requests from 1, 8 and 32 concurrent clients, each
request with its own control, served batched (one control per row, ``--max-batch``) against the
same requests served one at a time (``--max-batch 1``), in the same process, levels interleaved.

    python benchmarks/serve.py --run runs/concise-XXXX [--method actdiff] [--clients 1 8 32] [--requests 32] [--tokens 64]
    python benchmarks/serve.py --tiny                  # a tiny random run built in a temp folder: checks the script runs

For each number of clients: requests/s, generated tokens/s, p50 / p95 latency of a request (sent
to its last byte), both ways, the tokens/s ratio, and whether every batched answer equals its
one-at-a-time answer (greedy: it must). Each client sends its share of the N requests one after
another (closed loop), so with 32 clients and N = 32 every request is in flight at once. Request k
asks prompt k mod 8 at control k mod C of the entry's sweep controls (C of them), max_tokens
``--tokens``, temperature 0. Goal (issue 29): 32 clients at >= 4x the one-at-a-time tokens/s on 2
CPU cores with SmolLM2. Results go to benchmarks/RESULTS.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

import steerlab
from steerlab.serve.app import create_app, running, service_for
from steerlab.serve.service import ServeOptions

PROMPTS = ["Why is the sky blue?", "How do bees make honey?", "What is a prime number?", "Why do we dream?",
           "How does a bicycle stay upright?", "What causes the seasons?", "Why is the sea salty?", "How do magnets work?"]

TINY_STUDY = """
[study]
name = "serve-bench"
model = "tiny-llama"

[data]
eval = "eval.jsonl"

[generation]
max_new_tokens = 2
repetition_penalty = 2.0  # a random model's greedy answers otherwise repeat one token

[metrics]
use = ["length"]

[methods.actdiff]
pairs = "pairs.jsonl"
layer = 1
controls = [-1.0, -0.5, 0.0, 0.5, 1.0]
"""


@dataclass
class Level:
    """One way of serving N requests from c clients: what was measured."""

    seconds: float
    latencies: list[float]
    tokens: int
    answers: list[str]

    def row(self) -> dict[str, float]:
        cuts = statistics.quantiles(self.latencies, n=20) if len(self.latencies) > 1 else [self.latencies[0]] * 19
        return {"requests_per_s": len(self.latencies) / self.seconds, "tokens_per_s": self.tokens / self.seconds,
                "p50_s": statistics.median(self.latencies), "p95_s": cuts[18]}


def tiny_run(folder: Path) -> Path:
    """A finished tiny run (actdiff on tiny-llama) in ``folder``, built in seconds."""
    rows = lambda items: "".join(json.dumps(r) + "\n" for r in items)  # noqa: E731
    (folder / "eval.jsonl").write_text(rows([{"text": p} for p in PROMPTS[:2]]))
    (folder / "pairs.jsonl").write_text(rows([{"positive": f"{q} Be brief.", "negative": f"{q} Be detailed."} for q in ("Why?", "How?", "What is rain?", "Who?")]))
    (folder / "bench.toml").write_text(TINY_STUDY)
    return steerlab.run_study(folder / "bench.toml", {"data.eval_limit": 1}, out=folder / "runs", show_progress=False).folder


def requests_for(run: steerlab.Run, method: str, n: int, tokens: int) -> list[dict]:
    entry = run.open_entry(method).entry
    controls = [entry.space.to_json(c) for c in entry.controls]
    return [{"model": method, "messages": [{"role": "user", "content": PROMPTS[k % len(PROMPTS)]}], "max_tokens": tokens,
             "temperature": 0, "steering": {"control": controls[k % len(controls)]}} for k in range(n)]


def serve_all(url: str, bodies: list[dict], clients: int) -> Level:
    """Every request sent by ``clients`` closed-loop clients; latencies and answers in request order."""
    latencies, answers, tokens = [0.0] * len(bodies), [""] * len(bodies), [0] * len(bodies)

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=3600) as http:
            for k in range(c, len(bodies), clients):
                start = time.perf_counter()
                reply = http.post("/v1/chat/completions", json=bodies[k])
                latencies[k] = time.perf_counter() - start
                reply.raise_for_status()
                answers[k] = reply.json()["choices"][0]["message"]["content"]
                tokens[k] = reply.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return Level(time.perf_counter() - start, latencies, sum(tokens), answers)


def measure(run: steerlab.Run, args: argparse.Namespace) -> list[dict]:
    bodies = requests_for(run, args.method, args.requests, args.tokens)
    sizes = {"batched": args.max_batch, "one at a time": 1}
    rows = []
    for clients in args.clients:
        levels = {}
        for name, size in sizes.items():  # alternated per level: drift in load hits both
            service = service_for(run, ServeOptions(max_batch=size, max_wait_ms=args.max_wait_ms, max_queue=10_000))
            with running(create_app(service)) as url:
                serve_all(url, bodies[:1], 1)  # warm-up
                levels[name] = serve_all(url, bodies, clients)
        batched, alone = levels["batched"], levels["one at a time"]
        rows.append({"clients": clients, "batched": batched.row(), "one_at_a_time": alone.row(),
                     "tokens_per_s_ratio": batched.row()["tokens_per_s"] / alone.row()["tokens_per_s"],
                     "same_answers": batched.answers == alone.answers, "tokens": batched.tokens})
        print(table_row(rows[-1]), flush=True)
    return rows


def table_row(row: dict) -> str:
    b, a = row["batched"], row["one_at_a_time"]
    return (f"| {row['clients']} | {b['requests_per_s']:.2f} / {a['requests_per_s']:.2f} | {b['tokens_per_s']:.1f} / {a['tokens_per_s']:.1f} "
            f"| {row['tokens_per_s_ratio']:.2f}x | {b['p50_s']:.2f} / {a['p50_s']:.2f} | {b['p95_s']:.2f} / {a['p95_s']:.2f} "
            f"| {'yes' if row['same_answers'] else 'NO'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a finished run folder (e.g. a concise run on SmolLM2)")
    source.add_argument("--tiny", action="store_true", help="build a tiny random run in a temp folder (checks the script runs)")
    parser.add_argument("--method", default=None, help="the entry to serve (default: the run's first)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=32, help="requests per level, shared among the clients")
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of every request")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run = steerlab.open_run(tiny_run(Path(scratch)) if args.tiny else args.run)
        args.method = args.method or run.methods[0]
        print(f"{' '.join(sys.argv)}\n{run.folder.name}, method {args.method}, {args.requests} requests x {args.tokens} tokens max, "
              f"greedy; torch {torch.__version__}, {torch.get_num_threads()} threads\n")
        print("| clients | requests/s (batched / one at a time) | generated tokens/s | ratio | p50 latency s | p95 latency s | same answers |")
        print("|---|---|---|---|---|---|---|")
        rows = measure(run, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["same_answers"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

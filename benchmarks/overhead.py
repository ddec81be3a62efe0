"""Steering overhead on the real model: steered vs unsteered greedy generation, one process.

Runs are interleaved (unsteered, steered, unsteered, ...) so drift in machine load hits both
alike; each generates exactly N new tokens (min_new_tokens = max_new_tokens) so the ratio
compares equal work. Also times attaching + detaching a steering hook.

    python benchmarks/overhead.py [--model smollm2-135m-instruct] [--tokens 64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steerlab.engine import HookEngine, add_vector
from steerlab.generation import tokenize_prompts
from steerlab.models import load_model
from steerlab.plugin import build_registry

PROMPT = "Why is the sky blue?"


def timed_generate(model, enc, tokens: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        out = model.hf.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                pad_token_id=model.tokenizer.pad_token_id)
    elapsed = time.perf_counter() - start
    assert out.shape[1] - enc["input_ids"].shape[1] == tokens
    return tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--layer", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model, build_registry().models)
    engine = HookEngine(model.hf)
    enc = tokenize_prompts(model, [model.format_prompt(PROMPT)])
    vector = torch.randn(model.d_model) * 0.0  # a zero vector: same tokens, pure hook cost
    site = f"blocks.{min(args.layer, model.n_layers - 1)}.resid_post"
    timed_generate(model, enc, 8)  # warm-up
    base, steered = [], []
    for _ in range(args.repeats):
        base.append(timed_generate(model, enc, args.tokens))
        with engine.edit({site: add_vector(vector)}):
            steered.append(timed_generate(model, enc, args.tokens))
    attach = []
    for _ in range(1000):
        start = time.perf_counter()
        with engine.edit({site: add_vector(vector)}):
            pass
        attach.append(time.perf_counter() - start)
    b, s = statistics.median(base), statistics.median(steered)
    print(f"model {args.model}, {args.tokens} new tokens, batch 1, median of {args.repeats} interleaved runs")
    print(f"unsteered {b:.1f} tok/s | steered {s:.1f} tok/s | overhead {100 * (b / s - 1):+.2f}% (ratio steered/unsteered {s / b:.3f})")
    print(f"attach+detach one hook: median {1e6 * statistics.median(attach):.1f} us")


if __name__ == "__main__":
    main()

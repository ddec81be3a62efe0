"""Panacea's costs on the real model, as ratios against baselines measured in the same process.

1. Training throughput: Panacea SVD-LoRA vs a plain PEFT LoRA of the same rank on the same
   modules (tokens/s of forward + backward + AdamW step), interleaved.     goal >= 0.85x
2. Generation overhead vs the base model: Panacea attached (unmerged), goal <= 15%; merged into
   the weights at a fixed lambda, goal <= 2%.
3. Lambda switch time (a tensor write), goal < 1 ms.

    python benchmarks/panacea.py [--steps 6] [--repeats 5] [--tokens 48]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steerlab.engine import HookEngine
from steerlab.generation import tokenize_prompts
from steerlab.models import load_model
from steerlab.plugin import build_registry
from steerlab.sites import match_sites
from steerlab.training import SFTExample, collate, encode, token_losses
from steerlab_plugins.panacea.config import DEFAULT_TARGETS
from steerlab_plugins.panacea.layers import PanaceaAdapter

from overhead import timed_generate  # benchmarks/ is on sys.path when run as a script

TEXT = SFTExample("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters most. " * 6, "helpful")


def train_step_time(model, params, batch) -> float:
    optimiser = torch.optim.AdamW(params, lr=1e-4)
    start = time.perf_counter()
    loss, mask = token_losses(model, batch)
    ((loss * mask).sum() / mask.sum()).backward()
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model, build_registry().models)
    engine = HookEngine(model.hf)
    sites = match_sites(model.hf, DEFAULT_TARGETS)
    adapter = PanaceaAdapter.for_engine(engine, [s.name for s in sites], args.rank, 3).to(model.device)
    with torch.no_grad():
        for layer in adapter.layers:
            layer.U.normal_(0, 1e-3)  # as after some training: the adapter really computes
    batch = collate([encode(model, TEXT, 160)] * 6, model.tokenizer.pad_token_id, model.device)
    n_tokens = int(batch["attention_mask"].sum())

    from peft import LoraConfig, get_peft_model

    panacea, lora = [], []
    for step in range(args.steps + 1):
        with adapter.attached(engine):
            t_p = train_step_time(model, list(adapter.parameters()), batch)
        peft_model = get_peft_model(model.hf, LoraConfig(r=args.rank + 3, lora_alpha=8, target_modules=[s.module_path for s in sites]))
        t_l = train_step_time(model, [p for p in peft_model.parameters() if p.requires_grad], batch)
        peft_model.unload()
        if step:  # the first of each is a warm-up
            panacea.append(n_tokens / t_p)
            lora.append(n_tokens / t_l)

    enc = tokenize_prompts(model, [model.format_prompt("Why is the sky blue?")])
    base, unmerged, merged = [], [], []
    timed_generate(model, enc, 8)
    for _ in range(args.repeats):
        base.append(timed_generate(model, enc, args.tokens))
        with adapter.attached(engine):
            unmerged.append(timed_generate(model, enc, args.tokens))
        with adapter.merged(engine, [0.2, 0.3, 0.5]):
            merged.append(timed_generate(model, enc, args.tokens))

    switches = []
    for i in range(2000):
        start = time.perf_counter()
        adapter.set_preference([1.0, 0.0, 0.0] if i % 2 else [0.0, 0.5, 0.5])
        switches.append(time.perf_counter() - start)

    med = statistics.median
    print(f"model {args.model}, {len(sites)} adapted Linear modules, Panacea rank k={args.rank} + m=3 (total {args.rank + 3}); "
          f"LoRA rank {args.rank + 3}")
    print(f"training ({n_tokens} tokens/step, median of {args.steps}): Panacea {med(panacea):.0f} tok/s, LoRA {med(lora):.0f} tok/s, "
          f"ratio {med(panacea) / med(lora):.3f}")
    print(f"generation ({args.tokens} tokens, batch 1, median of {args.repeats}): base {med(base):.1f} tok/s, "
          f"unmerged {med(unmerged):.1f} tok/s (overhead {100 * (med(base) / med(unmerged) - 1):+.1f}%), "
          f"merged {med(merged):.1f} tok/s (overhead {100 * (med(base) / med(merged) - 1):+.1f}%)")
    print(f"lambda switch: median {1e6 * med(switches):.1f} us")


if __name__ == "__main__":
    main()

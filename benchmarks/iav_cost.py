"""Decoding cost of IAV against GenARM against the base model, at the same alpha and batch.

IAV adds a small head and one extra unembedding per position in the same forward; GenARM runs
a second full model (its own KV cache) in step with the base. Measured in one process,
interleaved (base, iav, genarm, then rotated) so drift in machine load hits all alike:

* per-token decode latency: (time for N new tokens - time for 1) / (N - 1), i.e. decode steps
  only, the prompt's prefill subtracted; every run generates exactly N tokens (min_new_tokens);
* memory: the extra weights each method keeps resident, and on CUDA the peak memory allocated
  during generation (torch.cuda.max_memory_allocated, KV caches included) above what was
  allocated before it. (On CPU torch has no allocator statistics: peak is not reported.)

The artifacts are untrained stand-ins at the study's sizes (8 heads x 256; LoRA rank 8 on every
attention and MLP projection, merged): cost does not depend on trained values.

    python benchmarks/iav_cost.py [--model smollm2-135m-instruct] [--batch 4] [--tokens 64] [--alpha 1] [--repeats 5]
    python benchmarks/iav_cost.py --model tiny-llama --tokens 8 --repeats 2     # smoke check
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from steerlab.api import Artifact, Lab, LoadedModel, build_registry, load_model, markdown_table, match_sites
from steerlab_plugins.genarm.config import DEFAULT_TARGETS
from steerlab_plugins.genarm.method import GenARMMethod
from steerlab_plugins.iav.head import IAVHead
from steerlab_plugins.iav.method import IAVMethod

PROMPTS = ["Why is the sky blue?", "How do I keep basil alive indoors?", "What is a prime number?", "Tell me about volcanoes."]
MIB = 2**20


def iav_artifact(model: LoadedModel, heads: int, width: int) -> Artifact:
    head = IAVHead(model.d_model, heads, width, torch.Generator().manual_seed(0))
    with torch.no_grad():
        head.outer.normal_(0, 1e-3)  # as after some training
    return Artifact(head.state(), {"heads": heads, "head_width": width}, sites=["logits"])


def genarm_artifact(model: LoadedModel, rank: int) -> Artifact:
    sites = match_sites(model.hf, DEFAULT_TARGETS)
    tensors = {}
    for site in sites:
        tensors[f"{site.name}.A"] = torch.randn(rank, site.module.in_features) * 1e-3
        tensors[f"{site.name}.B"] = torch.randn(site.module.out_features, rank) * 1e-3
    return Artifact(tensors, {"rank": rank}, sites=[s.name for s in sites])


def nbytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def timed(model: LoadedModel, enc: dict[str, torch.Tensor], tokens: int, steer: AbstractContextManager[None]) -> tuple[float, int]:
    """Seconds to generate exactly ``tokens`` new tokens per row, and the peak bytes allocated on
    top of what was allocated before (CUDA; 0 on CPU)."""
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    with steer, torch.no_grad():
        out = model.hf.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                pad_token_id=model.tokenizer.pad_token_id)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if out.shape[1] - enc["input_ids"].shape[1] != tokens:
        raise RuntimeError(f"generated {out.shape[1] - enc['input_ids'].shape[1]} tokens, expected {tokens}")
    return elapsed, (torch.cuda.max_memory_allocated() - before) if cuda else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-width", type=int, default=256)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    if args.tokens < 2 or args.alpha <= 0 or args.batch < 1:
        parser.error("--tokens must be >= 2, --alpha > 0 and --batch >= 1")
    torch.manual_seed(0)
    registry = build_registry()
    model = load_model(args.model, registry.models, args.device)
    lab = Lab.for_model(model, registry, Path(tempfile.mkdtemp()))
    texts = [model.format_prompt(PROMPTS[i % len(PROMPTS)]) for i in range(args.batch)]
    enc = dict(model.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device))
    alphas = torch.full((args.batch,), args.alpha, device=model.device)
    iav, genarm = IAVMethod(), GenARMMethod()
    iav_art, genarm_art = iav_artifact(model, args.heads, args.head_width), genarm_artifact(model, args.rank)
    extra = {"base": 0, "iav": nbytes(iav.head(lab, iav_art)), "genarm": nbytes(genarm.reward_model(lab, genarm_art))}
    steers = {"base": lambda: nullcontext(), "iav": lambda: iav.steer(lab, iav_art, alphas),
              "genarm": lambda: genarm.steer(lab, genarm_art, alphas)}
    for name in steers:  # warm-up
        timed(model, enc, 2, steers[name]())
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in steers}
    order = list(steers)
    for r in range(args.repeats):
        for name in order[r % 3:] + order[: r % 3]:  # rotated, so no method always runs first
            full, peak = timed(model, enc, args.tokens, steers[name]())
            first, _ = timed(model, enc, 1, steers[name]())
            runs[name].append(((full - first) / (args.tokens - 1), peak))
    report(args, model, runs, extra)


def report(args: argparse.Namespace, model: LoadedModel, runs: dict[str, list[tuple[float, int]]], extra: dict[str, int]) -> None:
    base = statistics.median(t for t, _ in runs["base"])
    cuda = model.device.type == "cuda"
    rows = []
    for name, samples in runs.items():
        step = statistics.median(t for t, _ in samples)
        peak = f"{max(p for _, p in samples) / MIB:.1f}" if cuda else "n/a (CPU)"
        rows.append([name, f"{1e3 * step:.2f}", f"{1e3 * step / args.batch:.3f}", f"{step / base:.2f}x", f"{extra[name] / MIB:.1f}", peak])
    print(f"model {args.model} on {model.device} ({next(model.hf.parameters()).dtype}), batch {args.batch}, alpha {args.alpha:g}, "
          f"{args.tokens} new tokens, median of {args.repeats} interleaved runs")
    print(markdown_table(["method", "ms / decode step", "ms / token", "vs base", "extra weights MiB", "peak during generate MiB"], rows))


if __name__ == "__main__":
    main()

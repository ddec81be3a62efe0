"""Decoding and training cost of IAV against GenARM against the unsteered model, interleaved.

IAV adds a small head and one extra unembedding per position in the same forward; GenARM runs
a second full model (its own KV cache) in step with the base. Measured in one process, at the
same alpha, on the same batch of prompts, generating exactly the same number of tokens, and
interleaved (base, iav, genarm, then rotated each repeat) so drift in machine load hits all alike:

* decode tokens/s per method at batch 1 and batch 32: per-step latency = (time for N new tokens
  - time for 1) / (N - 1), the prompt's prefill subtracted; tokens/s = batch / latency. Each
  repeat gives one **paired ratio**, IAV's per-token time over GenARM's in that same repeat: the
  ``ratios`` the iav report reads (the claim: IAV at <= 0.6x GenARM's inference cost);
* memory: the extra weights each method keeps resident, and on CUDA the peak allocated during
  generation above what was allocated before it (KV caches included; not reported on CPU);
* training: seconds per optimisation step of each method's own ``train`` on the same pairs,
  pairs per step and token cap (IAV back-propagates through its head, GenARM through a LoRA'd copy).

Decode uses untrained stand-ins at the study's sizes (8 heads x 256; LoRA rank 8 on every attention
and MLP projection, merged): decode cost does not depend on trained values.

    python benchmarks/iav_cost.py --json RUN/iav_cost.json     # SmolLM2-135M-Instruct, the iav report reads the file
    python benchmarks/iav_cost.py --tiny                       # a tiny random model: seconds, for a test
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable

import torch

from steerlab.api import Artifact, Lab, LoadedModel, build_registry, load_model, markdown_table, match_sites
from steerlab_plugins.genarm.config import DEFAULT_TARGETS, GenARMConfig
from steerlab_plugins.genarm.method import GenARMMethod
from steerlab_plugins.iav.config import IAVConfig
from steerlab_plugins.iav.head import IAVHead
from steerlab_plugins.iav.method import IAVMethod

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "studies" / "data" / "iav_styles" / "pairs.jsonl"
PROMPTS = ["Why is the sky blue?", "How do I keep basil alive indoors?", "What is a prime number?", "Tell me about volcanoes."]
METHODS = ("base", "iav", "genarm")
MIB = 2**20
TINY = {"model": "tiny-llama", "tokens": 6, "repeats": 2, "train_steps": 2, "pairs_per_step": 2, "max_tokens": 96}


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


def sync(model: LoadedModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def timed(model: LoadedModel, enc: dict[str, torch.Tensor], tokens: int, steer: AbstractContextManager[None]) -> tuple[float, int]:
    """Seconds to generate exactly ``tokens`` new tokens per row, and the peak bytes allocated on
    top of what was allocated before (CUDA; 0 on CPU)."""
    cuda = model.device.type == "cuda"
    if cuda:
        sync(model)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    with steer, torch.no_grad():
        out = model.hf.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                                pad_token_id=model.tokenizer.pad_token_id)
    sync(model)
    elapsed = time.perf_counter() - start
    if out.shape[1] - enc["input_ids"].shape[1] != tokens:
        raise RuntimeError(f"generated {out.shape[1] - enc['input_ids'].shape[1]} tokens, expected {tokens}")
    return elapsed, (torch.cuda.max_memory_allocated() - before) if cuda else 0


def decode_at(model: LoadedModel, batch: int, steers: dict[str, Callable[[torch.Tensor], AbstractContextManager[None]]],
              args: argparse.Namespace) -> dict[str, Any]:
    """Every method interleaved at one batch size: per-step seconds per repeat, tokens/s, the
    paired IAV / GenARM ratio per repeat, peak memory."""
    texts = [model.format_prompt(PROMPTS[i % len(PROMPTS)]) for i in range(batch)]
    enc = dict(model.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device))
    alphas = torch.full((batch,), args.alpha, device=model.device)
    for name in METHODS:  # warm-up
        timed(model, enc, 2, steers[name](alphas))
    steps: dict[str, list[float]] = {name: [] for name in METHODS}
    peaks: dict[str, int] = {name: 0 for name in METHODS}
    for r in range(args.repeats):
        for name in METHODS[r % 3:] + METHODS[: r % 3]:  # rotated, so no method always runs first
            full, peak = timed(model, enc, args.tokens, steers[name](alphas))
            first, _ = timed(model, enc, 1, steers[name](alphas))
            steps[name].append(max(full - first, 1e-9) / (args.tokens - 1))
            peaks[name] = max(peaks[name], peak)
    ratios = [i / g for i, g in zip(steps["iav"], steps["genarm"])]
    return {"seconds_per_step": steps, "tokens_per_s": {n: batch / statistics.median(s) for n, s in steps.items()},
            "ratios": ratios, "ratio": statistics.median(ratios),
            "peak_mib": {n: p / MIB for n, p in peaks.items()} if model.device.type == "cuda" else None}


def train_seconds(lab: Lab, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per optimisation step of each method's own training, same pairs, steps, pairs per
    step and token cap, interleaved (iav, genarm, genarm, iav) so both see the same load."""
    common = {"pairs": str(args.pairs), "steps": args.train_steps, "pairs_per_step": args.pairs_per_step, "max_tokens": args.max_tokens}
    runs = {"iav": (IAVMethod(), IAVConfig(**common, heads=args.heads, head_width=args.head_width)),
            "genarm": (GenARMMethod(), GenARMConfig(**common, rank=args.rank))}
    seconds: dict[str, list[float]] = {"iav": [], "genarm": []}
    for name in ("iav", "genarm", "genarm", "iav"):
        method, config = runs[name]
        sync(lab.model)
        start = time.perf_counter()
        method.train(lab, config)
        sync(lab.model)
        seconds[name].append((time.perf_counter() - start) / args.train_steps)
    return {name: min(values) for name, values in seconds.items()}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    registry = build_registry()
    model = load_model(args.model, registry.models, args.device)
    lab = Lab.for_model(model, registry, Path(tempfile.mkdtemp()))
    iav, genarm = IAVMethod(), GenARMMethod()
    iav_art, genarm_art = iav_artifact(model, args.heads, args.head_width), genarm_artifact(model, args.rank)
    extra = {"base": 0.0, "iav": nbytes(iav.head(lab, iav_art)) / MIB, "genarm": nbytes(genarm.reward_model(lab, genarm_art)) / MIB}
    steers = {"base": lambda alphas: nullcontext(), "iav": lambda alphas: iav.steer(lab, iav_art, alphas),
              "genarm": lambda alphas: genarm.steer(lab, genarm_art, alphas)}
    batches = {str(b): decode_at(model, b, steers, args) for b in args.batches}
    return {"model": args.model, "device": str(model.device), "dtype": str(next(model.hf.parameters()).dtype), "tokens": args.tokens,
            "alpha": args.alpha, "repeats": args.repeats, "batches": batches, "extra_weights_mib": extra,
            "train_seconds_per_step": train_seconds(lab, args),
            "train_setup": {"pairs": str(args.pairs), "steps": args.train_steps, "pairs_per_step": args.pairs_per_step, "max_tokens": args.max_tokens}}


def report(result: dict[str, Any]) -> str:
    rows = []
    for batch, at in result["batches"].items():
        base = at["tokens_per_s"]["base"]
        for name in METHODS:
            peak = f"{at['peak_mib'][name]:.1f}" if at["peak_mib"] else "n/a (CPU)"
            ratio = f"{at['ratio']:.2f} [{min(at['ratios']):.2f}, {max(at['ratios']):.2f}]" if name == "iav" else ""
            rows.append([batch, name, f"{at['tokens_per_s'][name]:.1f}", f"{at['tokens_per_s'][name] / base:.2f}x", ratio,
                         f"{result['extra_weights_mib'][name]:.1f}", peak])
    train = result["train_seconds_per_step"]
    head = (f"model {result['model']} on {result['device']} ({result['dtype']}), alpha {result['alpha']:g}, {result['tokens']} new tokens, "
            f"median of {result['repeats']} interleaved repeats")
    table = markdown_table(["batch", "method", "decode tok/s", "vs base", "IAV / GenARM per-token time (range)", "extra weights MiB",
                            "peak during generate MiB"], rows)
    return (f"{head}\n\n{table}\n\nTraining, seconds per step (same pairs, {result['train_setup']['pairs_per_step']} pairs per step): "
            f"IAV {train['iav']:.3f}, GenARM {train['genarm']:.3f} ({train['iav'] / train['genarm']:.2f}x)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-width", type=int, default=256)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="preference pairs for the training timing (the iav study's)")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--pairs-per-step", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and a few tokens: a fast check that it runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here (RUN/iav_cost.json: the iav report reads it)")
    args = parser.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    if args.tokens < 2 or args.alpha <= 0 or min(args.batches) < 1 or args.repeats < 1 or args.train_steps < 1:
        parser.error("--tokens must be >= 2, --alpha > 0, --batches >= 1, --repeats and --train-steps >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    result = measure(args)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()

"""Steered generation, sweeps and training: speed as ratios against a baseline in the same process.

Every measurement interleaves the variants (A, B, C, A, B, C, ...) so drift in machine load hits
all of them alike; generation makes exactly N new tokens per row (``min_new_tokens``) so every
variant does the same work. Figures go to benchmarks/RESULTS.md with the command and the device.

    python benchmarks/speed.py generation [--batch 1 64] [--tokens 32] [--repeats 5]
    python benchmarks/speed.py graphs     [--batch 1 64] [--tokens 32] [--repeats 5]
    python benchmarks/speed.py scoring    [--prompts 12] [--repeats 5]
    python benchmarks/speed.py sweep      [--prompts 12] [--tokens 48]
    python benchmarks/speed.py training   [--steps 5]
    python benchmarks/speed.py chunks     [--steps 5]
    python benchmarks/speed.py switch
    python benchmarks/speed.py update     [--repeats 25]
    python benchmarks/speed.py reads      [--layer 15] [--repeats 5]

``generation``: tokens/s of the unsteered model against actdiff (one residual edit), Panacea
unmerged (210 adapted projections, per-row lambda), Panacea merged at one lambda, and a PEFT LoRA
of the same rank unmerged (what a GPU user compares Panacea with).
``graphs``: the ``static`` backend (static KV cache; on a GPU the decode step replayed from one
CUDA graph per call) against Hugging Face generate, unsteered, actdiff and Panacea unmerged, and
whether its greedy tokens equal generate's.
``scoring``: the likelihood judge's passes over N chat3d judge texts (each under each style's
system prompt), the chat header all rows share run once against every row whole.
``sweep``: the chat3d grid (15 lambdas) over N prompts, packed into per-row batches (today's
sweep) against one generate call per lambda (the sweep before per-row controls).
``training``: Panacea against a PEFT LoRA of equal rank, tokens/s of forward + backward + step, and
the aten operators a step dispatches (each non-view one is a kernel launch on a GPU); Panacea also
with each layer building its own singular values (before they were built once per forward).
``chunks``: Panacea training steps on real chat3d batches (6 rows of 51-160 tokens), the rows in
one padded forward against ``step_chunks``' split (on a CPU: two length-sorted forwards).
``update``: one adapted projection of the model (the first MLP up-projection) called at batch 1,
alone, with Panacea's frozen update attached as the engine attaches it (its forward wrapped on the
instance) and as a forward hook (the form before): microseconds per call.
``reads``: activation reads at one block over the compare study's answer texts (what actdiff and
transfer train on): ``collect`` (texts batched by length, forward stopped at the site) against a
full forward pass per batch in the caller's order with a capture hook (the reader before).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from steerlab.api import (DEFAULT_TARGETS, Artifact, GenerationSettings, Lab, ResidualVector, Simplex, build_registry, group_losses, load_model,
                          match_sites)
from steerlab.model.generation import for_device, tokenize_prompts  # benchmarks time core's own pieces
from steerlab.training import make_optimiser
from steerlab_plugins.panacea.layers import PanaceaAdapter

PROMPTS = ["Why is the sky blue?", "How do bees make honey?", "What is a prime number?", "Why do we dream?",
           "How does a bicycle stay upright?", "What causes the seasons?", "Why is the sea salty?", "How do magnets work?"]
RANK, M = 4, 3  # Panacea k shared + m preference singular values; the LoRA gets rank k + m


def device_name(model) -> str:
    return torch.cuda.get_device_name() if model.device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"


def timed(fn: Callable[[], int]) -> float:
    """tokens/s of one call of ``fn`` (which returns the tokens it made)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def generate_fixed(model, texts: list[str], tokens: int) -> int:
    enc = tokenize_prompts(model, texts)
    enc.pop("position_ids")
    with torch.no_grad():
        model.hf.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
    return tokens * len(texts)


def interleave(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median tokens/s of each variant; each call of a variant returns its own tokens/s."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in variants.items():
            runs[name].append(fn())
    return {name: statistics.median(values) for name, values in runs.items()}


def trained_like(adapter: PanaceaAdapter) -> PanaceaAdapter:
    with torch.no_grad():
        for layer in adapter.layers:
            layer.U.normal_(0, 1e-3)  # as after training: the adapter really computes
    return adapter.requires_grad_(False)


def generation(args: argparse.Namespace, model, lab: Lab) -> None:
    from peft import LoraConfig, get_peft_model

    sites = [s.name for s in match_sites(model.hf, DEFAULT_TARGETS)]
    dtype = next(model.hf.parameters()).dtype
    adapter = trained_like(PanaceaAdapter.for_engine(lab.engine, sites, RANK, M)).to(model.device, dtype)
    site = f"blocks.{model.n_layers // 2}.resid_post"
    vector = Artifact({"v": torch.randn(model.d_model) * 1e-3}, vectors=[ResidualVector(site, "v")])
    for batch in args.batch:
        texts = [model.format_prompt(PROMPTS[i % len(PROMPTS)]) for i in range(batch)]
        prefs = torch.distributions.Dirichlet(torch.ones(M)).sample((batch,))  # a different lambda per row

        def with_context(make: Callable[[], AbstractContextManager]) -> Callable[[], float]:
            def run() -> float:  # entering the context (attach, merge) is not timed: decoding is
                with make():
                    return timed(lambda: generate_fixed(model, texts, args.tokens))
            return run

        def panacea_rows() -> AbstractContextManager:
            adapter.set_preference(prefs)
            return adapter.attached(lab.engine)

        variants = {
            "unsteered": with_context(nullcontext),
            "actdiff": with_context(lambda: lab.engine.add_vectors(vector.vectors, vector.tensors, torch.full((batch,), 0.5))),
            "panacea unmerged": with_context(panacea_rows),
            "panacea, hooks": with_context(lambda: hooked(adapter, lab, prefs)),
            "panacea merged": with_context(lambda: adapter.merged(lab.engine, [0.2, 0.3, 0.5])),
        }
        result = interleave(variants, args.repeats)
        peft = get_peft_model(model.hf, LoraConfig(r=RANK + M, lora_alpha=8, target_modules=[lab.engine.site(s).module_path for s in sites]))
        with torch.no_grad():
            for name, p in peft.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 1e-3)
        lora = interleave({"unsteered": with_context(lambda: peft.disable_adapter()), "peft lora": with_context(nullcontext)}, args.repeats)
        peft.unload()
        base = result["unsteered"]
        print(f"\n{args.model} on {device_name(model)}, batch {batch}, {args.tokens} new tokens per row, median of {args.repeats} interleaved runs")
        for name, value in result.items():
            print(f"  {name:18s} {value:9.1f} tok/s   ratio to unsteered {value / base:.3f}   overhead {100 * (base / value - 1):+.1f}%")
        print(f"  (separate pairing) unsteered {lora['unsteered']:.1f} tok/s, PEFT LoRA r{RANK + M} unmerged {lora['peft lora']:.1f} tok/s "
              f"(overhead {100 * (lora['unsteered'] / lora['peft lora'] - 1):+.1f}%)")


@contextmanager
def hooked(adapter: PanaceaAdapter, lab: Lab, prefs: torch.Tensor) -> Iterator[None]:
    """Panacea's frozen adapter attached as forward hooks, as the engine's update kind was before
    it wrapped forwards (``UpdateChain``): the in-process baseline for that change."""
    adapter.set_preference(prefs)
    modules = [lab.engine.site(site).module for site in adapter.sites]
    handles = [m.register_forward_hook(lambda _m, args, out, f=layer.add_into: f(args[0], out)) for m, layer in zip(modules, adapter.layers)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def update(args: argparse.Namespace, model, lab: Lab) -> None:
    site = next(s.name for s in match_sites(model.hf, DEFAULT_TARGETS) if s.name.endswith("mlp.up_proj"))
    adapter = trained_like(PanaceaAdapter.for_engine(lab.engine, [site], RANK, M)).to(model.device, next(model.hf.parameters()).dtype)
    module = lab.engine.site(site).module
    x = torch.randn(1, 1, module.in_features, device=model.device, dtype=module.weight.dtype)
    calls = 4000

    def per_call() -> float:  # microseconds per call, as a "rate" the interleaver takes the median of
        with torch.no_grad():
            for _ in range(50):
                module(x)
            start = time.perf_counter()
            for _ in range(calls):
                module(x)
            return 1e6 * (time.perf_counter() - start) / calls

    def attached(make: Callable[[], AbstractContextManager]) -> Callable[[], float]:
        def run() -> float:
            with make():
                return per_call()
        return run

    one_row = torch.tensor([[0.2, 0.3, 0.5]])

    def wrapped() -> AbstractContextManager:
        adapter.set_preference(one_row)
        return adapter.attached(lab.engine)

    result = interleave({"plain projection": per_call,
                         "update, instance forward": attached(wrapped),
                         "update, forward hook": attached(lambda: hooked(adapter, lab, one_row))}, args.repeats)
    print(f"\n{args.model} on {device_name(model)}: {site} ({module.in_features} -> {module.out_features}) at batch 1, "
          f"median of {args.repeats} interleaved rounds of {calls} calls")
    for name, value in result.items():
        print(f"  {name:26s} {value:7.1f} us/call   over the plain projection {value - result['plain projection']:+6.1f} us")


def graphs(args: argparse.Namespace, model, lab: Lab) -> None:
    """The ``static`` backend (a CUDA graph per call on a GPU) against Hugging Face generate, unsteered
    and steered, and whether its greedy tokens are generate's (steering replayed at every token)."""
    from steerlab.model.generation import generate_batch
    from steerlab.model.static_decode import StaticDecode, decode

    sites = [s.name for s in match_sites(model.hf, DEFAULT_TARGETS)]
    dtype = next(model.hf.parameters()).dtype
    adapter = trained_like(PanaceaAdapter.for_engine(lab.engine, sites, RANK, M)).to(model.device, dtype)
    site = f"blocks.{model.n_layers // 2}.resid_post"
    vector = Artifact({"v": torch.randn(model.d_model) * 1e-3}, vectors=[ResidualVector(site, "v")])
    backend = StaticDecode(graphs=True)
    on_gpu = model.device.type == "cuda"
    for batch in args.batch:
        texts = [model.format_prompt(PROMPTS[i % len(PROMPTS)]) for i in range(batch)]
        prefs = torch.distributions.Dirichlet(torch.ones(M)).sample((batch,))

        def panacea_rows() -> AbstractContextManager:
            adapter.set_preference(prefs)
            return adapter.attached(lab.engine)

        steering = {"unsteered": nullcontext, "panacea unmerged": panacea_rows,
                    "actdiff": lambda: lab.engine.add_vectors(vector.vectors, vector.tensors, torch.full((batch,), 0.5))}

        def static_fixed() -> int:
            decode(model, tokenize_prompts(model, texts), args.tokens, on_gpu, backend.note_fallback, stops=set())
            return args.tokens * batch

        variants = {}
        for name, make in steering.items():
            def run(make=make, fn=None) -> float:
                with make():
                    return timed(fn)
            variants[f"{name}, generate"] = lambda run=run: run(fn=lambda: generate_fixed(model, texts, args.tokens))
            variants[f"{name}, static"] = lambda run=run: run(fn=static_fixed)
        result = interleave(variants, args.repeats)
        base = result["unsteered, generate"]
        print(f"\n{args.model} on {device_name(model)}, batch {batch}, {args.tokens} new tokens per row, median of {args.repeats} "
              f"interleaved runs; static backend {'with' if on_gpu else 'without'} CUDA graphs")
        for name, value in result.items():
            print(f"  {name:28s} {value:9.1f} tok/s   ratio to unsteered generate {value / base:.3f}")
        for name in steering:
            print(f"  {name}: static / generate {result[f'{name}, static'] / result[f'{name}, generate']:.2f}x; "
                  f"steered / unsteered, static {result[f'{name}, static'] / result['unsteered, static']:.3f}")
        settings = GenerationSettings(max_new_tokens=args.tokens)
        for name, make in steering.items():  # the same greedy tokens? (bf16 kernels may break near-ties differently)
            with make():
                ours = [g.output_ids for g in backend.generate(model, texts, settings)]
                theirs = [g.output_ids for g in generate_batch(model, texts, settings)]
            same = sum(a == b for a, b in zip(ours, theirs))
            first = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))) for a, b in zip(ours, theirs) if a != b]
            print(f"  tokens, {name}: {same}/{batch} rows identical to generate's" + (f"; others diverge at token {sorted(first)}" if first else ""))
    print(f"  fallbacks: {backend.fallbacks or 'none'}")


def scoring(args: argparse.Namespace, model, lab: Lab) -> None:
    """The likelihood judge's passes (each answer under each chat3d style's system prompt) with the
    shared chat header run once (``SharedPrefix``) against every row whole."""
    import json

    from steerlab.metrics.likelihood import read_systems
    from steerlab.model.scoring import SharedPrefix, batched_sequence_logprobs

    rows = [json.loads(line) for line in Path("studies/data/chat3d/judge.jsonl").read_text().splitlines()][: args.prompts]
    tok = model.tokenizer
    targets = [tok(r["text"], add_special_tokens=False)["input_ids"] for r in rows]
    calls = [list(zip([tok(model.format_prompt(r["prompt"], system), add_special_tokens=False)["input_ids"] for r in rows], targets))
             for system in read_systems(Path("studies/data/chat3d/styles.json")).values()]
    tokens = sum(len(c) + len(t) for pairs in calls for c, t in pairs)
    shared = [SharedPrefix.of(model, [c for c, _ in pairs]).length for pairs in calls]

    def run(share: bool) -> Callable[[], float]:
        return lambda: timed(lambda: sum(len(batched_sequence_logprobs(model, pairs, 16, share_prefix=share)[0]) for pairs in calls) and tokens)

    result = interleave({"every row whole": run(False), "shared prefix once": run(True)}, args.repeats)
    same = [batched_sequence_logprobs(model, pairs, 16, share_prefix=s)[0] for s in (False, True) for pairs in calls[:1]]
    print(f"\n{args.model} on {device_name(model)}: likelihood judge, {len(rows)} answers x {len(calls)} styles, {tokens} tokens, "
          f"shared prefixes {shared} tokens, median of {args.repeats} interleaved runs")
    for name, value in result.items():
        print(f"  {name:20s} {value:8.1f} tok/s   ratio {value / result['every row whole']:.3f}")
    print(f"  largest log-probability difference: {max(abs(a - b) for a, b in zip(*same)):.2e}")


def sweep(args: argparse.Namespace, model, lab: Lab) -> None:
    """The chat3d grid over N prompts: per-row packed batches against one call per lambda."""
    sites = [s.name for s in match_sites(model.hf, DEFAULT_TARGETS)]
    dtype = next(model.hf.parameters()).dtype
    adapter = trained_like(PanaceaAdapter.for_engine(lab.engine, sites, RANK, M)).to(model.device, dtype)
    grid = Simplex(["helpful", "humorous", "philosophical"], 0.25).default_grid()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.prompts)]
    rows = [(c, p) for c in grid for p in prompts]

    class Panacea:  # the two members Lab.answer needs
        def steer(self, lab, artifact, controls):
            adapter.set_preference(controls)
            return adapter.attached(lab.engine)

        def system_prompts(self, artifact, controls):
            return [None] * len(controls)

    method, space, artifact = Panacea(), Simplex(["helpful", "humorous", "philosophical"]), Artifact({})
    packed = GenerationSettings(max_new_tokens=args.tokens, batch_size=args.batch_size)
    per_control = GenerationSettings(max_new_tokens=args.tokens, batch_size=len(prompts))

    def run_packed() -> float:
        return timed(lambda: sum(len(g.output_ids) for g in lab.answer(method, artifact, space, [c for c, _ in rows], [p for _, p in rows], packed, desc=None)))

    def run_per_control() -> float:
        return timed(lambda: sum(len(g.output_ids) for c in grid for g in lab.answer(method, artifact, space, [c] * len(prompts), prompts, per_control, desc=None)))

    result = interleave({"one call per lambda": run_per_control, "per-row packed": run_packed}, args.repeats)
    before, after = result["one call per lambda"], result["per-row packed"]
    print(f"\n{args.model} on {device_name(model)}: chat3d grid ({len(grid)} lambdas) x {len(prompts)} prompts, up to {args.tokens} tokens, "
          f"median of {args.repeats}")
    print(f"  one generate call per lambda ({len(prompts)} rows each): {before:.1f} generated tok/s")
    print(f"  per-row lambdas packed into batches of {for_device(packed, model.device).batch_size}: {after:.1f} generated tok/s   speed-up {after / before:.2f}x")


def training(args: argparse.Namespace, model, lab: Lab) -> None:
    from peft import LoraConfig, get_peft_model

    sites = match_sites(model.hf, DEFAULT_TARGETS)
    adapter = PanaceaAdapter.for_engine(lab.engine, [s.name for s in sites], RANK, M).to(model.device)
    tok = model.tokenizer
    answer = tok("Sunlight scatters off air molecules, and blue light scatters most. " * 6 + tok.eos_token, add_special_tokens=False)["input_ids"]
    pairs = [(tok(model.format_prompt(p), add_special_tokens=False)["input_ids"], answer[:120]) for p in PROMPTS[:6]]
    n_tokens = sum(len(c) + len(t) for c, t in pairs)
    index = torch.tensor([0, 0, 1, 1, 2, 2], device=model.device)

    def step(params: list[torch.nn.Parameter]) -> Callable[[], int]:
        optimiser = make_optimiser(params, lr=1e-4)  # what training uses (fused on a GPU)

        def run() -> int:
            group_losses(model, pairs, index, 3).sum().backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            return n_tokens
        return run

    panacea_step = step(list(adapter.parameters()))
    per_layer_hooks = lambda: lab.engine.update_outputs({s: l.add_into for s, l in zip(adapter.sites, adapter.layers)})  # noqa: E731
    peft = get_peft_model(model.hf, LoraConfig(r=RANK + M, lora_alpha=8, target_modules=[s.module_path for s in sites]))
    lora_step = step([p for p in peft.parameters() if p.requires_grad])
    variants = {"Panacea": lambda: adapter.attached(lab.engine), "Panacea, per-layer singular values": per_layer_hooks, "LoRA": None}
    times: dict[str, list[float]] = {name: [] for name in variants}
    ops: dict[str, tuple[int, int]] = {}
    for i in range(args.steps + 1):
        for name, attach in variants.items():
            if attach is None:
                value = timed(lora_step)
                if i == 0:
                    ops[name] = count_ops(lora_step)
            else:
                with peft.disable_adapter(), attach():
                    value = timed(panacea_step)
                    if i == 0:
                        ops[name] = count_ops(panacea_step)
            if i:  # the first round warms up
                times[name].append(value)
    peft.unload()
    lora = statistics.median(times["LoRA"])
    print(f"\n{args.model} on {device_name(model)}: training, {n_tokens} tokens/step, median of {args.steps} interleaved steps")
    print(f"  (Panacea k={RANK} + m={M}; PEFT LoRA r={RANK + M}; ops: aten operators per step, forward + backward + AdamW,"
          " all / not views: on a GPU each non-view operator is at least one kernel launch)")
    for name in variants:
        value = statistics.median(times[name])
        print(f"  {name:38s} {value:8.0f} tok/s   ratio to LoRA {value / lora:.3f}   ops {ops[name][0]} / {ops[name][1]}")


def chunks(args: argparse.Namespace, model, lab: Lab) -> None:
    from steerlab.api import GroupSampler, read_sft
    from steerlab.training import step_chunks

    dims = ["helpful", "humorous", "philosophical"]
    data = Path(__file__).resolve().parents[1] / "studies" / "data" / "chat3d" / "train.jsonl"
    sampler = GroupSampler(model, read_sft(data, dims), 160, 0)
    batches = [sampler.batch(2) for _ in range(args.steps)]
    adapter = PanaceaAdapter.for_engine(lab.engine, [s.name for s in match_sites(model.hf, DEFAULT_TARGETS)], 1, M, pref_rank=4).to(model.device)
    adapter.set_preference(torch.full((M,), 1.0 / M, device=model.device))

    def run(losses) -> Callable[[], float]:
        def go() -> float:
            start, tokens = time.perf_counter(), 0
            for pairs, index in batches:
                losses(pairs, index).sum().backward()
                adapter.zero_grad(set_to_none=True)
                tokens += sum(len(c) + len(t) for c, t in pairs)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            return tokens / (time.perf_counter() - start)
        return go

    plan = [len(step_chunks([len(c) + len(t) for c, t in pairs], model.device)) for pairs, _ in batches]
    with adapter.attached(lab.engine):
        result = interleave({"one padded forward": run(lambda p, i: group_losses(model, p, i, M, split=False)),
                             "step_chunks": run(lambda p, i: group_losses(model, p, i, M))}, args.repeats)
    before, after = result["one padded forward"], result["step_chunks"]
    print(f"\n{args.model} on {device_name(model)}: {args.steps} Panacea steps on chat3d batches (forwards per step: {sorted(set(plan))}), "
          f"median of {args.repeats}")
    print(f"  one padded forward: {before:.1f} tok/s;  step_chunks: {after:.1f} tok/s   speed-up {after / before:.2f}x")


def count_ops(run: Callable[[], int]) -> tuple[int, int]:
    """aten operators one call of ``run`` dispatches: (all, not views)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.all, self.compute = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.all += 1
            self.compute += not getattr(func, "is_view", False)
            return func(*args, **(kwargs or {}))

    with Counter() as counter:
        run()
    return counter.all, counter.compute


def switch(args: argparse.Namespace, model, lab: Lab) -> None:
    sites = [s.name for s in match_sites(model.hf, DEFAULT_TARGETS)]
    adapter = trained_like(PanaceaAdapter.for_engine(lab.engine, sites, RANK, M)).to(model.device)
    corners = [torch.tensor(p, device=model.device) for p in ([0.0, 0.5, 0.5], [1.0, 0.0, 0.0])]  # on the device: no copy timed
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    times = []
    for i in range(2000):
        sync()
        start = time.perf_counter()
        adapter.set_preference(corners[i % 2])
        sync()  # the batched recompute is queued on a GPU: count it
        times.append(time.perf_counter() - start)
    print(f"\nlambda switch (write + precompute sigma for {len(sites)} modules): median {1e6 * statistics.median(times):.1f} us")


def reads(args: argparse.Namespace, model, lab: Lab) -> None:
    from steerlab.api import collect, read_jsonl

    pairs = read_jsonl(Path(__file__).resolve().parents[1] / "studies/data/compare/pairs_helpful.jsonl", ("positive", "negative"))
    texts = [model.format_prompt(p[side]) for p in pairs[:64] for side in ("positive", "negative")]
    site, batch = f"blocks.{args.layer}.resid_post", 8
    n_tokens = sum(len(ids) for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"])

    def full_pass_in_order() -> int:
        for start in range(0, len(texts), batch):
            with torch.no_grad(), lab.engine.edit({site: lambda a: None}):
                model.hf(**tokenize_prompts(model, texts[start:start + batch]))
        return n_tokens

    def sorted_and_stopped() -> int:
        collect(model, texts, [site], "mean", batch)
        return n_tokens

    result = interleave({"full pass, given order": lambda: timed(full_pass_in_order), "collect": lambda: timed(sorted_and_stopped)}, args.repeats)
    before, after = result["full pass, given order"], result["collect"]
    print(f"\n{args.model} on {device_name(model)}: reads at {site}, {len(texts)} answer texts ({n_tokens} tokens), batch {batch}, "
          f"median of {args.repeats}")
    print(f"  full forward, caller's order: {before:.0f} tok/s | collect (length-sorted, stopped at the site): {after:.0f} tok/s | "
          f"speed-up {after / before:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["generation", "graphs", "scoring", "sweep", "training", "chunks", "switch", "update", "reads"])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--batch-size", type=int, default=None, help="sweep: rows per packed batch (default: the device's, as studies use)")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--layer", type=int, default=15, help="reads: the block read")
    args = parser.parse_args()
    torch.manual_seed(0)
    registry = build_registry()
    model = load_model(args.model, registry.models, args.device)
    lab = Lab.for_model(model, registry, Path(tempfile.mkdtemp()))
    {"generation": generation, "chunks": chunks, "graphs": graphs, "scoring": scoring, "sweep": sweep, "training": training, "switch": switch, "update": update, "reads": reads}[args.what](args, model, lab)


if __name__ == "__main__":
    main()

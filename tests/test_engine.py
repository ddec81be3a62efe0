"""The hook engine: scoping, composition, padding and KV-cache behaviour."""

import pytest
import torch

from steerlab.model.engine import HookEngine, add_vector
from steerlab.model.generation import GenerationSettings, generate, tokenize_prompts
from tests.conftest import nnsight_trace


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def logits(model, text="Hello there, world"):
    enc = tokenize_prompts(model, [text])
    with torch.no_grad():
        return model.hf(**enc).logits


def test_hooks_are_removed_on_exit(tiny_llama):
    engine, before = HookEngine(tiny_llama.hf), hook_count(tiny_llama.hf)
    with engine.edit({"blocks.1.resid_post": add_vector(torch.ones(64)), "blocks.2.resid_pre": add_vector(torch.ones(64))}):
        assert hook_count(tiny_llama.hf) == before + 2 and engine.n_attached == 2
    assert hook_count(tiny_llama.hf) == before and engine.n_attached == 0


def test_hooks_are_removed_after_an_exception_and_foreign_hooks_survive(tiny_llama):
    foreign = tiny_llama.hf.model.layers[1].register_forward_hook(lambda *a: None)
    engine, before = HookEngine(tiny_llama.hf), hook_count(tiny_llama.hf)
    with pytest.raises(RuntimeError, match="boom"):
        with engine.edit({"blocks.1.resid_post": add_vector(torch.ones(64))}):
            raise RuntimeError("boom")
    assert hook_count(tiny_llama.hf) == before
    assert foreign.id in tiny_llama.hf.model.layers[1]._forward_hooks
    foreign.remove()


def test_an_update_wraps_the_module_forward_and_exits_leave_the_module_as_it_was(tiny_llama):
    from steerlab.model.engine import has_hooks

    q = "blocks.1.attn.q_proj"
    engine, module = HookEngine(tiny_llama.hf), tiny_llama.hf.model.layers[1].self_attn.q_proj
    base = logits(tiny_llama)
    seen = []
    first = lambda x, out: (seen.append("first"), out.add_(1.0))[1]  # noqa: E731
    second = lambda x, out: (seen.append("second"), out * 2.0)[1]  # noqa: E731
    with pytest.raises(RuntimeError, match="boom"):
        with engine.update_outputs({q: first}), engine.update_outputs({q: second}):
            assert hook_count(tiny_llama.hf) == 0 and engine.n_attached == 2  # no hook: the forward is wrapped
            assert has_hooks(tiny_llama.hf)  # but a compiled step or a shared prefix must still see it
            x = torch.randn(2, 3, module.in_features)
            assert torch.equal(module(x), (torch.nn.functional.linear(x, module.weight) + 1.0) * 2.0)  # attachment order
            assert seen == ["first", "second"]
            assert not torch.equal(logits(tiny_llama), base)
            raise RuntimeError("boom")
    assert "forward" not in vars(module) and engine.n_attached == 0 and not has_hooks(tiny_llama.hf)
    assert torch.equal(logits(tiny_llama), base)


def test_updates_removed_out_of_order_keep_the_others_and_a_foreign_wrapper(tiny_llama):
    q = "blocks.0.attn.q_proj"
    engine, module = HookEngine(tiny_llama.hf), tiny_llama.hf.model.layers[0].self_attn.q_proj
    foreign = module.forward
    module.forward = lambda x: foreign(x) - 3.0  # someone else's instance wrapper (accelerate does this)
    x = torch.randn(1, 2, module.in_features)
    plain = module(x)
    add_one = lambda _x, out: out + 1.0  # noqa: E731
    outer, inner = engine.update_outputs({q: add_one}), engine.update_outputs({q: add_one})  # one function, twice
    outer.__enter__()
    inner.__enter__()
    assert torch.allclose(module(x), plain + 2.0)
    outer.__exit__(None, None, None)  # not the last one attached
    assert torch.allclose(module(x), plain + 1.0)
    inner.__exit__(None, None, None)
    assert torch.equal(module(x), plain) and engine.n_attached == 0
    del module.forward


def test_a_model_nnsight_has_traced_counts_as_unhooked_until_an_update_is_attached(tiny_llama):
    """nnsight leaves a pass-through forward on every module it traced: that must not switch off
    the shared scoring prefix or a compiled decode for the rest of the process."""
    from steerlab.model.engine import has_hooks

    nnsight_trace(tiny_llama)
    module = tiny_llama.hf.model.layers[1].self_attn.q_proj
    traced = vars(module).get("forward")
    assert traced is not None and not has_hooks(tiny_llama.hf)
    engine = HookEngine(tiny_llama.hf)
    with engine.update_outputs({"blocks.1.attn.q_proj": lambda _x, out: out}):
        assert has_hooks(tiny_llama.hf)
    assert vars(module)["forward"] is traced and not has_hooks(tiny_llama.hf)


def test_a_bad_site_name_attaches_nothing(tiny_llama):
    engine, before = HookEngine(tiny_llama.hf), hook_count(tiny_llama.hf)
    with pytest.raises(Exception, match="unknown site"):
        with engine.edit({"blocks.1.resid_post": add_vector(torch.ones(64)), "blocks.1.nope": add_vector(torch.ones(64))}):
            pass
    assert hook_count(tiny_llama.hf) == before


def test_zero_vector_reproduces_unsteered_logits_exactly(tiny_model):
    engine, base = HookEngine(tiny_model.hf), logits(tiny_model)
    with engine.edit({"blocks.2.resid_post": add_vector(torch.zeros(64))}):
        assert torch.equal(logits(tiny_model), base)


def test_two_interventions_compose_and_equal_their_sum(tiny_llama):
    engine, v = HookEngine(tiny_llama.hf), torch.randn(64)
    with engine.edit({"blocks.1.resid_post": add_vector(v)}), engine.edit({"blocks.1.resid_post": add_vector(2 * v)}):
        composed = logits(tiny_llama)
    with engine.edit({"blocks.1.resid_post": add_vector(3 * v)}):
        single = logits(tiny_llama)
    assert not torch.allclose(composed, logits(tiny_llama))
    torch.testing.assert_close(composed, single, atol=1e-5, rtol=1e-5)


def test_left_padded_batch_equals_unbatched_under_steering(tiny_model):
    engine = HookEngine(tiny_model.hf)
    texts = ["A much longer prompt than the other one", "Short"]
    with engine.edit({"blocks.1.resid_post": add_vector(torch.randn(64))}):
        enc = tokenize_prompts(tiny_model, texts)
        with torch.no_grad():
            batched = tiny_model.hf(**enc).logits[:, -1]
        single = torch.cat([logits(tiny_model, t)[:, -1] for t in texts])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_steering_acts_on_every_generated_token_under_the_kv_cache(tiny_llama):
    """With the cache, decode steps see one new position; steering must still apply there.
    Greedy tokens with the cache must equal greedy tokens recomputed without it."""
    engine, v = HookEngine(tiny_llama.hf), 3 * torch.randn(64)
    settings = GenerationSettings(max_new_tokens=12, batch_size=2)
    prompt = [tiny_llama.format_prompt("Tell me a story")]
    base = generate(tiny_llama, prompt, settings)[0].output_ids
    seen_lengths = []

    def recording(act):
        seen_lengths.append(act.shape[1])
        return act + v

    with engine.edit({"blocks.1.resid_post": recording}):
        cached = generate(tiny_llama, prompt, settings)[0].output_ids
        ids = torch.tensor([generate(tiny_llama, prompt, settings)[0].prompt_ids])
        for _ in range(len(cached)):  # no cache: the whole sequence every step
            with torch.no_grad():
                nxt = tiny_llama.hf(input_ids=ids, use_cache=False).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert cached != base
    assert 1 in seen_lengths  # decode steps were steered
    assert ids[0, -len(cached):].tolist() == cached


def test_a_static_kv_cache_gives_the_same_steered_greedy_tokens_as_the_dynamic_one(tiny_llama):
    """The static cache (what a compiled GPU decode needs) keeps the hooks: same steered tokens."""
    engine, v = HookEngine(tiny_llama.hf), 3 * torch.randn(64)
    prompts = [tiny_llama.format_prompt(p) for p in ("Tell me a story", "Hi")]
    with engine.edit({"blocks.1.resid_post": add_vector(v)}):
        dynamic = generate(tiny_llama, prompts, GenerationSettings(max_new_tokens=10, batch_size=2))
        static = generate(tiny_llama, prompts, GenerationSettings(max_new_tokens=10, batch_size=2, cache="static"))
    unsteered = generate(tiny_llama, prompts, GenerationSettings(max_new_tokens=10, batch_size=2, cache="static"))
    assert [g.output_ids for g in static] == [g.output_ids for g in dynamic]
    assert [g.output_ids for g in static] != [g.output_ids for g in unsteered]


def test_collect_and_transfer_reads_match_one_text_at_a_time_full_passes(tiny_model):
    """The one reader sorts texts by length, batches them and stops the forward at the site; rows
    must still come back in the caller's order, equal to a full forward pass per text, whether
    read by ``collect`` or by the transfer plugin's pairing (which formats the texts itself)."""
    from steerlab.model.activations import collect
    from steerlab_plugins.transfer import pairing

    raw = ["a b c d e f g h", "hi", "one two three", "x y", "long " * 9]
    texts = [tiny_model.format_prompt(t) for t in raw]
    site = "blocks.1.resid_post"
    engine, seen = HookEngine(tiny_model.hf), []
    for text in texts:  # reference: full passes, one text each, no padding
        with torch.no_grad(), engine.edit({site: lambda a: seen.append(a[0, -1].float().clone())}):
            tiny_model.hf(**tokenize_prompts(tiny_model, [text]))
    expected = torch.stack(seen)
    got = collect(tiny_model, texts, [site], "last", batch_size=2).vectors[site]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    last = pairing.read(tiny_model, raw, site, "last", batch_size=2).states
    torch.testing.assert_close(last, expected, atol=1e-4, rtol=1e-4)
    assert engine.n_attached == 0 and hook_count(tiny_model.hf) == 0


def test_reading_activations_leaves_the_model_as_it_found_it_and_stops_at_the_last_site(tiny_llama):
    """No hook and no instance ``forward`` are left behind, and nothing after the deepest site
    runs (the final norm of a 4-block model never sees a read of blocks 0 and 1)."""
    from steerlab.model.activations import collect

    ran = []
    norm = tiny_llama.hf.model.norm
    handle = norm.register_forward_hook(lambda *_: ran.append("norm"))
    try:
        acts = collect(tiny_llama, ["Hello there", "A b c"], ["blocks.1.resid_post", "blocks.0.resid_pre"], "mean")
    finally:
        handle.remove()
    assert ran == [] and hook_count(tiny_llama.hf) == 0
    assert not any("forward" in vars(m) for m in tiny_llama.hf.modules())
    assert {site: tuple(v.shape) for site, v in acts.vectors.items()} == {"blocks.1.resid_post": (2, 64), "blocks.0.resid_pre": (2, 64)}


def test_add_vector_places_the_vector_once_per_device_and_dtype():
    """The hook runs at every decode step: the per-row vector is cast (and, on a GPU, copied to
    the device) on its first call only; a later call in another dtype gets its own copy."""
    vector, coefficients = torch.arange(4.0), torch.tensor([1.0, -2.0])
    edit = add_vector(vector, coefficients)
    act32 = torch.zeros(2, 3, 4)
    first = edit(act32)
    assert torch.equal(first[1, 2], -2 * vector) and torch.equal(first[0, 0], vector)
    assert torch.equal(edit(act32), first)  # cached: same numbers
    half = edit(torch.zeros(2, 3, 4, dtype=torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.equal(half.float(), first)
    cached = edit.__closure__  # the cache lives in the closure, keyed by (device, dtype)
    placed = next(c.cell_contents for c in cached if isinstance(c.cell_contents, dict))
    assert set(placed) == {(torch.device("cpu"), torch.float32), (torch.device("cpu"), torch.bfloat16)}


def test_static_cache_steers_every_decode_step(tiny_llama, monkeypatch):
    """With a static cache, transformers compiles the decode step (on CUDA by default; forced here
    on the CPU with dynamo's eager backend) and torch.compile does not guard on module hooks: a
    hook attached after the first compiled call ran at the prefill only, so the answer was steered
    at its first token and not after. A steered call must run its hook at every forward, as the
    dynamic-cache path does."""
    import torch._dynamo
    from transformers.generation.configuration_utils import CompileConfig

    config = CompileConfig(backend="eager", fullgraph=False)
    config._compile_all_devices = True  # what makes transformers compile on a CPU
    monkeypatch.setattr(tiny_llama.hf.generation_config, "compile_config", config, raising=False)
    static, dynamic = GenerationSettings(max_new_tokens=6, cache="static"), GenerationSettings(max_new_tokens=6)
    engine = HookEngine(tiny_llama.hf)

    def steered(settings: GenerationSettings) -> tuple[list[int], list[int]]:
        calls: list[int] = []

        def counting(activation: torch.Tensor) -> torch.Tensor:
            calls.append(activation.shape[1])  # positions in this forward: the prompt, then 1 per step
            return activation + 2.0

        with engine.edit({"blocks.1.resid_post": counting}):
            answer = generate(tiny_llama, ["Hello there"], settings)[0]
        return calls, answer.output_ids

    try:
        generate(tiny_llama, ["Hello there"], static)  # unsteered: compiles the decode step, hook-free
        assert hasattr(tiny_llama.hf, "_compiled_call")  # the compiled path was really taken
        static_calls, static_ids = steered(static)
    finally:
        if hasattr(tiny_llama.hf, "_compiled_call"):
            del tiny_llama.hf._compiled_call
        torch._dynamo.reset()
    dynamic_calls, dynamic_ids = steered(dynamic)
    assert len(dynamic_calls) > 1 and dynamic_calls[1:] == [1] * (len(dynamic_calls) - 1)
    assert static_calls == dynamic_calls  # was [prompt length] alone: decode steps unsteered
    assert static_ids == dynamic_ids


def test_tokens_by_row_splits_flattened_tokens_batch_major_and_leaves_batched_input_alone():
    from steerlab.model.engine import tokens_by_row

    batched = torch.arange(24.0).reshape(2, 3, 4)
    assert tokens_by_row(batched, 2) is batched
    flat = batched.reshape(6, 4)  # how OPT hands its fc1 the tokens: (batch * pos, features)
    assert torch.equal(tokens_by_row(flat, 2), batched) and tokens_by_row(flat, 1).shape == (1, 6, 4)
    with pytest.raises(ValueError, match="do not split into 4 batch rows"):
        tokens_by_row(flat, 4)

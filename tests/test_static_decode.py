"""The ``static`` backend: the same greedy tokens as Hugging Face generate, steering at every token.

On a CPU the loop runs eagerly; on a GPU each call's decode step is replayed from one CUDA graph
(checked on the lent GPU by ``benchmarks/speed.py graphs``): the loop, its masks, its buffers and
its fallbacks are what these tests pin down.
"""

import torch

from steerlab.model.engine import HookEngine, add_vector
from steerlab.model.generation import GenerationSettings, generate_batch
from steerlab.model.sites import match_sites
from steerlab.model.static_decode import StaticDecode, unsupported
from steerlab_plugins.panacea.layers import PanaceaAdapter

PROMPTS = ["Tell me a story about the sea", "Hi", "Why is the sky blue, and why are sunsets red?", "Name a colour"]


def texts(model):
    return [model.format_prompt(p) for p in PROMPTS]  # different lengths: left padding in one batch


def ids(gens):
    return [g.output_ids for g in gens]


def test_static_decode_gives_hf_generates_greedy_tokens_with_per_row_steering(tiny_llama):
    """Per-row vector edits and a per-row Panacea lambda (the engine's edit and update kinds),
    left-padded rows: token for token what Hugging Face generate gives, and steered at every token."""
    engine = HookEngine(tiny_llama.hf)
    settings = GenerationSettings(max_new_tokens=12)
    sites = [s.name for s in match_sites(tiny_llama.hf, ["blocks.*.attn.*_proj", "blocks.*.mlp.*_proj"])]
    adapter = PanaceaAdapter.for_engine(engine, sites, rank=2, n_prefs=3, seed=0)
    with torch.no_grad():
        for layer in adapter.layers:
            layer.U.normal_(0, 0.2)
    adapter.requires_grad_(False)
    adapter.set_preference(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.3, 0.3, 0.4]]))
    seen: list[int] = []
    vector = add_vector(3 * torch.randn(64), torch.tensor([1.0, -1.0, 0.5, 0.0]))

    def recording(activation):
        seen.append(activation.shape[1])
        return vector(activation)

    backend = StaticDecode(graphs=False)
    with engine.edit({"blocks.1.resid_post": recording}), adapter.attached(engine):
        hf = generate_batch(tiny_llama, texts(tiny_llama), settings)
        seen.clear()
        static = backend.generate(tiny_llama, texts(tiny_llama), settings)
    unsteered = backend.generate(tiny_llama, texts(tiny_llama), settings)
    assert backend.fallbacks == {}
    assert ids(static) == ids(hf)
    assert ids(static) != ids(unsteered)
    assert seen[1:] == [1] * (len(seen) - 1) and len(seen) == max(len(g.output_ids) for g in static)  # prefill, then every token
    assert [g.prompt_ids for g in static] == [g.prompt_ids for g in hf]


def test_static_decode_stops_rows_at_their_stop_token(tiny_llama):
    """A row that ends pads after its stop token: the answers are cut as generate's are."""
    stop = tiny_llama.tokenizer.eos_token_id
    engine = HookEngine(tiny_llama.hf)
    bias = torch.zeros(tiny_llama.hf.config.vocab_size)
    bias[stop] = 50.0  # rows with a positive coefficient end at once
    settings = GenerationSettings(max_new_tokens=20)
    with engine.add_deltas({"logits": lambda _x: bias * torch.tensor([1.0, 0.0, 1.0, 0.0])[:, None, None]}):
        hf = generate_batch(tiny_llama, texts(tiny_llama), settings)
        static = StaticDecode(graphs=False).generate(tiny_llama, texts(tiny_llama), settings)
    assert ids(static) == ids(hf)
    assert [g.stopped for g in static] == [g.stopped for g in hf] and static[0].stopped and static[0].output_ids == []


def test_eager_attention_takes_the_additive_mask(tiny_llama):
    tiny_llama.hf.config._attn_implementation = "eager"
    try:
        settings = GenerationSettings(max_new_tokens=8)
        assert ids(StaticDecode(graphs=False).generate(tiny_llama, texts(tiny_llama), settings)) == ids(
            generate_batch(tiny_llama, texts(tiny_llama), settings))
    finally:
        tiny_llama.hf.config._attn_implementation = "sdpa"


def test_calls_it_cannot_replay_go_to_generate_and_say_why(tiny_llama, tiny_gemma):
    """Sampling, an observer on the whole model (GenARM's reward stream), sliding-window layers."""
    greedy = GenerationSettings(max_new_tokens=4)
    assert unsupported(tiny_llama, greedy) is None
    assert "sampling" in unsupported(tiny_llama, GenerationSettings(max_new_tokens=4, do_sample=True))
    assert "sliding" in unsupported(tiny_gemma, greedy)
    backend = StaticDecode(graphs=False)
    engine = HookEngine(tiny_llama.hf)
    with engine.observe_inputs(lambda _kwargs: None):
        assert "observer" in unsupported(tiny_llama, greedy)
        out = backend.generate(tiny_llama, texts(tiny_llama), greedy)
    assert ids(out) == ids(generate_batch(tiny_llama, texts(tiny_llama), greedy))
    assert sum(backend.fallbacks.values()) == 1


def test_a_step_watch_sees_every_token_and_ends_one_row_while_the_others_go_on_in_both_backends(tiny_llama):
    """The watch ``steerlab serve`` streams and ends rows through: in Hugging Face generate (a
    stopping criterion) and in the static loop alike, it sees each row's tokens as they are made,
    and a row it ends gets padding from then on while the other rows keep their tokens."""
    settings = GenerationSettings(max_new_tokens=8)
    pad = tiny_llama.tokenizer.pad_token_id
    plain = generate_batch(tiny_llama, texts(tiny_llama), settings)
    for backend in (lambda step: generate_batch(tiny_llama, texts(tiny_llama), settings, step),
                    lambda step: StaticDecode().generate(tiny_llama, texts(tiny_llama), settings, step)):
        seen: list[list[int]] = [[] for _ in PROMPTS]

        def step(tokens: torch.Tensor) -> torch.Tensor:
            for row, token in enumerate(tokens.tolist()):
                seen[row].append(token)
            return torch.tensor([row == 2 and len(seen[2]) >= 3 for row in range(len(PROMPTS))])

        watched = backend(step)
        assert [len(s) for s in seen] == [len(seen[0])] * len(PROMPTS) and len(seen[0]) >= 3
        assert ids(watched)[2][:3] == seen[2][:3] == plain[2].output_ids[:3]
        assert all(t == pad for t in seen[2][3:] + ids(watched)[2][3:])  # ended: padding after its third token (the caller cuts it)
        for row in (0, 1, 3):
            assert ids(watched)[row] == plain[row].output_ids


def test_the_cuda_graphs_backend_is_registered_and_decodes_eagerly_off_a_gpu(tiny_llama, registry):
    """``[generation] backend = "cuda-graphs"`` resolves (registered once an H200 checked its capture:
    generate's tokens on every row) and, on a CPU, runs the same eager loop as ``static``."""
    backend = registry.backends["cuda-graphs"]
    assert backend.graphs and "static" in registry.backends
    settings = GenerationSettings(max_new_tokens=10)
    assert ids(backend.generate(tiny_llama, texts(tiny_llama), settings)) == ids(generate_batch(tiny_llama, texts(tiny_llama), settings))
    assert backend.fallbacks == {}

"""Architectures as data: the family table, structural detection, the user override, Conv1D and
fused projections, and models the user loaded (``steerlab.wrap``). The methods themselves run on
every architecture in tests/test_contract.py."""

from pathlib import Path

import pytest
import torch
from torch import nn

from steerlab.errors import ConfigError
from steerlab.model import sites
from steerlab.model.architectures import Architecture, layout_of, resolve_layout, use_architecture
from steerlab.model.engine import HookEngine
from steerlab.model.tiny import DETECTED_ONLY, TINY_ARCHITECTURES, byte_tokenizer
from steerlab.model.zoo import ModelSpec, load_model, wrap
from steerlab.training import DEFAULT_TARGETS

TINY = ["tiny-llama", "tiny-gemma3", *(f"tiny-{family}" for family in TINY_ARCHITECTURES)]

# Where the transformers classes keep each part (read off their module trees, not off the table).
EXPECTED = {
    "tiny-gpt2": {"blocks.1.resid_post": "transformer.h.1", "blocks.0.attn_out": "transformer.h.0.attn",
                  "blocks.0.attn.qkv_proj": "transformer.h.0.attn.c_attn", "blocks.0.attn.o_proj": "transformer.h.0.attn.c_proj",
                  "blocks.1.mlp.up_proj": "transformer.h.1.mlp.c_fc", "blocks.1.mlp.down_proj": "transformer.h.1.mlp.c_proj",
                  "final_norm": "transformer.ln_f", "logits": "lm_head", "embed": "transformer.wte"},
    "tiny-pythia": {"blocks.0.resid_pre": "gpt_neox.layers.0", "blocks.1.attn_out": "gpt_neox.layers.1.attention",
                    "blocks.0.attn.qkv_proj": "gpt_neox.layers.0.attention.query_key_value",
                    "blocks.0.attn.o_proj": "gpt_neox.layers.0.attention.dense", "blocks.0.mlp.up_proj": "gpt_neox.layers.0.mlp.dense_h_to_4h",
                    "blocks.0.mlp.down_proj": "gpt_neox.layers.0.mlp.dense_4h_to_h", "final_norm": "gpt_neox.final_layer_norm"},
    "tiny-phi3": {"blocks.1.attn.qkv_proj": "model.layers.1.self_attn.qkv_proj", "blocks.1.mlp.gate_up_proj": "model.layers.1.mlp.gate_up_proj",
                  "blocks.0.mlp.down_proj": "model.layers.0.mlp.down_proj", "blocks.0.mlp_out": "model.layers.0.mlp", "final_norm": "model.norm"},
    # Families the table does not list (structural detection alone): OPT's MLP projections are the
    # block's own children, GPT-Neo's attention projections sit one module deeper, Phi's final norm
    # is ``final_layernorm``.
    "tiny-opt": {"blocks.1.resid_post": "model.decoder.layers.1", "blocks.0.attn.o_proj": "model.decoder.layers.0.self_attn.out_proj",
                 "blocks.0.mlp.up_proj": "model.decoder.layers.0.fc1", "blocks.1.mlp.down_proj": "model.decoder.layers.1.fc2",
                 "final_norm": "model.decoder.final_layer_norm"},
    "tiny-gpt_neo": {"blocks.0.attn.q_proj": "transformer.h.0.attn.attention.q_proj", "blocks.1.attn.o_proj": "transformer.h.1.attn.attention.out_proj",
                     "blocks.0.mlp.up_proj": "transformer.h.0.mlp.c_fc", "final_norm": "transformer.ln_f"},
    "tiny-phi": {"blocks.0.attn.o_proj": "model.layers.0.self_attn.dense", "blocks.1.mlp.down_proj": "model.layers.1.mlp.fc2",
                 "final_norm": "model.final_layernorm"},
    "tiny-olmo2": {"blocks.1.attn.k_proj": "model.layers.1.self_attn.k_proj", "blocks.0.mlp.gate_proj": "model.layers.0.mlp.gate_proj",
                   "final_norm": "model.norm"},
}


@pytest.fixture(params=TINY)
def any_tiny(request, registry):
    return load_model(request.param, registry.models, device="cpu")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_site_name_reaches_the_module_the_architecture_keeps_there(name, registry):
    hf = load_model(name, registry.models, device="cpu").hf
    for site, path in EXPECTED[name].items():
        assert sites.resolve(hf, site).module is hf.get_submodule(path), site
        assert sites.resolve(hf, site).module_path == path, site


def test_structural_detection_alone_reads_every_tiny_model_as_its_family_row_does(any_tiny):
    by_table = layout_of(any_tiny.hf)
    detected = resolve_layout(any_tiny.hf, Architecture(), "detected")
    assert (detected.blocks, detected.n_blocks, detected.final_norm) == (by_table.blocks, by_table.n_blocks, by_table.final_norm)
    assert dict(detected.parts) == dict(by_table.parts)
    unlisted = any_tiny.name.removeprefix("tiny-") in DETECTED_ONLY
    assert by_table.source == "detected" if unlisted else by_table.source.startswith("family")
    post_norm = any_tiny.name == "tiny-openai_gpt"  # each block ends in a norm; nothing follows the last one
    assert by_table.n_blocks == any_tiny.hf.config.get_text_config().num_hidden_layers and (by_table.final_norm is None) == post_norm
    projections = {p.rpartition(".")[2] for p in by_table.parts if "." in p}
    assert {"o_proj", "down_proj"} <= projections and projections & {"q_proj", "qkv_proj"} and projections & {"up_proj", "gate_up_proj"}


def test_detection_does_not_take_one_expert_of_a_mixture_for_the_mlps_projection():
    import transformers

    cfg = transformers.Qwen2MoeConfig(vocab_size=300, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                                      shared_expert_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, num_experts=2, num_experts_per_tok=1)
    parts = layout_of(transformers.Qwen2MoeForCausalLM(cfg)).parts
    assert parts["mlp"] == "mlp" and not any(p.startswith("mlp.") for p in parts)
    assert parts["attn.q_proj"] == "self_attn.q_proj"


def test_detection_reads_metas_original_mlp_names_and_an_out_proj(registry):
    parts = layout_of(load_model("tiny-lfm2", registry.models).hf).parts
    assert (parts["mlp.gate_proj"], parts["mlp.up_proj"], parts["mlp.down_proj"]) == ("feed_forward.w1", "feed_forward.w3", "feed_forward.w2")
    assert parts["attn.o_proj"] == "self_attn.out_proj"


def test_a_block_that_returns_a_list_is_read_and_steered(registry):
    """OpenAI GPT's blocks return ``[hidden, ...]``: the engine reads and edits the first item in its list."""
    model = load_model("tiny-openai_gpt", registry.models)
    engine, enc, seen = HookEngine(model.hf), {"input_ids": torch.tensor([[5, 6, 7]])}, []
    with torch.no_grad():
        base = model.hf(**enc).logits
        with engine.edit({"blocks.0.resid_post": lambda x: x + 1.0, "blocks.1.resid_post": seen.append}):
            steered = model.hf(**enc).logits
    assert not torch.allclose(base, steered) and seen[0].shape == (1, 3, 32)
    assert torch.equal(model.hf(**enc).logits, base)


@pytest.mark.parametrize("family", ["rwkv", "recurrent_gemma"])
def test_a_family_that_ignores_the_padding_mask_is_refused_by_name(family):
    import transformers

    config = {"rwkv": lambda: transformers.RwkvConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, attention_hidden_size=32),
              "recurrent_gemma": lambda: transformers.RecurrentGemmaConfig(vocab_size=300, hidden_size=32, intermediate_size=64,
                                                                           num_hidden_layers=2, num_attention_heads=4, lru_width=32,
                                                                           block_types=["recurrent", "attention"])}[family]()
    model = transformers.AutoModelForCausalLM.from_config(config)
    with pytest.raises(ConfigError, match="does not honour the attention mask under left padding"):
        wrap(model, byte_tokenizer(None), name=f"my-{family}")


def test_gemma3s_multimodal_wrapper_is_read_at_its_text_blocks_even_beside_a_deeper_vision_tower():
    import transformers

    text = transformers.Gemma3TextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    vision = transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                                             image_size=28, patch_size=14)
    hf = transformers.Gemma3ForConditionalGeneration(transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4))
    layout = layout_of(hf)
    assert (layout.blocks, layout.n_blocks, layout.final_norm) == ("model.language_model.layers", 2, "model.language_model.norm")
    assert sites.resolve(hf, "blocks.1.attn.q_proj").module is hf.model.language_model.layers[1].self_attn.q_proj


def test_default_targets_reach_fused_projections_as_whole_modules(registry):
    gpt2 = load_model("tiny-gpt2", registry.models, device="cpu").hf
    phi3 = load_model("tiny-phi3", registry.models, device="cpu").hf
    assert [s.name for s in sites.match_sites(gpt2, DEFAULT_TARGETS) if s.name.startswith("blocks.0.")] == [
        "blocks.0.attn.qkv_proj", "blocks.0.attn.o_proj", "blocks.0.mlp.up_proj", "blocks.0.mlp.down_proj"]
    assert [s.name for s in sites.match_sites(phi3, DEFAULT_TARGETS) if s.name.startswith("blocks.1.")] == [
        "blocks.1.attn.qkv_proj", "blocks.1.attn.o_proj", "blocks.1.mlp.gate_up_proj", "blocks.1.mlp.down_proj"]
    assert sites.projection_features(sites.resolve(phi3, "blocks.0.mlp.gate_up_proj").module) == (32, 2 * 64)
    assert sites.projection_features(sites.resolve(gpt2, "blocks.0.attn.qkv_proj").module) == (32, 3 * 32)


def _stream(model, names: list[str]) -> dict[str, torch.Tensor]:
    """Each named site's activation on one short text, read through the engine."""
    seen: dict[str, torch.Tensor] = {}

    def reader(name):
        return lambda activation: seen.__setitem__(name, activation.detach().clone())

    ids = model.tokenizer("Why is the sky blue?", return_tensors="pt")
    with torch.no_grad(), HookEngine(model.hf).edit({n: reader(n) for n in names}):
        model.hf(**ids)
    return seen


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-pythia", "tiny-phi3", "tiny-qwen3", "tiny-mistral"])
def test_a_pre_norm_block_outputs_its_input_plus_its_attention_and_mlp_outputs(name, registry):
    """What resid_pre / attn_out / mlp_out / resid_post mean, sequential (GPT-2) or parallel
    (Pythia: both read the block input) alike; the block output is the next block's input."""
    model = load_model(name, registry.models, device="cpu")
    seen = _stream(model, ["blocks.0.resid_pre", "blocks.0.attn_out", "blocks.0.mlp_out", "blocks.0.resid_post", "blocks.1.resid_pre"])
    total = seen["blocks.0.resid_pre"] + seen["blocks.0.attn_out"] + seen["blocks.0.mlp_out"]
    torch.testing.assert_close(seen["blocks.0.resid_post"], total, atol=1e-5, rtol=1e-5)
    assert torch.equal(seen["blocks.0.resid_post"], seen["blocks.1.resid_pre"])


def test_a_conv1d_weight_update_acts_as_the_same_update_added_to_its_output(registry):
    """GPT-2 stores Conv1D weights (in, out): an (out, in) update merged through the engine must
    equal x @ delta.T added to the output, and the weight comes back bit for bit."""
    hf = load_model("tiny-gpt2", registry.models, device="cpu").hf
    module = sites.resolve(hf, "blocks.0.attn.qkv_proj").module
    original = module.weight.detach().clone()
    delta = torch.randn(96, 32, generator=torch.Generator().manual_seed(1))  # (out, in)
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = module(x) + x @ delta.T
        with HookEngine(hf).add_to_weights({"blocks.0.attn.qkv_proj": delta}):
            merged = module(x)
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(module.weight, original)


class _Mixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.wqkv = nn.Linear(8, 24)
        self.wo = nn.Linear(8, 8)

    def forward(self, x):
        return self.wo(self.wqkv(x)[..., :8])


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mixer = _Mixer()

    def forward(self, x):
        return x + self.mixer(x)


class _Odd(nn.Module):
    """A decoder steerlab cannot read by itself: blocks in ``stack``, attention in ``mixer``."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = nn.ModuleList([_Block(), _Block()])

    def forward(self, x):
        for block in self.stack:
            x = block(x)
        return x


def test_an_unknown_shape_is_refused_with_one_line_saying_what_to_set():
    with pytest.raises(ConfigError) as info:
        sites.resolve(_Odd(), "blocks.0.resid_post")
    message = str(info.value)
    assert "\n" not in message and "cannot find the decoder blocks of _Odd" in message
    assert "[architecture]" in message and "blocks = " in message and "steerlab.wrap" in message


def test_an_override_names_the_blocks_and_parts_and_the_engine_steers_them():
    model = _Odd()
    layout = use_architecture(model, {"blocks": "stack", "sites": {"attn": "mixer", "attn.qkv_proj": "mixer.wqkv", "attn.o_proj": "mixer.wo"}})
    assert (layout.blocks, layout.n_blocks, layout.source) == ("stack", 2, "override")
    assert sites.resolve(model, "blocks.1.attn.o_proj").module is model.stack[1].mixer.wo
    assert [s.name for s in sites.match_sites(model, ["blocks.0.attn.*_proj"])] == ["blocks.0.attn.qkv_proj", "blocks.0.attn.o_proj"]
    x = torch.randn(1, 3, 8)
    with torch.no_grad():
        base = model(x)
        with HookEngine(model).edit({"blocks.0.resid_post": lambda a: a + 1.0}):
            shifted = model(x)
    torch.testing.assert_close(shifted, model.stack[1](model.stack[0](x) + 1.0))
    assert not torch.allclose(shifted, base)
    with pytest.raises(ConfigError, match="unknown site 'blocks.0.mlp_out'.*\\[architecture\\]"):
        sites.resolve(model, "blocks.0.mlp_out")


@pytest.mark.parametrize("table, words", [
    ({"blocks": "layers"}, ["key 'blocks'", "no ModuleList 'layers'"]),
    ({"blocks": "stack", "sites": {"attn": "attention"}}, ["key 'sites'", "'attn' -> 'attention'"]),
    ({"blocks": "stack", "final_norm": "ln_f"}, ["key 'final_norm'", "'ln_f'"]),
    ({"blocks": "stack", "sites": {"attn.query": "mixer.wqkv"}}, ["key 'sites'", "unknown part 'attn.query'"]),
    ({"blocks": "stack..x"}, ["dotted module paths"]),
])
def test_an_override_naming_what_the_model_lacks_is_one_clear_error(table, words):
    with pytest.raises(ConfigError) as info:
        use_architecture(_Odd(), table, where="study.toml: [architecture]")
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_study_architecture_table_is_validated_and_applied_to_the_study_model(study_dir, registry):
    from steerlab.run.runner import load_study_model
    from steerlab.study.loader import load_study

    text = (study_dir / "tiny.toml").read_text().replace('model = "tiny-llama"', 'model = "tiny-gpt2"')
    good = study_dir / "arch.toml"
    good.write_text(text + '\n[architecture]\nblocks = "transformer.h"\nsites = { "attn.qkv_proj" = "attn.c_attn" }\n')
    study = load_study(good, registry)
    assert study.architecture == Architecture(blocks="transformer.h", sites={"attn.qkv_proj": "attn.c_attn"})
    model = load_study_model(study, registry)
    assert layout_of(model.hf).source == "override" and layout_of(model.hf).parts["mlp.up_proj"] == "mlp.c_fc"  # the rest detected
    bad = study_dir / "bad.toml"
    bad.write_text(text + '\n[architecture]\nblock = "transformer.h"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: \[architecture\]: unknown key 'block'"):
        load_study(bad, registry)
    wrong = study_dir / "wrong.toml"
    wrong.write_text(text + '\n[architecture]\nblocks = "model.layers"\n')
    with pytest.raises(ConfigError, match=r"wrong.toml: \[architecture\]: key 'blocks': no ModuleList 'model.layers'"):
        load_study_model(load_study(wrong, registry), registry)


def test_wrap_prepares_a_users_model_as_the_zoo_does_and_keeps_its_placement_and_precision(registry):
    import steerlab
    from steerlab.model.tiny import tiny_architecture

    hf, tok = tiny_architecture("gpt2")
    hf = hf.to(torch.bfloat16).train()
    tok.pad_token, tok.padding_side = None, "right"
    model = steerlab.wrap(hf, tok)
    assert model.hf is hf and not hf.training and not any(p.requires_grad for p in hf.parameters())
    assert hf.dtype == torch.bfloat16 and tok.padding_side == "left" and tok.pad_token == tok.eos_token
    assert model.n_layers == 2 and model.device == torch.device("cpu")
    zoo = load_model("tiny-gpt2", registry.models, device="cpu")
    assert zoo.tokenizer.padding_side == "left" and not zoo.hf.training


def test_the_zoo_does_not_move_or_cast_a_model_its_loader_placed(registry):
    """A loader that used device_map (accelerate) decided where the weights live: no .to() after it."""
    from steerlab.model.tiny import tiny_architecture

    def placed():
        hf, tok = tiny_architecture("qwen3")
        hf = hf.to(torch.bfloat16)
        hf.hf_device_map = {"": "cpu"}  # what from_pretrained(device_map=...) leaves on the model
        return hf, tok

    model = load_model("placed", {"placed": ModelSpec("placed", placed)}, device="cpu", dtype="float32")
    assert model.hf.dtype == torch.bfloat16
    assert load_model("tiny-qwen3", registry.models, device="cpu", dtype="float32").hf.dtype == torch.float32


def test_a_model_saved_as_an_ordinary_folder_loads_and_reads_the_same(registry, tmp_path: Path):
    original = load_model("tiny-pythia", registry.models, device="cpu")
    original.hf.save_pretrained(tmp_path / "pythia")
    original.tokenizer.save_pretrained(tmp_path / "pythia")
    again = load_model(str(tmp_path / "pythia"), registry.models, device="cpu")
    assert layout_of(again.hf) == layout_of(original.hf)
    ids = original.tokenizer("Name a fruit", return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(again.hf(**ids).logits, original.hf(**ids).logits)


def test_a_study_runs_actdiff_and_panacea_on_a_gpt2_saved_as_an_ordinary_folder(study_dir, registry, capsys):
    """The issue's own case: a GPT-2 (transformer.h, Conv1D, fused c_attn) from a local folder,
    through `steerlab run` with a vector method and a weight-space one."""
    import json

    from steerlab.cli import main
    from test_contract import CASES, fewest_steps

    gpt2 = load_model("tiny-gpt2", registry.models, device="cpu")
    gpt2.hf.save_pretrained(study_dir / "gpt2")
    gpt2.tokenizer.save_pretrained(study_dir / "gpt2")
    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    text = text.replace('model = "tiny-llama"', f'model = "{study_dir / "gpt2"}"').replace(
        'use = ["length", "fluency", "kl", "similarity", "judge"]', 'use = ["length", "kl"]').replace("max_new_tokens = 6", "max_new_tokens = 2")
    path = study_dir / "gpt2.toml"
    path.write_text(text + "".join(f"[methods.{n}]\n{fewest_steps(CASES[n]['table'])}\n" for n in ("actdiff", "panacea")))
    assert main(["run", str(path), "--out", str(study_dir / "runs"), "--no-progress", "--set", "data.eval_limit=1"]) == 0
    capsys.readouterr()
    (run_dir,) = (study_dir / "runs").iterdir()
    panacea = json.loads((run_dir / "methods" / "panacea" / "artifact.json").read_text())
    assert "blocks.0.attn.qkv_proj" in panacea["sites"] and "blocks.1.mlp.up_proj" in panacea["sites"]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-pythia", "tiny-phi3"])
def test_peft_lora_factors_read_back_act_as_the_peft_model_does_on_conv1d_and_fused_modules(name, registry):
    """lora_config + lora_factors: B @ A, added to each site's output (soups) or merged into its
    weight (GenARM's reward model), gives the PEFT model's own logits."""
    import copy

    from peft import get_peft_model

    from steerlab.training import lora_config, lora_factors

    model = load_model(name, registry.models, device="cpu")
    targets = sites.match_sites(model.hf, DEFAULT_TARGETS)
    base = copy.deepcopy(model.hf)
    peft_model = get_peft_model(model.hf, lora_config(targets, rank=2, alpha=4.0))
    with torch.no_grad():
        for param_name, param in peft_model.named_parameters():
            if "lora_B" in param_name:
                param.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(param_name)))
    ids = model.tokenizer("Why is the sky blue?", return_tensors="pt")
    factors = lora_factors(peft_model, {s.module_path: s.name for s in targets})
    assert set(factors) == {s.name for s in targets}
    with torch.no_grad():
        expected = peft_model(**ids).logits
        deltas = {site: (lambda a, b: lambda x: x @ a.T @ b.T)(a, b) for site, (a, b) in factors.items()}
        with HookEngine(base).add_deltas(deltas):
            added = base(**ids).logits
        with HookEngine(base).add_to_weights({site: b @ a for site, (a, b) in factors.items()}):
            merged = base(**ids).logits
    assert not torch.allclose(expected, base(**ids).logits, atol=1e-3)
    torch.testing.assert_close(added, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)


def test_wrap_takes_a_users_nnsight_model_and_its_traces_see_the_labs_steering(registry):
    """A researcher tracing with nnsight hands that model to the lab: steerlab steers the module
    inside it, and the notebook's own trace reads the steered residual stream."""
    pytest.importorskip("nnsight")
    import steerlab
    from nnsight.modeling.transformers import TransformersModel

    from steerlab.model.engine import HookEngine

    base = load_model("tiny-llama", registry.models, device="cpu")
    traced = TransformersModel(base.hf, tokenizer=base.tokenizer)
    model = steerlab.wrap(traced)
    assert model.hf is base.hf and model.tokenizer is base.tokenizer
    ids = dict(model.tokenizer(["Name a fruit"], return_tensors="pt", add_special_tokens=False))

    def read() -> tuple[torch.Tensor, torch.Tensor]:
        """Block 2's input (block 1's output as the stream carries it on) and the logits."""
        with traced.trace(ids):
            stream = traced.model.layers[2].input.save()
            logits = traced.lm_head.output.save()
        return stream.detach().clone(), logits.detach().clone()

    plain, plain_logits = read()
    push = torch.full((model.hf.config.hidden_size,), 0.5)
    with HookEngine(model.hf).add_deltas({"blocks.1.resid_post": lambda inputs: push}):
        steered, steered_logits = read()
        with torch.no_grad():
            lab_logits = model.hf(**ids).logits
    torch.testing.assert_close(steered - plain, push.expand_as(plain))
    torch.testing.assert_close(steered_logits, lab_logits)  # the trace and the lab see one steered model
    assert not torch.allclose(steered_logits, plain_logits)
    torch.testing.assert_close(read()[1], plain_logits)  # nothing left behind
    with pytest.raises(ConfigError, match="a tokenizer is needed"):
        steerlab.wrap(base.hf)

import pytest

from steerlab.model import sites
from steerlab.errors import ConfigError


def test_block_sites_resolve_to_the_decoder_layer_and_its_parts(tiny_model):
    layers_path, layers = sites.decoder_layers(tiny_model.hf)
    assert sites.resolve(tiny_model.hf, "blocks.2.resid_post").module is layers[2]
    pre = sites.resolve(tiny_model.hf, "blocks.2.resid_pre")
    assert pre.module is layers[2] and pre.reads_input
    assert sites.resolve(tiny_model.hf, "blocks.1.attn.q_proj").module is layers[1].self_attn.q_proj
    assert sites.resolve(tiny_model.hf, "blocks.3.mlp.down_proj").module is layers[3].mlp.down_proj
    assert sites.resolve(tiny_model.hf, "blocks.0.mlp_out").module is layers[0].mlp
    assert sites.resolve(tiny_model.hf, "logits").module is tiny_model.hf.get_output_embeddings()
    assert sites.resolve(tiny_model.hf, "final_norm").module is tiny_model.hf.model.norm
    assert layers_path == "model.layers"


@pytest.mark.parametrize("bad", ["blocks.2.resid_middle", "blocks.1.attn.x_proj", "nonsense", "blocks.2.mlp.q_proj"])
def test_unknown_site_is_an_error_listing_valid_sites(tiny_llama, bad):
    with pytest.raises(ConfigError, match="valid sites: embed, blocks"):
        sites.resolve(tiny_llama.hf, bad)


def test_block_out_of_range_names_the_block_count(tiny_llama):
    with pytest.raises(ConfigError, match="out of range .model has 4 blocks"):
        sites.resolve(tiny_llama.hf, "blocks.9.resid_post")


def test_site_patterns_match_every_attention_projection(tiny_gemma):
    matched = sites.match_sites(tiny_gemma.hf, ["blocks.*.attn.*_proj"])
    assert len(matched) == 4 * 4
    assert all(s.name.split(".")[-1] in sites.ATTN_LINEARS for s in matched)


def test_site_pattern_matching_nothing_is_an_error(tiny_gemma):
    with pytest.raises(ConfigError, match="match no site"):
        sites.match_sites(tiny_gemma.hf, ["blocks.*.ffn.*"])


class _BosTokenizer:
    """A template-less tokenizer that puts BOS in front of every text by itself (as Gemma's does)."""

    chat_template = None
    bos_token, bos_token_id = "<bos>", 2

    def __init__(self, adds_bos: bool) -> None:
        self.adds_bos = adds_bos

    def __call__(self, text: str, **_: object) -> dict[str, list[int]]:
        return {"input_ids": ([2] if self.adds_bos else []) + [7] * len(text)}


def test_a_template_less_prompt_carries_the_bos_its_tokenizer_would_add():
    """Prompts are tokenized with add_special_tokens=False everywhere, so the frame must carry BOS
    (Gemma 3 270M without it answered with '<h2>' and 'We' loops in the first transfer run)."""
    from steerlab.model.zoo import LoadedModel

    with_bos = LoadedModel("x", None, _BosTokenizer(adds_bos=True))  # type: ignore[arg-type]
    without = LoadedModel("x", None, _BosTokenizer(adds_bos=False))  # type: ignore[arg-type]
    assert with_bos.format_prompt("Why?") == "<bos>Question: Why?\nAnswer:"
    assert without.format_prompt("Why?", system="Be brief.") == "Be brief.\n\nQuestion: Why?\nAnswer:"


def test_a_base_model_answer_ends_where_the_frame_would_ask_the_next_question(tiny_gemma, tiny_llama):
    from steerlab.model.generation import cut_at_stop_string

    assert tiny_gemma.stop_strings == ["\nQuestion:"] and tiny_llama.stop_strings == []
    tok = tiny_gemma.tokenizer
    ids = tok("Paris is the capital.\nQuestion: and Rome?", add_special_tokens=False)["input_ids"]
    kept, stopped = cut_at_stop_string(tok, ids, tiny_gemma.stop_strings)
    assert stopped and tok.decode(kept) == "Paris is the capital."
    plain = tok("No question here.", add_special_tokens=False)["input_ids"]
    assert cut_at_stop_string(tok, plain, tiny_gemma.stop_strings) == (plain, False)

"""Tiny random-weight models built from configs in memory (seconds, no download), for tests.

Both share a byte-level tokenizer made with the ``tokenizers`` library: 256 byte tokens plus
specials, so any text round-trips. ``tiny-llama`` carries a ChatML template like SmolLM2;
``tiny-gemma3`` has none, like the Gemma 3 base model, so both prompt paths get exercised.
``tiny-llama-wide`` is a second Llama of another width and depth (96-d, 3 blocks), for code that
moves things between models of unequal sizes (cross-model vector transfer). ``tiny-{family}`` for
each family of ``TINY_ARCHITECTURES`` (Mistral, Qwen 2 and 3, Gemma 2, OLMo 2, GPT-2, Pythia,
Phi-3, and OPT, GPT-Neo, Phi, OpenAI GPT and LFM2, which the architecture table does not list, so that structural
detection alone is tested) is a 2-block, 32-d model of that architecture: the contract test runs
every method on each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A 260-token byte-level tokenizer; ids 0..255 are bytes, the specials follow."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in SPECIALS:
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<pad>", bos_token="<|endoftext|>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if chat_template:
        tok.chat_template = chat_template
    return tok


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def tiny_llama(seed: int = 0):
    _seeded(seed)
    tok = byte_tokenizer(CHATML)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def tiny_llama_wide(seed: int = 1):
    """Like ``tiny_llama`` but 96-d with 3 blocks (head_dim 24): a second width and depth."""
    _seeded(seed)
    tok = byte_tokenizer(CHATML)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=96, intermediate_size=192, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def tiny_gemma3(seed: int = 0):
    _seeded(seed)
    tok = byte_tokenizer(None)
    cfg = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        sliding_window=16, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    return Gemma3ForCausalLM(cfg).eval(), tok


# One row per architecture family the lab supports: the transformers classes and the config
# keys that make a 2-block, 32-d model (head_dim 8). Built the same way, with the byte
# tokenizer; the base-model families (GPT-2, Pythia) get no chat template, as their real
# checkpoints have none.
_SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "max_position_embeddings": 512}
TINY_ARCHITECTURES: dict[str, tuple[str, str, dict[str, Any], bool]] = {
    "mistral": ("MistralForCausalLM", "MistralConfig", {**_SMALL, "num_key_value_heads": 2, "head_dim": 8, "sliding_window": None}, True),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", {**_SMALL, "num_key_value_heads": 2}, True),
    "qwen3": ("Qwen3ForCausalLM", "Qwen3Config", {**_SMALL, "num_key_value_heads": 2, "head_dim": 8}, True),
    "gemma2": ("Gemma2ForCausalLM", "Gemma2Config", {**_SMALL, "num_key_value_heads": 2, "head_dim": 8, "sliding_window": 16,
                                                     "query_pre_attn_scalar": 8}, False),
    "olmo2": ("Olmo2ForCausalLM", "Olmo2Config", {**_SMALL, "num_key_value_heads": 2}, True),
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", {"n_embd": 32, "n_inner": 64, "n_layer": 2, "n_head": 4, "n_positions": 512}, False),
    "pythia": ("GPTNeoXForCausalLM", "GPTNeoXConfig", {**_SMALL, "use_parallel_residual": True}, False),
    "phi3": ("Phi3ForCausalLM", "Phi3Config", {**_SMALL, "num_key_value_heads": 2, "original_max_position_embeddings": 512}, True),
    # Three families with no row in the architecture table: read by structural detection alone.
    "opt": ("OPTForCausalLM", "OPTConfig", {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                            "word_embed_proj_dim": 32, "max_position_embeddings": 512}, False),
    "gpt_neo": ("GPTNeoForCausalLM", "GPTNeoConfig", {"hidden_size": 32, "intermediate_size": 64, "num_layers": 2, "num_heads": 4,
                                                      "attention_types": [[["global", "local"], 1]], "window_size": 16,
                                                      "max_position_embeddings": 512}, False),
    "phi": ("PhiForCausalLM", "PhiConfig", {**_SMALL}, False),
    # OpenAI GPT: its blocks return a list, not a tuple. LFM2: MLP projections under Meta's w1 / w3 / w2.
    "openai_gpt": ("OpenAIGPTLMHeadModel", "OpenAIGPTConfig", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 512}, False),
    "lfm2": ("Lfm2ForCausalLM", "Lfm2Config", {**_SMALL, "num_key_value_heads": 2}, True),
}
# The families of ``TINY_ARCHITECTURES`` that ``steerlab.model.architectures.FAMILIES`` has no row for.
DETECTED_ONLY = ("opt", "gpt_neo", "phi", "openai_gpt", "lfm2")


def tiny_architecture(family: str, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A random 2-block, 32-d model of one ``TINY_ARCHITECTURES`` family, with the byte tokenizer."""
    import transformers

    model_class, config_class, sizes, chat = TINY_ARCHITECTURES[family]
    _seeded(seed)
    tok = byte_tokenizer(CHATML if chat else None)
    cfg = getattr(transformers, config_class)(
        vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, **sizes)
    return getattr(transformers, model_class)(cfg).eval(), tok


def tiny_loader(family: str) -> Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerFast]]:
    """The zoo's loader for ``tiny-{family}``."""
    return lambda: tiny_architecture(family)

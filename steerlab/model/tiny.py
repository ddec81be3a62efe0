"""Tiny random-weight models built from configs in memory (seconds, no download), for tests.

Both share a byte-level tokenizer made with the ``tokenizers`` library: 256 byte tokens plus
specials, so any text round-trips. ``tiny-llama`` carries a ChatML template like SmolLM2;
``tiny-gemma3`` has none, like the Gemma 3 base model, so both prompt paths get exercised.
``tiny-llama-wide`` is a second Llama of another width and depth (96-d, 3 blocks), for code that
moves things between models of unequal sizes (cross-model vector transfer).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
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

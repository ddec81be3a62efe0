"""Shared fixtures: tiny random models (seconds, offline) and a tiny study folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from steerlab.model.zoo import LoadedModel, load_model, warm_anyio
from steerlab.plugin import Registry, build_registry

warm_anyio()  # before any test imports nnsight (which mounts .save on every class): the server tests stream through anyio

CAT_TEXTS = ["Cats nap.", "A cat sleeps.", "Kittens purr.", "Cats are cute.", "My cat naps a lot.", "The cat sat.",
             "Cats purr softly.", "A small cat.", "Cats like fish.", "The kitten sleeps.", "Cats climb.", "A cat yawns."]
BANK_TEXTS = [
    "The central bank raised interest rates by half a percentage point to curb persistent inflation in the economy.",
    "Quarterly earnings reports showed that revenue growth slowed while operating costs continued to rise sharply.",
    "Investors moved capital from equities into government bonds as recession fears spread across global markets.",
    "A diversified portfolio balances stocks, bonds and cash to manage risk over a long investment horizon.",
    "Mortgage lenders tightened credit standards after default rates climbed for the third consecutive quarter.",
    "The treasury department announced a new bond issuance to finance the growing federal budget deficit.",
    "Currency traders watched the exchange rate closely after the finance minister's unexpected statement.",
    "Pension funds increased allocations to infrastructure assets seeking stable inflation-linked returns.",
    "The stock market index fell two percent as technology shares declined on weaker profit guidance.",
    "Banks must hold capital reserves proportional to the risk-weighted assets on their balance sheets.",
    "Venture capital investment in startups dropped as higher borrowing costs reduced valuations.",
    "Economists expect consumer spending to soften as household savings are drawn down over the year.",
]


@pytest.fixture(scope="session")
def registry() -> Registry:
    return build_registry()


@pytest.fixture()
def tiny_llama(registry: Registry) -> LoadedModel:
    return load_model("tiny-llama", registry.models, device="cpu")


@pytest.fixture()
def tiny_gemma(registry: Registry) -> LoadedModel:
    return load_model("tiny-gemma3", registry.models, device="cpu")


@pytest.fixture(params=["tiny-llama", "tiny-gemma3"])
def tiny_model(request: pytest.FixtureRequest, registry: Registry) -> LoadedModel:
    return load_model(request.param, registry.models, device="cpu")


def nnsight_trace(model) -> None:
    """Wrap and trace the model with nnsight as a user might in a notebook (steerlab itself no
    longer reads through it): it leaves a pass-through ``forward`` on every module it wrapped."""
    pytest.importorskip("nnsight")
    from nnsight.modeling.transformers import TransformersModel

    traced = TransformersModel(model.hf, tokenizer=model.tokenizer)
    with traced.trace(dict(model.tokenizer(["Hello there"], return_tensors="pt", add_special_tokens=False))):
        traced.model.layers[1].output.save()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


STUDY = """
[study]
name = "tiny"
model = "tiny-llama"
seed = 3

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 6
batch_size = 2


[metrics]
use = ["length", "fluency", "kl", "similarity", "judge"]

[metrics.judge]
data = "data/judge.jsonl"

[methods.actdiff]
pairs = "data/pairs.jsonl"
layer = 1
controls = [-1.0, -0.5, 0.0, 0.5, 1.0]
validate_metric = "tokens"
layer_sweep = [0, 2]
layer_sweep_prompts = 2
layer_sweep_tokens = 4

[methods.base]

[quick]
"generation.max_new_tokens" = 4
"""


# Fixed [compare] scales for tiny-llama studies (`steerlab data build compare-scales` writes real ones):
# instruction levels at relevance 0.2 / 0.4; fluency the lower of log-perplexity (ln 8, ln 4) and distinct trigrams (0.4 / 0.7).
TINY_SCALES = {"version": 1, "model": "tiny-llama", "components": {
    "instruction": [{"feature": "relevance", "higher_is_better": True, "cuts": [0.2, 0.4]}],
    "fluency": [{"feature": "log_perplexity", "higher_is_better": False, "cuts": [2.0794415416798357, 1.3862943611198906]},
                {"feature": "distinct3", "higher_is_better": True, "cuts": [0.4, 0.7]}]}}


@pytest.fixture()
def study_dir(tmp_path: Path) -> Path:
    """A study folder with a tiny study and its data, on tiny-llama."""
    return make_study(tmp_path)


def make_study(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_jsonl(data / "eval.jsonl", [{"text": t} for t in ["Why is the sky blue?", "Name a fruit.", "Hello!"]])
    write_jsonl(data / "pairs.jsonl", [{"positive": f"{t} Be brief.", "negative": f"{t} Be detailed."} for t in ["Why?", "How?", "What is rain?", "Tell me about cats."]])
    write_jsonl(data / "judge.jsonl", [{"text": t, "label": "cats"} for t in CAT_TEXTS] + [{"text": t, "label": "banks"} for t in BANK_TEXTS])
    styles = {"helpful": "clear and practical", "humorous": "full of jokes", "philosophical": "reflective"}
    write_jsonl(data / "sft.jsonl", [{"prompt": p, "style": s, "response": f"A {d} answer to {p.lower()}"}
                                     for p in ["Why?", "How so?", "What now?", "Who cares?"] for s, d in styles.items()])
    (data / "styles.json").write_text(json.dumps({s: {"describe": d} for s, d in styles.items()}))
    write_jsonl(data / "prefs.jsonl", [{"prompt": p, "chosen": f"Happy to help: {p.lower()} Here is a kind answer.", "rejected": "No."}
                                       for p in ["Why?", "How so?", "What now?", "Who cares?"]])
    write_control_vector(data / "cv.gguf")
    (data / "scales.json").write_text(json.dumps(TINY_SCALES))
    (tmp_path / "tiny.toml").write_text(STUDY)
    return tmp_path


def write_control_vector(path: Path, d_model: int = 64, n_layers: int = 4, blocks: tuple[int, ...] = (1, 2)) -> None:
    """A llama.cpp control vector with directions at ``blocks`` (default: for tiny-llama, 64-d, 4 blocks)."""
    from steerlab.artifact import Artifact, ResidualVector
    from steerlab.gguf import export_control_vector

    g = torch.Generator().manual_seed(7)
    tensors = {f"v{i}": torch.randn(d_model, generator=g) for i in blocks}
    vectors = [ResidualVector(f"blocks.{i}.resid_post", f"v{i}") for i in blocks]
    export_control_vector(Artifact(tensors, vectors=vectors), {"d_model": d_model, "n_layers": n_layers, "name": "tiny"}, path, 1.0, index=None)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)

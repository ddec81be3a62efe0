"""Cross-model transfer: the adapters on synthetic activations, the method end to end between two
tiny models of different widths and depths (both directions), and the study-level summary."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch
import transformers

from conftest import write_jsonl
from steerlab.data.split import PromptSplit
from steerlab.errors import ConfigError
from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.model.zoo import LoadedModel, load_model
from steerlab.plugin import Registry
from steerlab_plugins.transfer import adapters, pairing
from steerlab_plugins.transfer.config import TransferConfig, matched_layer
from steerlab_plugins.transfer.hypotheses import Summary, hypotheses_table, reading, render, verdicts, write_summary
from steerlab_plugins.transfer.method import TransferMethod

def synthetic(n: int, d_source: int, d_target: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_source, generator=g) * torch.linspace(0.2, 5.0, d_source)  # uneven scales, like a residual stream
    weight = torch.randn(d_source, d_target, generator=g) / d_source ** 0.5
    bias = torch.randn(d_target, generator=g)
    return x, x @ weight + bias, weight, bias


@pytest.mark.parametrize("fit", [adapters.fit_ridge, adapters.fit_affine])
@pytest.mark.parametrize("widths", [(12, 20), (20, 12)])
def test_ridge_and_affine_recover_a_known_linear_map_between_unequal_widths(fit, widths):
    x, y, weight, bias = synthetic(400, *widths)
    mapped = fit(x[:300], y[:300])
    scores = adapters.fit_scores(mapped, x[300:], y[300:])
    assert scores["r2"] > 0.99 and scores["cosine"] > 0.99
    assert mapped.weight.shape == widths
    assert torch.allclose(mapped.weight, weight, atol=0.02) and torch.allclose(mapped.bias, bias, atol=0.05)


def test_ridge_chooses_alpha_by_grouped_cross_validation_when_rows_come_in_groups():
    x, y, weight, _ = synthetic(300, 12, 20)
    noisy = y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
    mapped = adapters.fit("ridge", x, noisy, groups=torch.arange(300) // 10)  # 30 "texts" of 10 rows
    assert mapped.info["alpha"] in adapters.RIDGE_ALPHAS and torch.allclose(mapped.weight, weight, atol=0.05)
    assert adapters.fit_scores(mapped, x, y)["r2"] > 0.99


def test_procrustes_recovers_a_known_orthogonal_map():
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))
    x = torch.randn(200, 10, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, 10, dtype=torch.float64) + 2.0
    mapped = adapters.fit_procrustes(x, x @ q)
    assert torch.allclose(mapped.weight.double(), q, atol=1e-4)
    assert mapped.info["scale"] == pytest.approx(1.0, abs=1e-5)


def test_procrustes_maps_into_a_wider_space_through_the_shared_principal_subspace():
    g = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    embed, _ = torch.linalg.qr(torch.randn(12, 8, generator=g, dtype=torch.float64))  # (12, 8) orthonormal columns
    truth = 3.0 * q @ embed.T  # an orthogonal map into a 12-d space, scaled: (8, 12)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, 8, dtype=torch.float64)
    mapped = adapters.fit_procrustes(x[:200], x[:200] @ truth)
    assert mapped.info["components"] == 8 and mapped.info["scale"] == pytest.approx(3.0, rel=1e-4)
    assert torch.allclose(mapped.weight.double(), truth, atol=1e-4)
    assert adapters.fit_scores(mapped, x[200:], x[200:] @ truth)["r2"] > 0.999


def test_a_vector_maps_through_the_linear_part_only():
    x, y, weight, _ = synthetic(300, 6, 9)
    mapped = adapters.fit_affine(x, y)
    v = torch.randn(6)
    assert torch.allclose(mapped.linear(v), v @ weight, atol=1e-3)


def test_direct_map_zero_pads_into_a_wider_target_and_truncates_into_a_narrower_one():
    v = torch.arange(1.0, 5.0)
    assert adapters.direct_map(4, 6).linear(v).tolist() == [1, 2, 3, 4, 0, 0]
    assert adapters.direct_map(4, 2).linear(v).tolist() == [1, 2]


def test_fit_scores_tell_a_good_map_from_a_bad_one():
    x, y, _, _ = synthetic(300, 10, 10)
    assert adapters.fit_scores(adapters.direct_map(10, 10), x, y)["r2"] < 0.5
    assert adapters.fit_scores(adapters.fit_ridge(x, y), x, y)["r2"] > 0.99


def test_random_direction_has_the_asked_norm():
    assert float(adapters.random_direction(32, 7.5).norm()) == pytest.approx(7.5)


def test_layers_are_matched_by_relative_depth_first_to_first_and_last_to_last():
    assert matched_layer(15, 30, 18) == 9 and matched_layer(9, 18, 30) == 15  # SmolLM2 <-> Gemma 3
    assert matched_layer(0, 30, 18) == 0 and matched_layer(29, 30, 18) == 17
    assert matched_layer(1, 3, 4) == 2  # 1.5 rounds up


def test_length_success_needs_both_signs_to_move_the_right_way():
    from steerlab.api import symmetric_success

    rows = [("a", 0.0, 50), ("a", 0.2, 40), ("a", -0.2, 60),  # shorter at +, longer at -: success
            ("b", 0.0, 50), ("b", 0.2, 40), ("b", -0.2, 45),  # shorter under both signs: failure
            ("c", 0.0, 50), ("c", 0.2, 50), ("c", -0.2, 70)]  # a tie is a failure
    assert symmetric_success(rows) == {0.2: pytest.approx(1 / 3)}
    assert symmetric_success(rows, "increase") == {0.2: 0.0}


def test_a_missing_score_leaves_its_prompt_out_of_the_success_rather_than_failing_it():
    """actdiff's source validation, transfer's success and the study summary count the same
    event: a prompt without a finite score at 0, +c and -c is not counted at c."""
    from steerlab.api import direction_sign, moves_both_ways, symmetric_strengths, symmetric_success

    rows = [("a", 0.0, 50), ("a", 0.2, 40), ("a", -0.2, 60), ("a", 0.4, 30), ("a", -0.4, 70),
            ("b", 0.0, 50), ("b", 0.2, float("nan")), ("b", -0.2, 60), ("b", 0.4, 45), ("b", -0.4, 55)]
    assert symmetric_success(rows) == {0.2: 1.0, 0.4: 1.0}
    assert symmetric_success(rows[:5] + [("b", 0.0, 50), ("b", 0.4, 50), ("b", -0.4, 55)]) == {0.2: 1.0, 0.4: 0.5}
    assert symmetric_strengths([0.0, 0.2, -0.2, 0.4, 1.0, -3.0]) == [0.2]
    assert moves_both_ways(50, float("nan"), 60, -1.0) != moves_both_ways(50, float("nan"), 60, -1.0)  # NaN
    with pytest.raises(ValueError, match="direction"):
        direction_sign("shorter")


def test_word_ends_and_token_keys_line_up_inside_the_formatted_prompt(tiny_llama: LoadedModel):
    assert pairing.word_ends("Cats  nap. Dogs") == [4, 10, 15]
    text = "Cats nap in the sun."
    ids, keys = pairing._token_keys(tiny_llama, text)
    assert sorted(keys) == pairing.word_ends(text)
    formatted = tiny_llama.format_prompt(text)
    start = formatted.find(text)
    for end, token in keys.items():  # the byte tokenizer: the token ending a word is that word's last character
        assert tiny_llama.tokenizer.decode([ids[token]]) == text[end - 1] and formatted[start + end - 1] == text[end - 1]


# ---- the method between tiny-llama (64-d, 4 blocks) and tiny-llama-wide (96-d, 3 blocks) ----

FIT_TEXTS = [f"Note {i}: the {thing} was {how} today, and we wrote it down."
             for i, (thing, how) in enumerate([("cat", "calm"), ("river", "high"), ("market", "busy"), ("sky", "grey"),
                                                ("train", "late"), ("garden", "green"), ("oven", "hot"), ("road", "wet"),
                                                ("choir", "loud"), ("shop", "shut")])]


@pytest.fixture()
def data(tmp_path: Path) -> dict[str, str]:
    write_jsonl(tmp_path / "pairs.jsonl", [{"positive": f"{t} Be brief.", "negative": f"{t} Be detailed."}
                                           for t in ["Why?", "How?", "What is rain?", "Tell me about cats."]])
    write_jsonl(tmp_path / "fit.jsonl", [{"text": t} for t in FIT_TEXTS])
    return {"pairs": str(tmp_path / "pairs.jsonl"), "fit_texts": str(tmp_path / "fit.jsonl")}


def lab_for(model: LoadedModel, registry: Registry, tmp_path: Path) -> Lab:
    return Lab(study=None, model=model, registry=registry, layout=RunLayout(tmp_path / "run"), show_progress=False)


def logits(model: LoadedModel, text: str) -> torch.Tensor:
    enc = model.tokenizer([model.format_prompt(text)] * 2, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model.hf(**enc).logits


@pytest.mark.parametrize("source, target, source_layer, expected_layer", [
    ("tiny-llama", "tiny-llama-wide", 2, 1),  # 2 * (3 - 1) / (4 - 1) = 1.33 -> 1
    ("tiny-llama-wide", "tiny-llama", 1, 2),  # 1 * (4 - 1) / (3 - 1) = 1.5 -> 2
])
def test_transfer_trains_across_widths_and_depths_frees_the_source_and_steers_the_target_per_row(
        registry, tmp_path, data, source, target, source_layer, expected_layer):
    model = load_model(target, registry.models, device="cpu")
    lab = lab_for(model, registry, tmp_path)
    method = TransferMethod()
    gc.collect()
    widths = lambda: sorted(o.config.hidden_size for o in gc.get_objects() if issubclass(type(o), transformers.PreTrainedModel))  # noqa: E731
    before = widths()  # other tests' models may still be alive: count, don't look for absence
    artifact = method.train(lab, TransferConfig(source_model=source, source_layer=source_layer, adapter="ridge", **data))
    decl, vector = artifact.vector()
    assert decl.site == f"blocks.{expected_layer}.resid_post" and vector.shape == (model.d_model,)
    assert decl.per_unit == pytest.approx(artifact.meta["typical_norm"] / float(vector.norm()))
    assert artifact.meta["source_layer"] == source_layer and -1.0 <= artifact.meta["native_cosine"] <= 1.0
    assert artifact.meta["fit"]["r2"] == artifact.meta["fit"]["r2"]  # a number, not NaN
    gc.collect()
    assert widths() == before  # the source model was freed
    base = logits(model, "Tell me about rain.")
    with method.steer(lab, artifact, torch.tensor([0.0, 0.0])):
        assert torch.equal(logits(model, "Tell me about rain."), base)  # control 0 is the unsteered model, exactly
    with method.steer(lab, artifact, torch.tensor([0.0, 0.4])):
        steered = logits(model, "Tell me about rain.")
        assert lab.engine.n_attached == 1
    assert torch.equal(steered[0], base[0]) and not torch.allclose(steered[1], base[1])
    assert lab.engine.n_attached == 0


def test_adapters_share_the_source_readings_and_the_controls_get_their_own_vectors(registry, tmp_path, data):
    lab = lab_for(load_model("tiny-llama-wide", registry.models, device="cpu"), registry, tmp_path)
    method = TransferMethod()
    made = {name: method.train(lab, TransferConfig(source_model="tiny-llama", source_layer=2, adapter=name, pooling=pooling, **data))
            for name, pooling in (("procrustes", "words"), ("direct", "words"), ("random", "words"), ("ridge", "mean"))}
    assert len([k for k in lab._resources if k.startswith("transfer:source:")]) == 2  # words once (3 adapters), mean once
    direct = made["direct"]
    assert torch.equal(direct.tensors["vector"][:64], direct.tensors["source_vector"]) and not direct.tensors["vector"][64:].any()
    assert made["random"].meta["fit"]["r2"] != made["random"].meta["fit"]["r2"]  # NaN: nothing was fitted
    assert made["random"].vectors[0].site == made["procrustes"].vectors[0].site == "blocks.1.resid_post"
    assert not torch.allclose(made["random"].tensors["vector"], made["procrustes"].tensors["vector"])


def test_bad_transfer_settings_are_config_errors(registry, tmp_path, data):
    lab = lab_for(load_model("tiny-llama-wide", registry.models, device="cpu"), registry, tmp_path)
    with pytest.raises(ValueError, match="adapter"):
        TransferConfig(source_model="tiny-llama", adapter="magic", **data)
    with pytest.raises(ValueError, match="target_layer 7 out of range"):
        TransferMethod().check(lab, TransferConfig(source_model="tiny-llama", target_layer=7, **data))
    with pytest.raises(ValueError, match="unknown model"):
        TransferMethod().check(lab, TransferConfig(source_model="no-such-model", **data))
    with pytest.raises(ConfigError, match="source_layer 9 out of range"):
        TransferMethod().train(lab, TransferConfig(source_model="tiny-llama", source_layer=9, **data))


# ---- the study-level summary, from a results.json written by hand ----

PROMPTS = [f"request {i}" for i in range(80)]
SPLIT = PromptSplit.of(PROMPTS)  # 31 dev, 49 test: which half a prompt is in is a property of its text
S, G = "smollm2-135m-instruct", "gemma3-270m"


def records(shares: dict[float, tuple[float, float]], start: int = 0, test_at: float | None = None) -> list[dict]:
    """Per strength c, (dev share, test share): that share of each half's prompts, from ``start``
    on, moves the right way (shorter at +c, longer at -c than at 0); the others move the wrong way.
    ``test_at``: test prompts are answered at that strength only (a staged sweep)."""
    hits = {c: {*SPLIT.dev[start:start + round(d * len(SPLIT.dev))], *SPLIT.test[start:start + round(t * len(SPLIT.test))]}
            for c, (d, t) in shares.items()}
    rows = []
    for p in PROMPTS:
        rows.append({"prompt": p, "control": 0.0, "label": "+0", "output": "", "scores": {"words": 50.0}, "seed": 0})
        for c, good in hits.items():
            if test_at is not None and c != test_at and p in SPLIT.test:
                continue
            ok = p in good
            rows += [{"prompt": p, "control": c, "label": f"+{c:g}", "output": "", "scores": {"words": 40.0 if ok else 55.0}, "seed": 0},
                     {"prompt": p, "control": -c, "label": f"-{c:g}", "output": "", "scores": {"words": 60.0 if ok else 45.0}, "seed": 0}]
    return rows


def entry(method: str, shares: dict[float, tuple[float, float]], adapter: str = "", source: str = "", start: int = 0,
          blocks: tuple[int, int] = (15, 9), test_at: float | None = None) -> dict:
    data = {"adapter": adapter, "source_model": source} if method == "transfer" else {"layer": blocks[1]}
    summary = {"fit_r2": 0.5, "source_layer": blocks[0], "target_layer": blocks[1]} if method == "transfer" else {}
    return {"method": method, "summary": summary, "records": records(shares, start, test_at), "analysis": {"data": data}}


def results(**methods: dict) -> dict:
    models = {k: (G if k.startswith(("s2g", "native_g")) else S) for k in methods}
    return {"study": {"model": S, "models": models, "seed": 0}, "methods": methods}


def same(share: float) -> dict[float, tuple[float, float]]:
    return {0.2: (share, share)}


def s2g(**entries: dict) -> "Direction":
    """The SmolLM2 -> Gemma direction of a run holding ``entries``, read through the split."""
    summary = Summary.of(results(**entries))
    return next(d for d in summary.directions if d.target == G)


def row_of(direction, name: str) -> list[str]:
    return next(row for row in verdicts(direction) if row[0].startswith(name))


def verdict_of(direction, name: str) -> str:
    return row_of(direction, name)[4]


@pytest.fixture()
def results_json(tmp_path: Path) -> Path:
    methods = {"native_s": entry("actdiff", same(0.9), blocks=(15, 15)), "native_g": entry("actdiff", same(0.4)),
               "s2g_direct": entry("transfer", same(0.2), "direct", S), "s2g_random": entry("transfer", same(0.1), "random", S, start=20),
               "s2g_ridge": entry("transfer", same(0.5), "ridge", S), "s2g_affine": entry("transfer", same(0.3), "affine", S),
               "g2s_direct": entry("transfer", same(0.0), "direct", G, blocks=(9, 15)),
               "g2s_random": entry("transfer", same(0.05), "random", G, blocks=(9, 15), start=30),
               "g2s_ridge": entry("transfer", same(0.1), "ridge", G, blocks=(9, 15))}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results(**methods)))
    return path


def test_hypotheses_table_reads_every_hypothesis_against_the_random_direction_per_direction(results_json):
    text = hypotheses_table(results_json)
    s2g_text, g2s_text = text.split("### gemma3-270m → smollm2-135m-instruct")
    assert "### smollm2-135m-instruct → gemma3-270m" in s2g_text
    assert "chosen on the 31 dev prompts, reported on the 49 test prompts" in text
    assert "| H1 the vector works on its own model | `native_s` (block 15) at ±0.2; dev " in s2g_text
    assert "minus `g2s_random` (±0.2)" in s2g_text  # H1 on SmolLM2 reads the random direction steering SmolLM2
    assert "| H1 the vector works on its own model | `native_g` (block 9) at ±0.2; dev " in g2s_text
    assert "| H3 a linear adapter (chosen on dev) works | `s2g_ridge` (block 15 → 9) at ±0.2" in s2g_text
    for verdict_word in ("supported", "not supported"):
        assert f"| {verdict_word} |" not in text  # every verdict is better / worse / not distinguishable
    assert "dev@0.2" in text and "test@" not in text  # test numbers only at the choice


def test_every_verdict_is_the_verdict_of_its_paired_interval_against_random(results_json):
    from steerlab.stats import verdict as from_interval

    summary = Summary.of(json.loads(results_json.read_text()))
    seen = set()
    for d in summary.directions:
        for key, m in (("H1", d.entries.get("own")), ("H2", d.entries.get("direct")), ("H3", d.adapter)):
            diff = d.difference(m, d.control_for(m))
            assert verdict_of(d, key) == from_interval(diff.low, diff.high, True)
            seen.add(verdict_of(d, key))
            kept = summary.differences()[f"{d.source} -> {d.target}"][key]  # what results.json keeps for the README's table
            assert kept["interval"] == pytest.approx([diff.low, diff.high]) and kept["value"] == pytest.approx(diff.value)
    assert {"better", "not distinguishable"} <= seen


def test_h2_is_better_worse_or_not_distinguishable_from_the_paired_difference_with_random():
    """The published run's case: direct 20% and the random direction 20% on the same prompts: the
    paired difference is 0, so no evidence direct transfer works (the old 10-30% band said "supported")."""
    def h2(direct: float, rand: float) -> str:
        return verdict_of(s2g(s2g_direct=entry("transfer", same(direct), "direct", S),
                              s2g_random=entry("transfer", same(rand), "random", S)), "H2")

    assert h2(0.2, 0.2) == "not distinguishable"
    assert h2(0.5, 0.0) == "better"
    assert h2(0.0, 0.5) == "worse"
    assert verdict_of(s2g(s2g_direct=entry("transfer", same(0.5), "direct", S)), "H2") == "not measured"  # no control, no verdict


def test_h3_follows_the_interval_of_the_paired_difference_not_its_point():
    d = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S), s2g_random=entry("transfer", same(0.1), "random", S, start=40),
            s2g_ridge=entry("transfer", same(0.16), "ridge", S))
    diff = d.difference(d.adapter, d.control_for(d.adapter))
    assert diff.value > 0 and diff.low < 0 < diff.high  # a point above random, an interval holding 0
    assert verdict_of(d, "H3") == "not distinguishable"
    strong = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S), s2g_random=entry("transfer", same(0.6), "random", S),
                 s2g_ridge=entry("transfer", same(0.6), "ridge", S))
    assert strong.difference(strong.adapter, strong.entries["direct"]).low > 0.2  # far above direct ...
    assert verdict_of(strong, "H3") == "not distinguishable"  # ... but no more than a random vector does
    assert "minus direct transfer" in reading(strong)


def test_the_strength_the_adapter_and_the_layer_pair_are_chosen_on_dev_records_only():
    dev_favours_ridge = {0.2: (0.6, 0.1), 0.4: (0.2, 0.9)}
    affine = {0.2: (0.3, 0.9), 0.4: (0.3, 0.9)}
    d = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S), s2g_ridge=entry("transfer", dev_favours_ridge, "ridge", S),
            s2g_affine=entry("transfer", affine, "affine", S))
    assert (d.adapter.view.kind, d.adapter.strength) == ("ridge", 0.2)
    assert d.adapter.test.value == pytest.approx(round(0.1 * len(SPLIT.test)) / len(SPLIT.test))  # reported on test
    assert d.entries["affine"].strength == 0.2  # a tie on dev goes to the first strength, whatever test says
    dev_changed = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S),
                      s2g_ridge=entry("transfer", {0.2: (0.1, 0.1), 0.4: (0.2, 0.9)}, "ridge", S),
                      s2g_affine=entry("transfer", affine, "affine", S))
    assert (dev_changed.adapter.view.kind, dev_changed.adapter.strength) == ("affine", 0.2)
    blocks = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S),
                 native_g5=entry("actdiff", {0.2: (0.7, 0.0)}, blocks=(5, 5)), native_g9=entry("actdiff", {0.2: (0.2, 1.0)}))
    assert blocks.entries["native"].view.name == "native_g5" and blocks.entries["native"].view.pair == "5"  # dev chose block 5
    assert blocks.entries["native"].test.value == 0.0  # and test reports it, though block 9 looks better on test


def test_the_test_report_reads_only_the_setting_chosen_on_dev():
    """Test records at a strength dev did not choose (or none at all: a staged sweep) change nothing."""
    full = {0.2: (0.6, 0.3), 0.4: (0.2, 0.9)}
    every = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S), s2g_ridge=entry("transfer", full, "ridge", S))
    staged_run = s2g(s2g_direct=entry("transfer", same(0.0), "direct", S), s2g_ridge=entry("transfer", full, "ridge", S, test_at=0.2))
    for d in (every, staged_run):
        assert d.adapter.strength == 0.2 and d.adapter.test.value == pytest.approx(round(0.3 * len(SPLIT.test)) / len(SPLIT.test))
    assert (every.adapter.test.low, every.adapter.test.high) == (staged_run.adapter.test.low, staged_run.adapter.test.high)
    assert set(every.adapter.per_strength) == {0.2, 0.4}  # the per-strength column is the dev success


def test_the_random_control_is_the_one_steering_the_same_block():
    d = s2g(s2g_direct=entry("transfer", same(0.3), "direct", S, blocks=(15, 5)),
            s2g_random9=entry("transfer", same(0.3), "random", S), s2g_random5=entry("transfer", same(0.0), "random", S, blocks=(15, 5)))
    assert d.control_for(d.entries["direct"]).view.name == "s2g_random5"
    assert verdict_of(d, "H2") == "better"


def test_a_run_whose_prompts_fill_one_half_only_measures_no_verdict():
    one_half = results(s2g_direct=entry("transfer", same(0.2), "direct", S), s2g_ridge=entry("transfer", same(0.5), "ridge", S))
    for method in one_half["methods"].values():
        method["records"] = [r for r in method["records"] if r["prompt"] in SPLIT.test]
    text = render(Summary.of(one_half))
    assert "do not fill both halves (0 dev, 49 test)" in text
    assert "| H3 a linear adapter (chosen on dev) works | no linear adapter entry (or no dev prompt to choose one) |" in text


def test_write_summary_draws_the_transfer_matrix_and_the_curves(results_json):
    out = write_summary(results_json)
    assert out == results_json.parent / "hypotheses.md"
    for name in ("transfer_matrix.png", "transfer_success.png"):
        assert (results_json.parent / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in out.read_text()


def test_a_two_model_study_runs_each_entry_on_its_own_model_and_reports_the_hypotheses(study_dir, capsys):
    """One run, two models: native vectors on each and a transfer between them; the study-level
    'transfer' report states H1 / H2 / H3 per direction."""
    import json
    import os

    from steerlab.cli import main

    path = study_dir / "tiny.toml"
    head = path.read_text().split("[methods.actdiff]")[0].replace("seed = 3", 'seed = 3\nreports = ["transfer"]')
    head = head.replace(', "judge"]', "]").replace('[metrics.judge]\ndata = "data/judge.jsonl"\n', "")
    entries = """
[methods.native_small]
method = "actdiff"
pairs = "data/pairs.jsonl"
layer = 2
controls = [-0.4, 0.0, 0.4]

[methods.native_wide]
method = "actdiff"
model = "tiny-llama-wide"
pairs = "data/pairs.jsonl"
layer = 1
controls = [-0.4, 0.0, 0.4]

[methods.wide_to_small]
method = "transfer"
source_model = "tiny-llama-wide"
source_layer = 1
pairs = "data/pairs.jsonl"
fit_texts = "data/judge.jsonl"
controls = [-0.4, 0.0, 0.4]
"""
    path.write_text(head + entries)
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["study"]["models"] == {"native_small": "tiny-llama", "native_wide": "tiny-llama-wide", "wide_to_small": "tiny-llama"}
    assert (run_dir / "base_generations.json").exists() and (run_dir / "base_generations.tiny-llama-wide.json").exists()
    report = results["reports"]["transfer"]
    assert "H1" in report["markdown"] and "H3" in report["markdown"]
    assert "## Report `transfer`" in (run_dir / "report.md").read_text()
    assert sorted(report["data"]["exports"]) == ["exports/native_small.gguf", "exports/native_wide.gguf", "exports/wide_to_small.gguf"]
    assert all((run_dir / p).stat().st_size > 0 for p in report["data"]["exports"])


TWO_BLOCK_STUDY = """
[study]
name = "two_blocks"
model = "tiny-llama"
seed = 3
reports = ["transfer"]

[data]
eval = "data/eval8.jsonl"

[generation]
max_new_tokens = 8
batch_size = 8

[metrics]
use = ["length"]

[methods.native_b0]
method = "actdiff"
model = "tiny-llama-wide"
pairs = "data/pairs.jsonl"
layer = 0
validate_metric = "words"
test_chosen_only = true
controls = [-0.4, -0.2, 0.0, 0.2, 0.4]

[methods.native_b1]
method = "actdiff"
model = "tiny-llama-wide"
pairs = "data/pairs.jsonl"
layer = 1
validate_metric = "words"
test_chosen_only = true
controls = [-0.4, -0.2, 0.0, 0.2, 0.4]

[methods.small_to_wide]
method = "transfer"
model = "tiny-llama-wide"
source_model = "tiny-llama"
source_layer = 2
target_layer_from = ["native_b0", "native_b1"]
pairs = "data/pairs.jsonl"
fit_texts = "data/judge.jsonl"
test_chosen_only = true
controls = [-0.4, -0.2, 0.0, 0.2, 0.4]
"""
EVAL8 = ["Why is the sky blue?", "Name a fruit.", "Hello!", "Explain why ice floats on water.", "What is rain?",
         "How do tides work?", "Tell me about cats.", "Why do we sleep?"]


def test_the_target_block_is_chosen_on_dev_from_the_native_entries_and_test_rows_stay_at_the_dev_choice(study_dir):
    import os

    from steerlab.cli import main
    from steerlab.data.split import in_dev_half
    from steerlab_plugins.transfer.layers import dev_success

    assert {in_dev_half(p) for p in EVAL8} == {True, False}  # both halves hold prompts
    write_jsonl(study_dir / "data" / "eval8.jsonl", [{"text": t} for t in EVAL8])
    (study_dir / "two.toml").write_text(TWO_BLOCK_STUDY)
    assert main(["run", str(study_dir / "two.toml"), "--out", str(study_dir / "runs"), "--no-progress"]) == 0
    run_dir = sorted((study_dir / "runs").iterdir(), key=os.path.getmtime)[-1]
    results = json.loads((run_dir / "results.json").read_text())
    methods = results["methods"]
    for name in methods:  # test prompts: the neutral control and ±c for one c (chosen on dev); dev prompts: every control
        test_controls = {r["control"] for r in methods[name]["records"] if not in_dev_half(r["prompt"])}
        dev_controls = {r["control"] for r in methods[name]["records"] if in_dev_half(r["prompt"])}
        assert dev_controls == {-0.4, -0.2, 0.0, 0.2, 0.4} and len(test_controls) == 3 and 0.0 in test_controls
    from steerlab.results import Record

    success = {n: dev_success([Record.from_json(r, n) for r in methods[n]["records"]], "words", "decrease") for n in ("native_b0", "native_b1")}
    best = max(success, key=lambda n: (success[n], n == "native_b0"))  # ties go to the first listed
    choice = methods["small_to_wide"]["analysis"]["data"]["layer_choice"]["target"]
    assert choice["entry"] == best and choice["layer"] == {"native_b0": 0, "native_b1": 1}[best]
    assert methods["small_to_wide"]["summary"]["target_layer"] == choice["layer"]
    assert "Blocks chosen on dev when the entries trained" in results["reports"]["transfer"]["markdown"]


def test_bad_layer_choice_keys_are_config_errors(study_dir):
    from steerlab.plugin import build_registry
    from steerlab.run.runner import load_study_models, preflight
    from steerlab.study.loader import load_study

    write_jsonl(study_dir / "data" / "eval8.jsonl", [{"text": t} for t in EVAL8])
    with pytest.raises(ValueError, match="target_layer_from"):
        TransferConfig(source_model="tiny-llama", pairs="p", fit_texts="f", target_layer_from=["a", "a"])
    with pytest.raises(ValueError, match="test_chosen_only"):
        TransferConfig(source_model="tiny-llama", pairs="p", fit_texts="f", test_chosen_only=True, validate_metric="")
    bad = TWO_BLOCK_STUDY.replace('target_layer_from = ["native_b0", "native_b1"]', 'target_layer_from = ["native_b0", "native_nope"]')
    (study_dir / "bad.toml").write_text(bad)
    registry = build_registry()
    study = load_study(study_dir / "bad.toml", registry)
    with pytest.raises(ConfigError, match=r"bad.toml.*\[methods.small_to_wide\].*target_layer_from.*'native_nope' is not an actdiff entry on 'tiny-llama-wide'"):
        preflight(study, registry, load_study_models(study, registry))


def test_the_transfer_data_builder_fills_both_halves_with_prompts_the_vector_and_adapter_never_read(tmp_path):
    from steerlab.api import BuildRequest, in_dev_half
    from steerlab_plugins.transfer.dataset import PER_HALF, build_transfer

    source = Path(__file__).resolve().parent.parent / "studies" / "data" / "concise"
    build_transfer(BuildRequest(tmp_path / "out", source=source))
    texts = [r["text"] for r in map(json.loads, (tmp_path / "out" / "eval_prompts.jsonl").read_text().splitlines())]
    assert len(texts) == len(set(texts)) == 2 * PER_HALF == 96
    assert sum(map(in_dev_half, texts)) == PER_HALF and in_dev_half(texts[0]) != in_dev_half(texts[1])  # alternating halves
    read = {json.loads(l)["prompt"] for l in (source / "judge.jsonl").read_text().splitlines()}
    assert not read & set(texts) and (tmp_path / "out" / "DATASHEET.md").exists()
    assert texts == [r["text"] for r in map(json.loads, (source.parent / "transfer" / "eval_prompts.jsonl").read_text().splitlines())]
    with pytest.raises(ConfigError, match="--from"):
        build_transfer(BuildRequest(tmp_path / "none"))


def test_an_entrys_headline_success_is_read_on_test_at_the_strength_dev_chose():
    from steerlab_plugins.transfer.analysis import chosen_on_dev

    dev, test = SPLIT.dev[:4], SPLIT.test[:4]
    rows = [(p, 0.0, 50.0) for p in dev + test]
    rows += [(p, 0.2, 40.0) for p in dev] + [(p, -0.2, 60.0) for p in dev]  # dev: 0.2 always works
    rows += [(p, 0.2, 55.0) for p in test] + [(p, -0.2, 45.0) for p in test]  # test: 0.2 never does
    rows += [(p, 0.4, 55.0) for p in dev] + [(p, -0.4, 45.0) for p in dev]  # dev: 0.4 never works
    rows += [(p, 0.4, 40.0) for p in test] + [(p, -0.4, 60.0) for p in test]  # test: 0.4 always does
    assert chosen_on_dev(rows, "decrease") == (0.2, 0.0)

"""Panacea's mechanics on a tiny model: lambda switching, merging, scalarisations, training."""

import pytest
import torch

from steerlab.model.engine import HookEngine
from steerlab.model.generation import tokenize_prompts
from steerlab.model.sites import match_sites
from steerlab_plugins.panacea import losses
from steerlab_plugins.panacea.layers import PanaceaAdapter


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def logits(model, batch: int = 1):
    prompts = ["Tell me about the sea", "Why is the sky blue?"][:batch]
    enc = tokenize_prompts(model, [model.format_prompt(p) for p in prompts])
    with torch.no_grad():
        return model.hf(**enc).logits


@pytest.fixture()
def adapter_and_engine(tiny_llama):
    engine = HookEngine(tiny_llama.hf)
    sites = [s.name for s in match_sites(tiny_llama.hf, ["blocks.*.attn.*_proj", "blocks.*.mlp.*_proj"])]
    adapter = PanaceaAdapter.for_engine(engine, sites, rank=2, n_prefs=3, seed=0)
    with torch.no_grad():  # stand-in for training: a non-zero U so lambda matters
        for layer in adapter.layers:
            layer.U.normal_(0, 0.2)
    return adapter, engine


def test_fresh_adapter_starts_exactly_at_the_base_model(tiny_llama):
    engine = HookEngine(tiny_llama.hf)
    sites = [s.name for s in match_sites(tiny_llama.hf, ["blocks.*.mlp.down_proj"])]
    adapter = PanaceaAdapter.for_engine(engine, sites, rank=2, n_prefs=3)
    base = logits(tiny_llama)
    with adapter.attached(engine):
        for preference in ([1.0, 0.0, 0.0], [0.2, 0.3, 0.5]):
            adapter.set_preference(preference)
            assert torch.equal(logits(tiny_llama), base)


def test_lambda_switch_changes_output_without_rehooking(tiny_llama, adapter_and_engine):
    adapter, engine = adapter_and_engine
    with adapter.attached(engine):
        hooks = hook_count(tiny_llama.hf)
        adapter.set_preference([1.0, 0.0, 0.0])
        first = logits(tiny_llama)
        adapter.set_preference([0.0, 0.0, 1.0])
        second = logits(tiny_llama)
        adapter.set_preference([1.0, 0.0, 0.0])
        again = logits(tiny_llama)
        assert hook_count(tiny_llama.hf) == hooks
    assert not torch.allclose(first, second, atol=1e-4)
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2", "tiny-phi3"])
def test_merged_equals_unmerged_and_unmerge_restores_weights_bit_for_bit(name, registry):
    """Also on GPT-2's Conv1D (weights stored (in, out)) and Phi-3's fused qkv_proj / gate_up_proj."""
    from steerlab.model.zoo import load_model

    model = load_model(name, registry.models, device="cpu")
    engine = HookEngine(model.hf)
    sites = [s.name for s in match_sites(model.hf, ["blocks.*.attn.*_proj", "blocks.*.mlp.*_proj"])]
    adapter = PanaceaAdapter.for_engine(engine, sites, rank=2, n_prefs=3, seed=0)
    with torch.no_grad():
        for layer in adapter.layers:
            layer.U.normal_(0, 0.2)
    weights = {n: p.detach().clone() for n, p in model.hf.named_parameters()}
    preference = [0.2, 0.5, 0.3]
    adapter.set_preference(preference)
    with adapter.attached(engine):
        unmerged = logits(model)
    with adapter.merged(engine, preference):
        assert hook_count(model.hf) == 0
        merged = logits(model)
    assert not torch.allclose(merged, logits(model), atol=1e-3)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    for name, param in model.hf.named_parameters():
        assert torch.equal(param, weights[name]), name


def test_contributions_split_shared_and_preference_terms(adapter_and_engine):
    adapter, _ = adapter_and_engine
    layer = adapter.layers[0]
    adapter.set_preference([1.0, 0.0, 0.0])
    terms = layer.contributions()
    assert terms.shape == (2 + 3,)
    assert terms[3] == 0 and terms[4] == 0 and terms[2] > 0  # only lambda_1's term is alive
    expected = layer.sigma[0].abs() * layer.U[:, 0].norm() * layer.V[:, 0].norm()
    torch.testing.assert_close(terms[0], expected)


def test_linear_scalarisation_and_tchebycheff_match_hand_computed_values():
    per_dim = torch.tensor([1.0, 2.0, 4.0])
    preference = torch.tensor([0.5, 0.25, 0.25])
    assert losses.get("ls")(per_dim, preference).item() == pytest.approx(0.5 * 1 + 0.25 * 2 + 0.25 * 4)
    assert losses.get("tche")(per_dim, preference).item() == pytest.approx(max(0.5 * 1, 0.25 * 2, 0.25 * 4))
    assert losses.get("tche", ideal=1.0)(per_dim, preference).item() == pytest.approx(max(0.0, 0.25 * 1, 0.25 * 3))


def test_state_round_trip_rebuilds_the_same_adapter(tiny_llama, adapter_and_engine):
    adapter, engine = adapter_and_engine
    rebuilt = PanaceaAdapter.from_state(adapter.state(), adapter.sites, rank=2, n_prefs=3)
    adapter.requires_grad_(False)  # both frozen: the same (fused) path, so bit-equal answers are expected
    for preference in ([0.0, 1.0, 0.0], [0.3, 0.3, 0.4]):
        adapter.set_preference(preference)
        rebuilt.set_preference(preference)
        with adapter.attached(engine):
            a = logits(tiny_llama)
        with rebuilt.attached(engine):
            b = logits(tiny_llama)
        assert torch.equal(a, b)


def test_moving_the_adapter_moves_the_preference_every_layer_reads(adapter_and_engine):
    """Regression: layers once kept the pre-.to() lambda tensor (a CPU tensor under a CUDA model)."""
    adapter, _ = adapter_and_engine
    adapter.to(torch.float64)
    adapter.set_preference([0.0, 1.0, 0.0])
    for layer in adapter.layers:
        assert layer.preference is adapter.preference and layer.preference.dtype == torch.float64
        assert layer.sigma_full()[0, -2] == layer.scale  # s_l * lambda_2 with lambda_2 = 1


def test_one_preference_per_batch_row_equals_each_preference_alone(tiny_llama, adapter_and_engine):
    adapter, engine = adapter_and_engine
    prefs = [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]
    enc = tokenize_prompts(tiny_llama, [tiny_llama.format_prompt("Tell me about the sea")] * 2)
    with adapter.attached(engine), torch.no_grad():
        adapter.set_preference(torch.tensor(prefs))
        both = tiny_llama.hf(**enc).logits
        alone = []
        for p in prefs:
            adapter.set_preference(p)
            alone.append(tiny_llama.hf(**{k: v[:1] for k, v in enc.items()}).logits)
    torch.testing.assert_close(both, torch.cat(alone), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both[0], both[1])


def test_generate_with_pref_and_inspect_svd_on_a_finished_run(study_dir, capsys):
    """The users' tools: answers at several preferences side by side, and the SVD heatmap."""
    import os

    from steerlab.cli import main

    text = (study_dir / "tiny.toml").read_text().split("[methods.actdiff]")[0]
    path = study_dir / "pan.toml"
    path.write_text(text.replace('"similarity", "judge"', '"similarity"').replace('[metrics.judge]\ndata = "data/judge.jsonl"\n', "") +
                    '[methods.panacea]\ndata = "data/sft.jsonl"\nrank = 2\nsteps = 2\nper_dimension = 1\nmax_tokens = 32\n'
                    'controls = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]\n')
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    capsys.readouterr()
    assert main(["generate", str(run_dir), "Why?", "--control", "1,0,0", "--control", "humorous=0.5,philosophical=0.5",
                 "--max-new-tokens", "3"]) == 0
    printed = capsys.readouterr().out
    assert "[panacea lambda=(1.00,0.00,0.00)]" in printed and "[panacea lambda=(0.00,0.50,0.50)]" in printed
    assert main(["inspect", "svd", str(run_dir), "--control", "0.2,0.5,0.3"]) == 0
    assert "preference share" in capsys.readouterr().out
    assert (run_dir / "inspect" / "svd_panacea.png").stat().st_size > 1000
    for bad in ("0.5,0.6,0", "nan,0.5,0.5", "funny=1", "-0.5,1.5,0"):
        assert main(["generate", str(run_dir), "Why?", "--control", bad]) == 2
        assert "--control" in capsys.readouterr().err


def test_update_norms_match_the_formed_matrices_and_corner_spread_cancels_the_shared_part(tiny_llama):
    from steerlab_plugins.panacea.inspect import contribution_grid, update_norm

    torch.manual_seed(1)
    u, s, v = torch.randn(7, 3), torch.randn(3), torch.randn(5, 3)
    assert update_norm(u, s, v) == pytest.approx(float((u * s @ v.T).norm()), rel=1e-5)
    engine = HookEngine(tiny_llama.hf)
    site = "blocks.1.mlp.down_proj"
    adapter = PanaceaAdapter.for_engine(engine, [site], rank=2, n_prefs=3, seed=0, pref_rank=2)
    with torch.no_grad():
        adapter.layers[0].U.normal_(0, 0.3)
    layer, w0 = adapter.layers[0], 2.0
    _, _, grids = contribution_grid(adapter, [0.2, 0.3, 0.5], {site: w0})
    def dw(pref):
        adapter.set_preference(pref)
        return (layer.U * layer.sigma_full()[0]) @ layer.V.T
    pairs = [([1.0, 0, 0], [0, 1.0, 0]), ([1.0, 0, 0], [0, 0, 1.0]), ([0, 1.0, 0], [0, 0, 1.0])]
    expected = sum(float((dw(a) - dw(b)).norm()) for a, b in pairs) / 3 / w0
    assert float(grids["corners"][0, 0]) == pytest.approx(expected, rel=1e-4)
    assert layer.U.shape[1] == 2 + 3 * 2  # k shared + m * r_p preference terms


def test_a_frozen_adapter_precomputes_sigma_and_answers_exactly_as_before(tiny_llama, adapter_and_engine):
    adapter, engine = adapter_and_engine
    adapter.set_preference([0.1, 0.6, 0.3])
    with adapter.attached(engine):
        live = logits(tiny_llama)
    adapter.requires_grad_(False)
    adapter.set_preference([0.1, 0.6, 0.3])
    assert adapter.shared.frozen is not None and adapter.shared.frozen.shape[:2] == (len(adapter.layers), 1)
    with adapter.attached(engine):
        torch.testing.assert_close(logits(tiny_llama), live, atol=1e-6, rtol=1e-6)
    rows = torch.tensor([[0.1, 0.6, 0.3], [0.8, 0.1, 0.1]])  # the per-row fused path, and a switch back
    adapter.set_preference(rows)
    with adapter.attached(engine):
        per_row = logits(tiny_llama, batch=2)
    adapter.requires_grad_(True)
    adapter.set_preference(rows)
    assert adapter.shared.frozen is None
    with adapter.attached(engine), torch.no_grad():
        torch.testing.assert_close(per_row, logits(tiny_llama, batch=2), atol=1e-6, rtol=1e-6)
    adapter.set_preference([0.1, 0.6, 0.3])
    with adapter.attached(engine):  # differs from the other lambda: the fused path really steers
        assert not torch.allclose(logits(tiny_llama, batch=2)[1], per_row[1], atol=1e-4)


def test_held_out_prompts_never_train_and_the_best_held_out_parameters_are_kept(tiny_llama):
    from steerlab.training import GroupSampler, SFTExample, Validation, held_out, optimise

    examples = {g: [SFTExample(f"Question {i}?", f"{g} answer {i}", g) for i in range(40)] for g in ("a", "b")}
    sampler = GroupSampler(tiny_llama, examples, 48, 0, holdout=0.3)
    heldout_prompts = {p for p in (f"Question {i}?" for i in range(40)) if held_out(p, 0.3)}
    assert 0 < len(heldout_prompts) < 40 and len(sampler.heldout["a"]) == len(heldout_prompts)
    weight = torch.nn.Parameter(torch.tensor([3.0]))
    scores = iter([5.0, 1.0, 4.0])  # the second measurement is the best

    def measure():
        return {"mean": next(scores), "at": float(weight)}

    log = optimise([weight], lambda step: ((weight - 10) ** 2, {}), 3, 0.5, lambda it, d, n: it, "t",
                   validation=Validation(measure, 1))
    assert log[-1]["best_step"] == 1 and float(weight) == pytest.approx(log[1]["heldout.at"])


def test_training_forward_builds_all_singular_values_once_and_gives_the_per_layer_gradients(tiny_llama, adapter_and_engine, monkeypatch):
    """The batched singular values (one stack per forward) must change nothing but the kernel
    count: same loss and same gradient for every parameter as each layer building its own."""
    from steerlab_plugins.panacea.layers import PanaceaLayer

    adapter, engine = adapter_and_engine
    with torch.no_grad():
        for i, layer in enumerate(adapter.layers):
            layer.scale.fill_(0.5 + 0.01 * i)
    enc = tokenize_prompts(tiny_llama, [tiny_llama.format_prompt(p) for p in ["Tell me about the sea", "Why is the sky blue?"]])
    calls = []
    real = PanaceaLayer.sigma_full
    monkeypatch.setattr(PanaceaLayer, "sigma_full", lambda self: calls.append(1) or real(self))

    def loss_and_grads(attach):
        adapter.zero_grad(set_to_none=True)
        adapter.set_preference([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
        with attach():
            loss = tiny_llama.hf(**enc).logits.float().pow(2).mean()
            assert adapter.shared.batched is None  # dropped once the forward returned
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in adapter.parameters()]

    batched_loss, batched = loss_and_grads(lambda: adapter.attached(engine))
    assert calls == []  # no layer built its own singular values
    per_layer = lambda: engine.update_outputs({s: l.add_into for s, l in zip(adapter.sites, adapter.layers)})  # noqa: E731
    loss, grads = loss_and_grads(per_layer)
    assert len(calls) == len(adapter.layers)
    assert torch.allclose(batched_loss, loss, rtol=1e-6)
    for a, b in zip(batched, grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)
    names = [n for n, _ in adapter.named_parameters()]
    assert batched[names.index("shared.sigma")].abs().sum() > 0  # sigma got gradient: the check is not vacuous

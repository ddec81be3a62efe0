"""Metrics and the judge on hand-made inputs."""

import numpy as np
import pytest

from steerlab.metrics.builtin import distinct_ngrams
from steerlab.metrics.embedding import SentenceEmbedder
from steerlab.metrics.judge import StyleJudge
from steerlab.results import Record, SweepPoint
from steerlab_plugins.actdiff.analysis import source_validation, usable_range

from conftest import BANK_TEXTS, CAT_TEXTS


@pytest.fixture(scope="module")
def embedder():
    return SentenceEmbedder.load()


def test_distinct_trigrams_catch_degenerate_loops():
    assert distinct_ngrams("the cat sat on the mat today") == 1.0
    assert distinct_ngrams("A day to! " * 20) < 0.2
    assert distinct_ngrams("two words") == 1.0


def test_judge_separates_distinct_styles_and_round_trips_without_pickle(embedder):
    judge = StyleJudge.train(CAT_TEXTS + BANK_TEXTS, ["cats"] * 12 + ["banks"] * 12, embedder, 0.25, 1.0, 0)
    assert judge.report["accuracy"] >= 0.8
    rebuilt = StyleJudge.from_artifact(judge.to_artifact(), embedder)
    texts = ["My kitten naps in the sun.", "Bond yields rose after the rate decision."]
    np.testing.assert_allclose(rebuilt.probabilities(texts), judge.probabilities(texts), rtol=1e-5)
    probs = judge.probabilities(texts)
    assert probs[0, judge.classes.index("cats")] > 0.5 > probs[1, judge.classes.index("cats")]


def test_three_style_judge_scores_are_independent_one_vs_rest(embedder):
    sports = ["The striker scored twice in the second half.", "She won the marathon in record time.",
              "The team trained hard before the final.", "He hit a home run in the ninth inning.",
              "The goalkeeper saved a penalty.", "Fans cheered as the relay team crossed the line.",
              "The tennis match went to five sets.", "The cyclist climbed the mountain stage.",
              "Our coach changed the lineup.", "The boxer won by knockout.", "They qualified for the playoffs.",
              "The swimmer broke the national record."]
    judge = StyleJudge.train(CAT_TEXTS + BANK_TEXTS + sports, ["cats"] * 12 + ["banks"] * 12 + ["sports"] * 12, embedder, 0.25, 1.0, 0)
    probs = judge.probabilities(["A cat chased the ball.", "Interest rates and the football final."])
    assert probs.shape == (2, 3) and not np.allclose(probs.sum(1), 1.0)


def test_source_validation_counts_prompts_that_move_both_ways():
    records = [Record(p, c, f"{c:+g}", "", {"words": w}) for p, c, w in [
        ("a", 0.0, 100), ("a", 0.5, 50), ("a", -0.5, 150),   # moves both ways: hit
        ("b", 0.0, 100), ("b", 0.5, 50), ("b", -0.5, 90),    # shortens under both signs: miss
    ]]
    assert source_validation(records, "words", "decrease") == {"source_validation@0.5": 0.5}


def test_usable_range_stops_at_the_first_disfluent_control():
    rows = [SweepPoint(c, f"{c:+g}", 1, {"perplexity": p, "distinct3": d}) for c, p, d in
            [(-0.4, 9.0, 0.9), (-0.2, 2.0, 0.9), (0.0, 2.0, 0.9), (0.2, 3.0, 0.8), (0.4, 3.5, 0.2)]]
    assert usable_range(rows) == (-0.2, 0.2)


def test_the_likelihood_judge_gives_a_posterior_over_styles_whatever_the_batching(tiny_llama, registry, tmp_path):
    """p(style | request, answer) sums to 1 over the styles and does not depend on the batch size."""
    import json
    from pathlib import Path

    from steerlab.metrics.likelihood import posteriors, read_systems
    from steerlab.lab import Lab

    styles = tmp_path / "styles.json"
    styles.write_text(json.dumps({"echo": {"system": "zzzz zzzz zzzz"}, "other": {"system": "Be kind."}}))
    systems = read_systems(Path(styles))
    lab = Lab.for_model(tiny_llama, registry, tmp_path)
    probs = posteriors(lab.model, systems, ["Why?", "Hi"], ["zzzz zzzz", "zzzz"], batch_size=1)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0)
    batched = posteriors(lab.model, systems, ["Why?", "Hi"], ["zzzz zzzz", "zzzz"], batch_size=8)
    np.testing.assert_allclose(batched, probs, atol=1e-4)


def test_the_likelihood_judge_scores_wins_against_the_unsteered_answer(tiny_llama, registry, tmp_path):
    """lm.STYLE.win: the same text ties; otherwise the answer with the higher posterior wins, per style."""
    import json

    from steerlab.api import Generation, MetricContext, Sample
    from steerlab.metrics.likelihood import LikelihoodJudgeConfig, LikelihoodJudgeMetric, posteriors, read_systems
    from steerlab.lab import Lab

    styles = tmp_path / "styles.json"
    styles.write_text(json.dumps({"echo": {"system": "zzzz zzzz zzzz"}, "other": {"system": "Be kind."}}))
    lab = Lab.for_model(tiny_llama, registry, tmp_path)
    config = LikelihoodJudgeConfig(styles=str(styles), versus_base=True)
    assert LikelihoodJudgeMetric().outputs(config) == ["lm.echo", "lm.other", "lm.echo.win", "lm.other.win"]
    gen = lambda text: Generation("Why?", text, [], [], True)  # noqa: E731
    base = gen("Be kind.")
    samples = [Sample("Why?", 1.0, "+1", gen(text), base) for text in ("zzzz zzzz", "Be kind.")]
    rows = LikelihoodJudgeMetric().score(samples, MetricContext(lab=lab, config=config, folder=tmp_path))
    assert rows[1]["lm.echo.win"] == rows[1]["lm.other.win"] == 0.5
    mine, theirs = posteriors(lab.model, read_systems(styles), ["Why?", "Why?"], ["zzzz zzzz", "Be kind."], 4)
    assert rows[0]["lm.echo.win"] == (1.0 if mine[0] > theirs[0] else 0.0)
    assert rows[0]["lm.other.win"] == 1.0 - rows[0]["lm.echo.win"]


def test_length_sorted_scoring_returns_each_pair_in_input_order(tiny_llama):
    """Scoring groups pairs by length to waste little on padding; every result must still land on
    its own pair, equal to scoring it alone."""
    from steerlab.model.batching import by_length
    from steerlab.model.scoring import batched_sequence_logprobs, sequence_logprobs

    assert by_length([5, 1, 3, 1], 2) == [[1, 3], [2, 0]]
    tok = tiny_llama.tokenizer
    texts = [("Why is the sky blue?", "Light scatters off the air, blue the most."), ("Hi", "Hello."),
             ("Tell me a long story about a cat", "Once upon a time a cat sat and sat and sat."), ("Ok", "Yes")]
    pairs = [(tok(c, add_special_tokens=False)["input_ids"], tok(t, add_special_tokens=False)["input_ids"]) for c, t in texts]
    totals, counts = batched_sequence_logprobs(tiny_llama, pairs, batch_size=2)
    for pair, total, count in zip(pairs, totals, counts):
        alone, n = sequence_logprobs(tiny_llama, [pair])
        assert count == int(n) == len(pair[1])
        assert abs(total - float(alone)) < 1e-3


def test_a_shared_context_prefix_runs_once_and_changes_no_score(tiny_model):
    """Rows that begin with the same chat header (a style's system prompt) score the same when the
    header's KV is computed once and reused, left padding between it and each row's own tokens."""
    from steerlab.model.engine import HookEngine
    from steerlab.model.scoring import SharedPrefix, batched_sequence_logprobs, sequence_logprobs

    tok = tiny_model.tokenizer
    system = "You are a stand-up comedian. Answer every question with jokes and puns."
    requests = ["Why is the sky blue?", "Hi", "Tell me a long story about a cat who sat on a mat all day", "Ok"]
    contexts = [tok(tiny_model.format_prompt(r, system), add_special_tokens=False)["input_ids"] for r in requests]
    answers = [tok(a, add_special_tokens=False)["input_ids"] for a in ["Light scatters.", "Hello there, friend.", "Once a cat sat.", "Yes"]]
    pairs = list(zip(contexts, answers))
    prefix = SharedPrefix.of(tiny_model, contexts)
    if tiny_model.name == "tiny-gemma3":  # sliding-window layers count cache slots: never shared, rows scored whole
        assert prefix is None
    else:
        assert prefix is not None and prefix.length >= 10 and all(c[:prefix.length] == contexts[0][:prefix.length] for c in contexts)
    totals, counts = batched_sequence_logprobs(tiny_model, pairs, batch_size=3)
    for pair, total, count in zip(pairs, totals, counts):
        alone, n = sequence_logprobs(tiny_model, [pair])  # no prefix: the whole context in the row
        assert count == int(n) == len(pair[1])
        assert abs(total - float(alone)) < 1e-3
    with HookEngine(tiny_model.hf).edit({"blocks.1.resid_post": lambda a: a + 1.0}):
        assert SharedPrefix.of(tiny_model, contexts) is None  # an intervention may act per row: never shared
    assert SharedPrefix.of(tiny_model, [c[-5:] for c in contexts]) is None  # nothing long enough in common


def test_the_likelihood_judge_reports_on_the_texts_the_minilm_judge_held_out(tmp_path, monkeypatch):
    """With the same test_fraction and seed, both judges' accuracies are measured on the same texts."""
    import json
    from types import SimpleNamespace

    from steerlab.metrics import likelihood
    from steerlab.metrics.judge import heldout_split
    from steerlab.metrics.likelihood import LikelihoodJudgeConfig, LikelihoodJudgeMetric
    from sklearn.model_selection import train_test_split

    labels = ["a", "b", "c"] * 8
    rows = [{"text": f"text {i}", "label": label, "prompt": f"prompt {i}"} for i, label in enumerate(labels)]
    data, styles = tmp_path / "judge.jsonl", tmp_path / "styles.json"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    styles.write_text(json.dumps({s: {"system": f"Be {s}."} for s in "abc"}))
    _, test = heldout_split(labels, 0.25, seed=3)
    texts = [f"text {i}" for i in range(len(labels))]
    assert sorted(test) == sorted(int(t.split()[1]) for t in train_test_split(texts, test_size=0.25, random_state=3, stratify=labels)[1])
    seen = []

    def fake_posteriors(lab, systems, prompts, answers, batch_size):
        seen.extend(answers)
        return np.tile(np.eye(3)[0], (len(answers), 1))

    monkeypatch.setattr(likelihood, "posteriors", fake_posteriors)
    ctx = SimpleNamespace(config=LikelihoodJudgeConfig(styles=str(styles), data=str(data), test_fraction=0.25), lab=SimpleNamespace(study_seed=3, model=SimpleNamespace(name="tiny")))
    section = LikelihoodJudgeMetric().section(ctx)
    assert seen == [f"text {i}" for i in sorted(test)] and len(seen) == 6
    assert section.summary["accuracy"] == pytest.approx(2 / 6)  # every text called "a": the two held-out a's are right


def test_a_training_step_split_by_length_gives_the_same_group_losses_and_gradients(tiny_model):
    """On a CPU ``group_losses`` runs a step's rows as two length-sorted forwards (less padding);
    each group's mean token loss and the gradient must equal one padded forward's."""
    import torch

    from steerlab.model.scoring import target_logits, token_logprobs
    from steerlab.training import group_losses, step_chunks

    tok = tiny_model.tokenizer
    texts = [("Why is the sky blue?", "Light scatters off the air, blue the most, and so on and on."), ("Hi", "Hello."),
             ("Tell me a long story about a cat", "Once upon a time a cat sat."), ("Ok", "Yes"),
             ("What is rain?", "Water falling from clouds."), ("Name a colour", "Red, or maybe a long list of many colours.")]
    pairs = [(tok(c, add_special_tokens=False)["input_ids"], tok(t, add_special_tokens=False)["input_ids"]) for c, t in texts]
    index = torch.tensor([0, 0, 1, 1, 2, 2])
    lengths = [len(c) + len(t) for c, t in pairs]
    chunks = step_chunks(lengths, torch.device("cpu"))
    assert len(chunks) == 2 and sorted(i for c in chunks for i in c) == list(range(6))
    assert max(lengths[i] for i in chunks[0]) <= min(lengths[i] for i in chunks[1])  # sorted by length
    assert step_chunks(lengths, torch.device("cuda")) == [list(range(6))]  # a GPU: one forward
    assert step_chunks(lengths[:3], torch.device("cpu")) == [[0, 1, 2]]

    weight = tiny_model.hf.get_input_embeddings().weight
    weight.requires_grad_(True)
    try:
        split = group_losses(tiny_model, pairs, index, 3)
        (grad_split,) = torch.autograd.grad(split.sum(), weight)
        one = group_losses(tiny_model, pairs, index, 3, split=False)  # one forward, in input order
        logits, targets, mask = target_logits(tiny_model, pairs)  # one padded forward
        loss = -(token_logprobs(logits, targets) * mask).sum(1)
        whole = torch.stack([loss[index == g].sum() / mask[index == g].sum() for g in range(3)])
        (grad_whole,) = torch.autograd.grad(whole.sum(), weight)
    finally:
        weight.requires_grad_(False)
    assert torch.allclose(split, whole, atol=1e-5)
    assert torch.allclose(one.detach(), whole.detach(), atol=1e-5)
    assert torch.allclose(grad_split, grad_whole, atol=1e-5)

"""The fixed instruction and fluency scales: calibration, levels, the scales file, the labelled text, the builder."""

import json
import math
import re

import numpy as np
import pytest

from steerlab.analysis import scale_data
from steerlab.analysis.scale_data import Example, calibrate, fluency_examples, held_out, instruction_examples
from steerlab.analysis.scales import Scale, accuracy, fit_scale, load_scales
from steerlab.cli import main
from steerlab.errors import ConfigError
from steerlab.metrics.builtin import distinct_ngrams


def independent_cut(x: np.ndarray, y: np.ndarray) -> float:
    """The same model as sklearn's (L2 with C = 1 on the coefficient only, balanced class weights,
    the feature standardised), fitted by scipy on its written-out objective."""
    from scipy.optimize import minimize

    mean, std = x.mean(), x.std()
    z = (x - mean) / std
    weight = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))

    def objective(theta: np.ndarray) -> float:
        w, b = theta
        margin = (2 * y - 1) * (w * z + b)
        return float(np.sum(weight * np.logaddexp(0.0, -margin)) + 0.5 * w**2)

    w, b = minimize(objective, np.zeros(2), method="BFGS", options={"gtol": 1e-9}).x
    return float(mean - std * b / w)


def test_the_cut_points_are_those_of_an_independently_fitted_logistic_regression():
    rng = np.random.default_rng(0)
    levels = np.repeat([0, 1, 2], [40, 30, 50])
    values = rng.normal([0.1, 0.35, 0.6], 0.08, size=(len(levels), 3))[np.arange(len(levels)), levels]
    scale = fit_scale("relevance", values, levels, higher_is_better=True)
    for k in (1, 2):
        assert scale.cuts[k - 1] == pytest.approx(independent_cut(values, (levels >= k).astype(int)), abs=1e-4)
    assert 0.1 < scale.cuts[0] < 0.35 < scale.cuts[1] < 0.6  # between the classes' centres
    down = fit_scale("log_perplexity", -values, levels, higher_is_better=False)
    assert down.cuts == pytest.approx((-scale.cuts[0], -scale.cuts[1]), abs=1e-6)


def test_labels_that_do_not_rise_along_the_feature_are_refused():
    levels = np.repeat([0, 1, 2], 10)
    values = np.linspace(1.0, 0.0, 30)  # level falls as the feature rises
    with pytest.raises(ValueError, match="do not rise with higher values"):
        fit_scale("relevance", values, levels, higher_is_better=True)


def test_a_level_counts_the_cuts_passed_in_the_feature_direction_and_missing_is_zero():
    up = Scale("relevance", True, (0.2, 0.4))
    assert [up.level(v) for v in (0.1, 0.3, 0.5, float("nan"))] == [0, 1, 2, 0]
    down = Scale("log_perplexity", False, (3.0, 2.0))
    assert [down.level(v) for v in (3.5, 2.5, 1.0)] == [0, 1, 2]
    assert down.level_of({"perplexity": math.e**2.5}) == 1 and down.level_of({}) == 0


def test_held_out_accuracy_is_the_mean_over_requests_with_an_interval():
    correct = [True, True, False, True] * 10
    groups = [f"r{i // 2}" for i in range(40)]  # 20 requests of two examples each
    e = accuracy(correct, groups)
    assert e.value == pytest.approx(0.75) and e.low < 0.75 < e.high and e.n_prompts == 20


def toy_examples() -> tuple[list[Example], dict[str, np.ndarray]]:
    """Labelled examples with features that separate their levels (plus noise), over 40 requests."""
    rng = np.random.default_rng(1)
    examples, rows = [], []
    for r in range(40):
        prompt = f"request {r}"
        for level in (2, 1, 0):
            examples.append(Example(prompt, "t", level, "instruction", f"i{level}"))
            rows.append((0.1 + 0.25 * level + rng.normal(0, 0.05), np.nan, 0.9))
        examples.append(Example(prompt, "t", 2, "fluency", "own"))
        rows.append((0.6, 2.0 + rng.normal(0, 0.2), 0.9 + rng.normal(0, 0.03)))
        for level, cue in ((1, "loss"), (0, "loss"), (1, "repetition"), (0, "repetition")):
            examples.append(Example(prompt, "t", level, cue, f"{cue}{level}"))
            loss = 2.0 + (2 - level) * 1.5 if cue == "loss" else 1.0
            distinct = 0.9 if cue == "loss" else 0.3 + 0.25 * level
            rows.append((0.6, loss + rng.normal(0, 0.2), distinct + rng.normal(0, 0.03)))
    values = np.array(rows)
    return examples, {"relevance": values[:, 0], "log_perplexity": values[:, 1], "distinct3": values[:, 2]}


def test_calibration_fits_on_some_requests_reads_accuracy_on_the_others_and_round_trips(tmp_path):
    examples, values = toy_examples()
    scales = calibrate(examples, values, "tiny-llama", {"source": "toy"})
    test = np.array([held_out(e.prompt) for e in examples])
    fit_rows = np.array([e.cue == "instruction" for e in examples]) & ~test
    expected = fit_scale("relevance", values["relevance"][fit_rows], np.array([e.level for e in examples])[fit_rows], True)
    assert scales.components["instruction"][0].cuts == pytest.approx(expected.cuts)  # fitted on the calibration requests only
    assert scales.meta["held-out requests"] == len({e.prompt for e, t in zip(examples, test) if t}) > 0
    for cue in (*scales.components["instruction"], *scales.components["fluency"]):
        assert all(row["value"] > 0.9 for row in cue.held_out)  # separable toy data
    assert scales.meta["held_out_accuracy"]["fluency"]["all"]["value"] > 0.9
    path = tmp_path / "scales.json"
    path.write_text(json.dumps(scales.to_json()))
    again = load_scales(path)
    assert again.components["fluency"][1].cuts == scales.components["fluency"][1].cuts and again.model == "tiny-llama"
    loop = {"relevance": 0.6, "perplexity": math.exp(1.0), "distinct3": 0.3}  # predictable but looping
    assert again.level("fluency", loop) == 0 and again.level("instruction", loop) == 2


def test_a_cue_whose_loss_falls_for_worse_text_is_refused_with_the_builders_name():
    examples, values = toy_examples()
    values["log_perplexity"] = -values["log_perplexity"]  # a model that finds shuffled text likelier
    with pytest.raises(ConfigError, match="compare-scales: feature 'log_perplexity'"):
        calibrate(examples, values, "tiny-llama", {})


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("components"), "key 'components'"),
    (lambda d: d["components"]["fluency"][0].update(feature="vibes"), "key 'components.fluency[0].feature'"),
    (lambda d: d["components"]["instruction"][0].update(cuts=[0.4, 0.2]), "key 'components.instruction[0].cuts' must be ordered"),
    (lambda d: d["components"]["instruction"][0].update(cuts=[0.4]), "key 'components.instruction[0].cuts' expected two"),
    (lambda d: d.update(version=0), "key 'version'"),
])
def test_a_malformed_scales_file_names_the_file_and_key(tmp_path, change, message):
    examples, values = toy_examples()
    data = calibrate(examples, values, "tiny-llama", {}).to_json()
    change(data)
    path = tmp_path / "scales.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_scales(path)
    assert str(path) in str(caught.value)


def test_the_style_data_gives_one_answer_per_request_cut_to_the_answers_length(tmp_path):
    rows = [{"prompt": f"Q{i}?", "style": s, "response": f"{s} " + " ".join(["word"] * 80)} for i in range(4) for s in ("a", "b")]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = scale_data.read_answers(tmp_path)
    assert [p for p, _ in answers] == ["Q0?", "Q1?", "Q2?", "Q3?"]
    assert [t.split()[0] for _, t in answers] == ["a", "b", "a", "b"]  # the styles in turn
    assert all(len(t.split()) == scale_data.MAX_WORDS for _, t in answers)


def test_the_labelled_text_is_made_as_its_level_says():
    answers = [(f"Question {i}?", " ".join(f"w{i}_{k}" for k in range(20))) for i in range(4)]
    instruction = instruction_examples(answers)
    assert [e.level for e in instruction[:3]] == [2, 1, 0]
    own, drift, off = (e.text.split() for e in instruction[:3])
    assert own == answers[0][1].split() and drift[:10] == own[:10] and drift[10:] != own[10:] and not set(off) & set(own)
    assert all(e.prompt == "Question 0?" for e in instruction[:3])
    fluency = fluency_examples(answers[:1])
    texts = {e.kind: e.text for e in fluency}
    assert sorted(texts["all words shuffled"].split()) == sorted(own) and texts["all words shuffled"] != answers[0][1]
    assert texts["second half shuffled"].split()[:10] == own[:10]
    assert distinct_ngrams(texts["a loop"]) < distinct_ngrams(texts["half, then a loop"]) < distinct_ngrams(answers[0][1]) == 1.0
    assert all(len(t.split()) == 20 for t in texts.values())


def test_the_features_on_a_tiny_model_are_what_the_run_metrics_compute(registry):
    """relevance: MiniLM cosine of text and request; log-perplexity: the mean token loss of the
    text given the plain prompt, as the fluency metric computes it (here by a hand-written
    forward pass); distinct3: the metric's own function."""
    import torch

    from steerlab.data.files import BuildRequest
    from steerlab.metrics.embedding import SentenceEmbedder
    from steerlab.model.zoo import load_model

    examples = [Example("Why is the sky blue?", "Light scatters in air.", 2, "fluency", "own"),
                Example("Name a fruit.", "air in scatters Light.", 0, "loss", "shuffled"),
                Example("Name a fruit.", "An apple.", 2, "instruction", "own"), Example("Why is the sky blue?", "Blue light.", 0, "instruction", "x")]
    got = scale_data.features(examples, BuildRequest(out_dir=None, model="tiny-llama", device="cpu", batch_size=2))
    emb = SentenceEmbedder.load()
    cosines = np.sum(emb.embed([e.text for e in examples]) * emb.embed([e.prompt for e in examples]), 1)
    assert got["relevance"][2:] == pytest.approx(cosines[2:], abs=1e-5) and np.isnan(got["relevance"][:2]).all()  # fluency texts need none
    model = load_model("tiny-llama", registry.models, device="cpu")
    ids = lambda t: model.tokenizer(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    for i, e in enumerate(examples[:2]):
        context, target = ids(model.format_prompt(e.prompt)), ids(e.text)
        with torch.no_grad():
            logits = model.hf(input_ids=torch.tensor([context + target])).logits[0]
        logp = torch.log_softmax(logits[len(context) - 1 : -1].float(), -1)
        assert got["log_perplexity"][i] == pytest.approx(float(-logp[torch.arange(len(target)), torch.tensor(target)].mean()), abs=1e-4)
    assert np.isnan(got["log_perplexity"][2:]).all()  # instruction examples need no loss
    assert list(got["distinct3"]) == [distinct_ngrams(e.text) for e in examples]


def test_the_builder_writes_scales_and_a_sheet_a_compare_study_can_use(tmp_path, monkeypatch, capsys):
    """`steerlab data build compare-scales` on a small style data set, features replaced by ones
    that separate the levels (a random tiny model's loss cannot tell shuffled text from real:
    the real feature code is checked above)."""
    rows = [{"prompt": f"Question number {i}?", "style": s, "response": f"{s} answer {i} with several distinct words in it"}
            for i in range(30) for s in ("helpful", "humorous")]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def separable(examples, request):
        rng = np.random.default_rng(2)
        loss = [2.0 + (2 - e.level) * 1.5 if e.cue == "loss" else 2.0 if e.cue == "fluency" else 1.0 for e in examples]
        distinct = [0.3 + 0.25 * e.level if e.cue == "repetition" else 0.9 for e in examples]
        n = len(examples)
        return {"relevance": np.array([0.1 + 0.25 * e.level for e in examples]) + rng.normal(0, 0.03, n),
                "log_perplexity": np.array(loss) + rng.normal(0, 0.1, n), "distinct3": np.array(distinct) + rng.normal(0, 0.02, n)}

    monkeypatch.setattr(scale_data, "features", separable)
    out = tmp_path / "out"
    assert main(["data", "build", "compare-scales", "--from", str(tmp_path / "src"), "--out", str(out), "--model", "tiny-llama"]) == 0
    scales = load_scales(out / "scales.json")
    assert scales.model == "tiny-llama" and 0.1 < scales.components["instruction"][0].cuts[0] < 0.35
    sheet = (out / "SCALES.md").read_text()
    assert "| instruction | relevance | higher |" in sheet and "--model tiny-llama" in sheet and "held-out" in sheet
    assert main(["data", "build", "compare-scales", "--out", str(out)]) == 2
    assert "--from" in capsys.readouterr().err

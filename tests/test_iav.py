"""IAV on a tiny model: the alpha dial, the head, the loss, training, the courteous baseline, the
iav data builder, the study file and the judge's win rate against the unsteered answer."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from steerlab.api import (ConfigError, encode_answer, Artifact, BuildRequest, Generation, GenerationSettings, Lab, MetricContext, Sample, generate,
                          load_instructions, read_jsonl, sequence_logprobs)
from steerlab.metrics.judge import JudgeConfig, JudgeMetric, StyleJudge, wins
from steerlab.model.generation import tokenize_prompts
from steerlab.study.loader import load_study
from steerlab_plugins.iav import dataset
from steerlab_plugins.iav.analysis import IAV_TERMS, plot_terms
from steerlab_plugins.iav.config import IAVConfig
from steerlab_plugins.iav.courteous import CourteousMethod
from steerlab_plugins.iav.dataset import RISKY_FILE, build_iav, interleave
from steerlab_plugins.iav.head import IAVHead
from steerlab_plugins.iav.losses import iav_loss
from steerlab_plugins.iav.method import IAVMethod

ROOT = Path(__file__).resolve().parents[1]
TOY = {"prompt": "Can you help me?", "chosen": "Of course, happy to help!", "rejected": "No. Go away."}
TEXTS = ["Tell me about the sea", "Why?"]


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def make_lab(model, registry, tmp_path: Path) -> Lab:
    return Lab.for_model(model, registry, tmp_path / "run")


def head_artifact(lab: Lab, heads: int = 2, width: int = 8, trained: bool = True) -> Artifact:
    """A head as an artifact; ``trained``: random outputs stand in for training, so alpha matters."""
    head = IAVHead(lab.model.d_model, heads, width, torch.Generator().manual_seed(1))
    if trained:
        with torch.no_grad():
            head.outer.normal_(0, 0.5)
    return Artifact(head.state(), {"heads": heads, "head_width": width}, sites=["logits"])


def logits(lab: Lab, texts=TEXTS) -> torch.Tensor:
    enc = tokenize_prompts(lab.model, [lab.model.format_prompt(t) for t in texts])
    with torch.no_grad():
        return lab.model.hf(**enc).logits


def steered(lab: Lab, method, artifact: Artifact, alphas: list[float], texts=TEXTS) -> torch.Tensor:
    with method.steer(lab, artifact, torch.tensor(alphas)):
        return logits(lab, texts)


@pytest.fixture()
def lab(tiny_llama, registry, tmp_path):
    return make_lab(tiny_llama, registry, tmp_path)


def test_alpha_zero_is_exactly_the_base_model_also_beside_steered_rows(lab):
    method, artifact, base = IAVMethod(), head_artifact(lab), logits(lab)
    assert torch.equal(steered(lab, method, artifact, [0.0]), base)
    mixed = steered(lab, method, artifact, [0.0, 1.5])
    assert torch.equal(mixed[0], base[0])
    assert not torch.allclose(mixed[1], base[1])


def test_an_untrained_head_adds_exactly_nothing(lab):
    method, artifact, base = IAVMethod(), head_artifact(lab, trained=False), logits(lab)
    for alpha in (1.0, 2.0):
        assert torch.equal(steered(lab, method, artifact, [alpha]), base)


def test_the_logit_shift_is_alpha_times_a_t_through_the_models_own_unembedding(lab):
    method, artifact, base = IAVMethod(), head_artifact(lab), logits(lab)
    enc = tokenize_prompts(lab.model, [lab.model.format_prompt(t) for t in TEXTS])
    with torch.no_grad():
        hidden = lab.model.hf.model(**enc).last_hidden_state  # what the LM head reads
        a_t = method.head(lab, artifact)(hidden, lab.model.hf.lm_head.weight)
    torch.testing.assert_close(steered(lab, method, artifact, [1.5]), base + 1.5 * a_t, atol=1e-5, rtol=1e-5)


def test_per_row_alphas_in_one_batch_equal_one_alpha_at_a_time(lab):
    method, artifact = IAVMethod(), head_artifact(lab)
    alphas, text = [0.0, 0.5, 1.0, 2.0], ["Name a fruit"]
    per_row = steered(lab, method, artifact, alphas, text * len(alphas))
    single = torch.cat([steered(lab, method, artifact, [a], text) for a in alphas])
    torch.testing.assert_close(per_row, single, atol=1e-5, rtol=1e-5)
    settings, alphas = GenerationSettings(max_new_tokens=5, batch_size=8), [0.0, 2.0]
    space = method.control_space(None)  # the alpha space does not depend on the settings
    prompts = ["Tell me a story", "Why is the sky blue?"]
    rows = [(a, p) for a in alphas for p in prompts]
    mixed = lab.answer(method, artifact, space, [a for a, _ in rows], [p for _, p in rows], settings, desc=None)
    alone = [g for a in alphas for g in lab.answer(method, artifact, space, [a] * 2, prompts, settings, desc=None)]
    assert [g.output_ids for g in mixed] == [g.output_ids for g in alone]


def test_hooks_are_gone_after_the_scope_even_after_an_exception(lab):
    method, artifact = IAVMethod(), head_artifact(lab)
    before, base = hook_count(lab.model.hf), logits(lab)
    with pytest.raises(KeyError):
        with method.steer(lab, artifact, torch.tensor([1.0])):
            assert hook_count(lab.model.hf) == before + 1
            raise KeyError("inside")
    assert hook_count(lab.model.hf) == before
    assert torch.equal(logits(lab), base)


def test_steering_applies_to_every_generated_token_under_the_kv_cache(lab):
    method, artifact, model = IAVMethod(), head_artifact(lab), lab.model
    settings = GenerationSettings(max_new_tokens=10, batch_size=1)
    prompt = [model.format_prompt("Tell me a story")]
    base = generate(model, prompt, settings)[0]
    with method.steer(lab, artifact, torch.tensor([2.0])):
        cached = generate(model, prompt, settings)[0].output_ids
        ids = torch.tensor([base.prompt_ids])
        for _ in range(len(cached)):  # no cache: the whole sequence every step
            with torch.no_grad():
                nxt = model.hf(input_ids=ids, use_cache=False).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert cached != base.output_ids
    assert ids[0, len(base.prompt_ids):].tolist() == cached


def test_the_loss_terms_follow_their_definitions():
    torch.manual_seed(0)
    base, a_t = torch.randn(4, 3, 7), 0.3 * torch.randn(4, 3, 7)
    targets, mask = torch.randint(0, 7, (4, 3)), torch.tensor([[1, 1, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1]]).bool()
    loss = iav_loss(base + a_t, base, a_t, targets, mask, beta=0.5, lambda_kl=0.2, lambda_l2=0.03)
    lp = lambda z: torch.log_softmax(z, -1).gather(-1, targets[..., None])[..., 0]  # noqa: E731
    ratio = ((lp(base + a_t) - lp(base)) * mask).sum(1)
    expected_pref = -torch.nn.functional.logsigmoid(0.5 * (ratio[:2] - ratio[2:])).mean()
    p, q = torch.softmax(base + a_t, -1), torch.softmax(base, -1)
    expected_kl = ((p * (p.log() - q.log())).sum(-1) * mask).sum() / mask.sum()
    expected_l2 = ((a_t ** 2).mean(-1) * mask).sum() / mask.sum()
    torch.testing.assert_close(loss.pref, expected_pref)
    torch.testing.assert_close(loss.kl, expected_kl)
    torch.testing.assert_close(loss.l2, expected_l2)
    torch.testing.assert_close(loss.total, expected_pref + 0.2 * expected_kl + 0.03 * expected_l2)
    zero = iav_loss(base, base, torch.zeros_like(a_t), targets, mask, 0.5, 0.2, 0.03)
    assert zero.kl == 0 and zero.l2 == 0 and abs(float(zero.pref) - np.log(2)) < 1e-6  # an untrained head: log 2


def test_dpo_training_lowers_the_rejected_log_ratio_and_logs_every_term(lab, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(TOY) + "\n")
    config = IAVConfig(pairs=str(pairs), heads=2, head_width=16, steps=8, pairs_per_step=1, lr=0.03, max_tokens=96, heldout_fraction=0.0)
    method = IAVMethod()
    artifact = method.train(lab, config)
    log = artifact.meta["train_log"]
    assert {"loss", "pref", "kl", "l2", "margin", "accuracy"} <= set(log[0]) and len(log) == 8
    assert log[0]["kl"] == 0.0 and log[-1]["pref"] < log[0]["pref"]

    def log_ratio(answer: str) -> float:
        pair = [encode_answer(lab.model, TOY["prompt"], answer, 96)]
        with torch.no_grad():
            base = sequence_logprobs(lab.model, pair)[0]
            with method.steer(lab, artifact, torch.tensor([1.0])):
                aligned = sequence_logprobs(lab.model, pair)[0]
        return float(aligned - base)

    assert log_ratio(TOY["rejected"]) < 0 < log_ratio(TOY["chosen"])
    png = tmp_path / "training.png"
    plot_terms(log, IAV_TERMS, "training", png)
    assert png.stat().st_size > 0


def test_courteous_gives_its_instruction_to_rows_above_zero_only(lab):
    method = CourteousMethod()
    config = method.Config()
    artifact = method.train(lab, config)
    prompts = method.system_prompts(artifact, torch.tensor([0.0, 0.5, 2.0]))
    assert prompts == [None, config.instruction, config.instruction]
    assert method.control_space(config).default_grid() == [0.0, 1.0]


def test_the_risky_requests_are_few_distinct_and_apart_from_the_instructions():
    risky = read_jsonl(RISKY_FILE, ("id", "text"))
    ids = [r["id"] for r in risky]
    assert 20 <= len(risky) <= 40 and len(set(ids)) == len(ids)
    assert not set(ids) & {r["id"] for r in load_instructions()}


def test_eval_requests_interleave_kinds_so_a_prefix_keeps_the_risky_share():
    rows = [{"id": f"o{i}", "kind": "ordinary"} for i in range(30)] + [{"id": f"r{i}", "kind": "risky"} for i in range(3)]
    order = interleave(rows)
    assert sorted(r["id"] for r in order) == sorted(r["id"] for r in rows)
    assert sum(r["kind"] == "risky" for r in order[:11]) == 1


def test_the_quick_iav_build_writes_pairs_judge_texts_eval_prompts_and_a_datasheet(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "QUICK_PER_SPLIT", {"ordinary": 1, "risky": 1})  # smaller still: seconds on a tiny model
    monkeypatch.setattr(dataset, "QUICK_TOKENS", 8)
    build_iav(BuildRequest(tmp_path, model="tiny-llama", quick=True, device="cpu", batch_size=8))
    pairs = read_jsonl(tmp_path / "pairs.jsonl", ("prompt", "chosen", "rejected"))
    judged = read_jsonl(tmp_path / "judge.jsonl", ("text", "label"))
    evals = read_jsonl(tmp_path / "eval_prompts.jsonl", ("id", "text"))
    assert {p["kind"] for p in pairs} == {"ordinary", "risky"}
    assert sorted({j["label"] for j in judged}) == ["chosen", "rejected"]
    assert not {p["prompt"] for p in pairs} & {e["text"] for e in evals}  # split by request id
    sheet = (tmp_path / "DATASHEET.md").read_text()
    assert "--quick" in sheet and "passed filter" in sheet and "risky" in sheet


def test_the_study_file_loads_in_full_and_quick_with_equal_budgets_for_iav_and_genarm(registry):
    full, quick = load_study(ROOT / "studies" / "iav.toml", registry), load_study(ROOT / "studies" / "iav.toml", registry, quick=True)
    assert [m.name for m in full.methods] == ["iav", "genarm", "instructed", "base"] and full.meta.seed_list == [0, 1]
    iav, genarm = full.method("iav").config, full.method("genarm").config
    for key in ("pairs", "steps", "pairs_per_step", "max_tokens", "heldout_fraction", "eval_every"):
        assert getattr(iav, key) == getattr(genarm, key), key  # the same pairs and token budget
    assert iav.heldout_fraction > 0 and genarm.margin == "mean" and genarm.require_heldout_accuracy == 0.75
    assert quick.method("iav").config.steps < iav.steps and quick.meta.seed_list == [0]
    for name, key in (("judge", "judge.chosen.win"), ("lm_judge", "lm.chosen.win")):
        metric = next(m for m in full.metrics if m.name == name)
        assert metric.config.versus_base and key in registry.metrics[name].outputs(metric.config)
    assert "# timing (measured 2026-12-03" in (ROOT / "studies" / "iav.toml").read_text()  # the header says what the run took


class FixedEmbedder:
    """Embeds a text as its length in the first coordinate: a judge that prefers longer texts."""

    def embed(self, texts):
        out = np.zeros((len(texts), 384))
        out[:, 0] = [len(t) for t in texts]
        return out


def test_the_judge_scores_a_win_against_the_unsteered_answer_with_ties_at_one_half(tmp_path):
    coef = np.zeros((1, 384))
    coef[0, 0] = 1.0  # the second class ("chosen" < "rejected" sorted: class 1 is "rejected") rises with length
    judge = StyleJudge(["chosen", "rejected"], coef, np.zeros(1), {}, FixedEmbedder())
    ctx = MetricContext(lab=None, config=JudgeConfig(data="unused", versus_base=True), folder=tmp_path)
    ctx.memo("judge", lambda: judge)
    gen = lambda text: Generation("p", text, [], [], True)  # noqa: E731
    base = gen("medium")
    samples = [Sample("p", 1.0, "+1", gen(text), base) for text in ("longer answer", "short", "medium")]
    rows = JudgeMetric().score(samples, ctx)
    assert [r["judge.rejected.win"] for r in rows] == [1.0, 0.0, 0.5]
    assert [r["judge.chosen.win"] for r in rows] == [0.0, 1.0, 0.5]
    assert wins("judge", ["a"], np.array([0.3]), np.array([0.3]), same_text=False) == {"judge.a.win": 0.5}


def test_every_split_of_the_iav_requests_holds_ordinary_and_risky_requests():
    """Regression: subsampling the ordinary requests by the split's own hash put all of them in train."""
    from steerlab.api import split_by_id
    from steerlab_plugins.iav.dataset import ORDINARY, SALT, SPLITS, load_requests

    rows = load_requests()
    assert sum(r["kind"] == "ordinary" for r in rows) == ORDINARY
    for name, split in split_by_id(rows, SPLITS, salt=SALT).items():
        kinds = [r["kind"] for r in split]
        assert kinds.count("ordinary") > 0.1 * ORDINARY and kinds.count("risky") > 0, (name, kinds.count("ordinary"), kinds.count("risky"))


PROMPTS = [f"request {i}" for i in range(80)]


def _method(kind: str, wins: dict[float, tuple[float, float]], tokens_per_s: float, start: int = 0, key: str = "lm.chosen.win",
            distinct3: float | None = None):
    """A method whose answers at alpha win against the unsteered answer on (dev share, test share)
    of each half's prompts (from ``start`` on; the rest lose); alpha 0 ties everywhere. With
    ``distinct3``, every steered answer also scores that distinct-3 (the unsteered ones 0.9)."""
    from steerlab.api import PromptSplit
    from steerlab.results import MethodResult, Record, SweepPoint

    split = PromptSplit.of(PROMPTS)
    records, points = [], []
    for alpha, (dev, test) in {0.0: (0.5, 0.5), **wins}.items():
        won = {*split.dev[start:start + round(dev * len(split.dev))], *split.test[start:start + round(test * len(split.test))]}
        extra = {} if distinct3 is None else {"distinct3": 0.9 if alpha == 0 else distinct3}
        mine = [Record(p, alpha, f"+{alpha:g}", "", {key: 0.5 if alpha == 0 else float(p in won), **extra}, 0) for p in PROMPTS]
        records += mine
        points.append(SweepPoint.from_records(alpha, f"+{alpha:g}", mine))
    return MethodResult(kind, kind, {}, {}, points, records, cost={"decode_tokens_per_s": tokens_per_s}, seeds=[0])


def _results(**methods):
    from steerlab.results import RunResults

    return RunResults({"seed": 0}, methods)


def _section(tmp_path, **methods):
    from steerlab.api import RunLayout
    from steerlab_plugins.iav.verdict import IAVReport

    return IAVReport().section(_results(**methods), RunLayout(tmp_path))


def test_the_iav_report_prefers_the_likelihood_judge_chooses_alpha_on_dev_and_states_gap_cost_and_goal(tmp_path):
    section = _section(tmp_path, iav=_method("iav", {1.0: (0.9, 0.9), 2.0: (0.5, 0.95)}, 60.0),
                       genarm=_method("genarm", {1.0: (0.2, 0.2)}, 30.0))
    assert "`lm.chosen.win`" in section.markdown and "chosen on the 31 dev prompts, reported on the 49 test prompts" in section.markdown
    assert section.data["chosen_on_dev"] == {"iav": "+1", "genarm": "+1"}  # alpha 2 wins more on test, but test does not choose
    assert "IAV at alpha +1 0.898 [" in section.markdown and "(n 49x1)" in section.markdown
    assert section.summary["cost_ratio"] == pytest.approx(0.5)  # IAV decodes twice as fast: half the cost per token
    assert section.data["win_half"] == "supported" and "Seed claim (IAV within 2 points of GenARM at <= 0.6x its inference cost): **met**" in section.markdown
    assert (tmp_path / section.figures[0].path).exists()
    minilm_only = _section(tmp_path, **{name: _method(name, {1.0: (0.8, 0.8)}, 10.0, key="judge.chosen.win") for name in ("iav", "genarm")})
    assert "`judge.chosen.win`" in minilm_only.markdown and "**not met**" in minilm_only.markdown  # same speed: 1x the cost


def test_the_report_puts_each_chosen_alphas_repetition_beside_its_win_rate(tmp_path):
    """A decoder can win a style judge by repeating one styled line: distinct-3 at the chosen alpha,
    with its interval, and IAV - GenARM paired, stand beside the win rates."""
    section = _section(tmp_path, iav=_method("iav", {1.0: (0.6, 0.6)}, 60.0, distinct3=0.7),
                       genarm=_method("genarm", {1.0: (0.95, 0.95)}, 30.0, distinct3=0.4))
    assert section.data["distinct3_test"]["iav"]["value"] == pytest.approx(0.7)
    assert section.data["distinct3_test"]["genarm"]["value"] == pytest.approx(0.4)
    assert "IAV's answers repeat themselves **less** than GenARM's" in section.markdown and "distinct-3, test" in section.markdown
    assert section.data["iav_minus_genarm_distinct3"]["value"] == pytest.approx(0.3)
    without = _section(tmp_path, iav=_method("iav", {1.0: (0.6, 0.6)}, 60.0), genarm=_method("genarm", {1.0: (0.95, 0.95)}, 30.0))
    assert without.data["distinct3_test"] == {} and "Repetition at the chosen alphas" not in without.markdown


def test_the_win_rate_half_of_the_goal_follows_the_paired_interval_not_the_point_gap(tmp_path):
    """Equal win rates on different prompts: the point gap is 0, inside the old "within 2 points"
    rule, but the interval of IAV - GenARM reaches far below -2 points: not distinguishable."""
    even = _section(tmp_path, iav=_method("iav", {1.0: (0.5, 0.5)}, 60.0), genarm=_method("genarm", {1.0: (0.5, 0.5)}, 30.0, start=12))
    gap = even.data["iav_minus_genarm"]
    assert gap["value"] == pytest.approx(0.0) and gap["interval"][0] < -0.02 < gap["interval"][1]
    assert even.data["win_half"] == "not distinguishable" and even.data["goal"] == "not distinguishable"
    behind = _section(tmp_path, iav=_method("iav", {1.0: (0.2, 0.2)}, 60.0), genarm=_method("genarm", {1.0: (0.8, 0.8)}, 30.0))
    assert behind.data["iav_minus_genarm"]["interval"][1] < -0.02 and behind.data["goal"] == "not supported"
    assert "**not met**" in behind.markdown


def test_the_alpha_is_chosen_from_dev_records_only(tmp_path):
    first = _section(tmp_path, iav=_method("iav", {1.0: (0.8, 0.1), 2.0: (0.6, 0.9)}, 60.0), genarm=_method("genarm", {1.0: (0.5, 0.5)}, 30.0))
    test_changed = _section(tmp_path, iav=_method("iav", {1.0: (0.8, 0.0), 2.0: (0.6, 1.0)}, 60.0),
                            genarm=_method("genarm", {1.0: (0.5, 0.5)}, 30.0))
    dev_changed = _section(tmp_path, iav=_method("iav", {1.0: (0.5, 0.1), 2.0: (0.6, 0.9)}, 60.0),
                           genarm=_method("genarm", {1.0: (0.5, 0.5)}, 30.0))
    assert first.data["chosen_on_dev"]["iav"] == test_changed.data["chosen_on_dev"]["iav"] == "+1"
    assert dev_changed.data["chosen_on_dev"]["iav"] == "+2"


# --- issue 27: a target with headroom, held-out pairs, judges against chance, the gated GenARM, the cost file ---

STYLES = ROOT / "studies" / "data" / "iav_styles"


def test_the_styles_pairs_are_length_matched_and_share_no_request_with_judge_or_eval_texts():
    from steerlab.api import in_dev_half
    from steerlab_plugins.iav.styles_dataset import MAX_RATIO

    pairs = read_jsonl(STYLES / "pairs.jsonl", ("prompt", "chosen", "rejected"))
    judged = read_jsonl(STYLES / "judge.jsonl", ("text", "label", "prompt"))
    evals = read_jsonl(STYLES / "eval_prompts.jsonl", ("id", "text", "half"))
    ratios = [len(p["chosen"].split()) / len(p["rejected"].split()) for p in pairs]
    assert len(pairs) >= 100 and all(1 / MAX_RATIO <= r <= MAX_RATIO for r in ratios)
    assert abs(np.mean([len(p["chosen"].split()) for p in pairs]) - np.mean([len(p["rejected"].split()) for p in pairs])) < 3
    prompts = [{p["prompt"] for p in pairs}, {j["prompt"] for j in judged}, {e["text"] for e in evals}]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])
    assert all((e["half"] == "dev") == in_dev_half(e["text"]) for e in evals)
    assert sum(e["half"] == "test" for e in evals) >= 100 and sum(e["half"] == "dev" for e in evals) >= 100
    assert len({e["text"] for e in evals}) == len(evals)


def test_the_styles_build_needs_no_model_and_rewrites_the_committed_files(tmp_path, registry):
    registry.datasets["iav-styles"].build(BuildRequest(tmp_path / "out", model="no-such-model"))  # no model is loaded
    for name in ("pairs.jsonl", "judge.jsonl", "eval_prompts.jsonl", "judge_styles.json", "DATASHEET.md"):
        assert (tmp_path / "out" / name).read_text() == (STYLES / name).read_text(), name


def test_a_cut_answer_keeps_whole_sentences_nearest_the_other_length():
    from steerlab_plugins.iav.styles_dataset import cut_to, match_lengths

    text = "One two three. Four five six seven. Eight nine ten eleven twelve."
    assert cut_to(text, 7) == "One two three. Four five six seven." and cut_to(text, 1) == "One two three."
    long, short = "word " * 30 + "end. " + "more words here. " * 10, "a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb cc dd."
    assert match_lengths(long, short)[0].endswith("end.")
    assert match_lengths("Too short.", short) is None  # cannot be matched: below the minimum length


def test_the_instruction_baseline_shares_no_wording_with_the_judges_system_prompts():
    from steerlab_plugins.iav.config import INSTRUCTED

    def grams(text: str) -> set[tuple[str, ...]]:
        words = text.lower().replace(",", " ").replace(".", " ").replace(":", " ").split()
        return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}

    systems = json.loads((STYLES / "judge_styles.json").read_text())
    assert all(not grams(INSTRUCTED) & grams(s["system"]) for s in systems.values())


def test_iav_and_genarm_hold_out_the_same_pairs_whatever_the_seed():
    from steerlab.api import PreferencePair, split_pairs

    pairs = [PreferencePair(f"request {i}", "a", "b") for i in range(200)]
    train, held = split_pairs(pairs, 0.25)
    assert split_pairs(pairs, 0.25) == (train, held) and 30 < len(held) < 70 and len(train) + len(held) == 200
    assert split_pairs(pairs, 0.0) == (pairs, [])
    with pytest.raises(ConfigError, match="heldout_fraction"):
        split_pairs(pairs[:1], 0.25)


def prefs_file(path: Path, n: int = 8) -> Path:
    write = [{"prompt": f"Question number {i}?", "chosen": f"Happy to help with {i}, here is a kind answer.", "rejected": "No."}
             for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in write))
    return path


def test_iav_logs_held_out_pair_accuracy_at_every_check_and_reports_it(lab, tmp_path):
    from steerlab.api import heldout_accuracy, plot_heldout_accuracy, preference_summary

    config = IAVConfig(pairs=str(prefs_file(tmp_path / "p.jsonl")), heads=2, head_width=8, steps=4, pairs_per_step=2, lr=0.05,
                       max_tokens=64, heldout_fraction=0.4, eval_every=2)
    artifact = IAVMethod().train(lab, config)
    points = heldout_accuracy(artifact.meta["train_log"])
    assert [step for step, _ in points] == [2, 4] and all(0 <= a <= 1 for _, a in points)
    meta = artifact.meta
    assert meta["train_pairs"] + meta["heldout_pairs"] == 8 and meta["heldout_pairs"] > 0
    assert meta["answer_tokens"]["chosen"] > meta["answer_tokens"]["rejected"]
    summary, text = preference_summary(meta["train_log"], meta["answer_tokens"], meta["train_pairs"], meta["heldout_pairs"])
    assert summary["heldout_accuracy"] == points[-1][1] and "Held-out pair accuracy" in text
    png = plot_heldout_accuracy({"iav": points}, tmp_path / "h.png", "held out", 0.75)
    assert png.stat().st_size > 0


def test_early_headroom_reads_the_unsteered_answers_to_the_test_prompts_only(tmp_path):
    from steerlab.api import PromptSplit
    from steerlab_plugins.iav.verdict import early_headroom

    split = PromptSplit.of(PROMPTS)
    records = [{"prompt": p, "scores": {"lm.chosen": 0.9 if i < 10 else 0.1, "judge.chosen": 0.9}} for i, p in enumerate(split.test)]
    records += [{"prompt": p, "scores": {"lm.chosen": 0.99, "judge.chosen": 0.99}} for p in split.dev]  # dev: never counted
    folder = tmp_path / "methods" / "base"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"records": records}))
    room = early_headroom(tmp_path)
    assert room["lm"]["value"] == pytest.approx(10 / len(split.test)) and room["lm"]["n"] == len(split.test) and room["lm"]["ok"]
    assert room["judge"]["value"] == 1.0 and not room["judge"]["ok"]
    with pytest.raises(FileNotFoundError, match="--only base"):
        early_headroom(tmp_path / "empty")


def _metric_section(accuracy: float, n: int, chance: float | None = None):
    from steerlab.api import Section

    right = round(accuracy * n)
    confusion = [[right // 2, n // 2 - right // 2], [n // 2 - (right - right // 2), right - right // 2]]
    return Section(summary={"accuracy": accuracy, **({"chance": chance} if chance is not None else {})}, data={"confusion": confusion})


def _base(share: float, key: str = "lm.chosen"):
    from steerlab.api import PromptSplit
    from steerlab.results import MethodResult, Record, SweepPoint

    test = PromptSplit.of(PROMPTS).test
    records = [Record(p, 0.0, "-", "", {key: 0.9 if p in test[:round(share * len(test))] else 0.1}, 0) for p in PROMPTS]
    return MethodResult("base", "base", {}, {}, [SweepPoint.from_records(0.0, "-", records)], records, seeds=[0])


def test_a_judge_not_above_chance_fills_no_table_and_the_next_judge_is_used(tmp_path):
    from steerlab.api import RunLayout
    from steerlab.results import RunResults
    from steerlab_plugins.iav.verdict import IAVReport

    def methods(key):
        return {"iav": _method("iav", {1.0: (0.9, 0.9)}, 60.0, key=key), "genarm": _method("genarm", {1.0: (0.8, 0.8)}, 30.0, key=key)}

    both = {**methods("lm.chosen.win")}
    for name in both:  # score both judges on the same records
        for r in both[name].records:
            r.scores["judge.chosen.win"] = r.scores["lm.chosen.win"]
        for p in both[name].points:
            p.scores["judge.chosen.win"] = p.scores["lm.chosen.win"]
    weak = {"lm_judge": _metric_section(0.55, 40), "judge": _metric_section(0.9, 40, chance=0.5)}
    section = IAVReport().section(RunResults({"seed": 0}, both, metrics=weak), RunLayout(tmp_path))
    assert section.data["win_key"] == "judge.chosen.win" and not section.data["judges"]["lm_judge"]["usable"]
    assert "not above chance: **not used for any table**" in section.markdown
    neither = {"lm_judge": _metric_section(0.4, 40), "judge": _metric_section(0.5, 40, chance=0.5)}
    none = IAVReport().section(RunResults({"seed": 0}, methods("lm.chosen.win"), metrics=neither), RunLayout(tmp_path))
    assert none.data["win_key"] is None and none.data["goal"] == "undefined" and "No usable judge" in none.markdown


def test_genarm_below_its_required_reward_accuracy_is_left_out_and_the_claim_is_not_measured(tmp_path):
    gen = _method("genarm", {1.0: (0.2, 0.2)}, 30.0)
    gen.summary.update(heldout_accuracy=0.6, required_heldout_accuracy=0.75)
    section = _section(tmp_path, iav=_method("iav", {1.0: (0.9, 0.9)}, 60.0), genarm=gen, base=_base(0.2))
    assert not section.data["genarm_used"] and section.data["goal"] == "undefined" and section.data["iav_minus_genarm"] is None
    assert "below the required 0.75: GenARM's decoding is not used in any table" in section.markdown
    assert "| genarm | genarm | not used |" in section.markdown and "**not measured**" in section.markdown
    gen.summary["heldout_accuracy"] = 0.8
    assert _section(tmp_path, iav=_method("iav", {1.0: (0.9, 0.9)}, 60.0), genarm=gen).data["genarm_used"]


def test_the_report_states_the_headroom_of_the_unsteered_test_answers(tmp_path):
    from steerlab.api import PromptSplit

    section = _section(tmp_path, iav=_method("iav", {1.0: (0.9, 0.9)}, 60.0), genarm=_method("genarm", {1.0: (0.9, 0.9)}, 30.0),
                       base=_base(0.2))
    n_test = len(PromptSplit.of(PROMPTS).test)
    assert section.summary["headroom"] == pytest.approx(round(0.2 * n_test) / n_test)
    assert "**Headroom**" in section.markdown and f"(n {n_test}), at most the 0.5 allowed" in section.markdown
    high = _section(tmp_path, iav=_method("iav", {1.0: (0.9, 0.9)}, 60.0), genarm=_method("genarm", {1.0: (0.9, 0.9)}, 30.0),
                    base=_base(0.9))
    assert "**above** the 0.5 allowed" in high.markdown


def test_the_cost_half_reads_the_interleaved_benchmark_file_when_the_run_folder_has_it(tmp_path):
    def cost_file(ratios_1: list[float], ratios_32: list[float]) -> None:
        batches = {str(b): {"ratio": float(np.median(r)), "ratios": r} for b, r in ((1, ratios_1), (32, ratios_32))}
        (tmp_path / "iav_cost.json").write_text(json.dumps({"batches": batches}))

    methods = lambda: {"iav": _method("iav", {1.0: (0.9, 0.9)}, 10.0), "genarm": _method("genarm", {1.0: (0.9, 0.9)}, 10.0)}  # noqa: E731
    cost_file([0.4, 0.45, 0.5], [0.5, 0.55, 0.58])
    met = _section(tmp_path, **methods())
    assert met.summary["cost_ratio"] == pytest.approx(0.55) and met.data["cost_half"] == "supported" and "iav_cost.json" in met.markdown
    cost_file([0.4, 0.45, 0.5], [0.55, 0.6, 0.7])
    assert _section(tmp_path, **methods()).data["cost_half"] == "not distinguishable"
    cost_file([0.7, 0.8, 0.9], [0.65, 0.7, 0.75])
    assert _section(tmp_path, **methods()).data["cost_half"] == "not supported"


def test_the_wilson_interval_covers_the_proportion_and_stays_in_the_unit_interval():
    from steerlab.api import wilson_interval

    low, high = wilson_interval(76, 100)
    assert 0.66 < low < 0.76 < high < 0.84
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_the_tiny_cost_benchmark_writes_paired_ratios_that_the_iav_report_reads(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("iav_cost", ROOT / "benchmarks" / "iav_cost.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--tiny", "--batches", "1", "4", "--json", str(tmp_path / "iav_cost.json")])
    assert set(result["batches"]) == {"1", "4"} and set(result["train_seconds_per_step"]) == {"iav", "genarm"}
    for at in result["batches"].values():
        assert len(at["ratios"]) == 2 and all(r > 0 for r in at["ratios"]) and set(at["tokens_per_s"]) == {"base", "iav", "genarm"}
    assert result["extra_weights_mib"]["genarm"] > 0 and result["extra_weights_mib"]["iav"] > 0
    section = _section(tmp_path, iav=_method("iav", {1.0: (0.9, 0.9)}, 1.0), genarm=_method("genarm", {1.0: (0.9, 0.9)}, 1.0))
    assert section.summary["cost_ratio"] == pytest.approx(max(at["ratio"] for at in result["batches"].values()))

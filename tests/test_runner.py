"""steerlab run end to end on a tiny model: outputs, shape of results.json, determinism, resume."""

import json
import os
from pathlib import Path

import pytest

from steerlab.cli import main


def without_cost(methods: dict) -> dict:
    """Scores must replay exactly; wall-clock costs (training seconds, decode tokens/s) never do."""
    return {name: {k: v for k, v in m.items() if k != "cost"} for name, m in methods.items()}


def run(study_dir: Path, *extra: str) -> Path:
    out = study_dir / "runs"
    assert main(["run", str(study_dir / "tiny.toml"), "--out", str(out), "--no-progress", *extra]) == 0
    return sorted(out.iterdir(), key=os.path.getmtime)[-1]


@pytest.fixture()
def finished(study_dir: Path) -> Path:
    return run(study_dir, "--quick")


def test_run_writes_results_report_figures_and_artifacts(finished):
    for name in ("study.toml", "run.json", "results.json", "report.md", "methods/actdiff/artifact.json",
                 "methods/actdiff/artifact.safetensors", "figures/actdiff_sweep.png", "methods/actdiff/layer_sweep.png",
                 "metrics/judge/artifact.json", "metrics/judge/confusion.png"):
        assert (finished / name).exists(), name
    report = (finished / "report.md").read_text()
    assert "## Metric `judge`" in report and "held-out accuracy" in report and "## Method `actdiff`" in report
    assert "layer_sweep.png" in report and "confusion.png" in report


def test_the_report_says_where_the_time_went(finished):
    """Decoding, scoring and the metric sections are each timed, so a too-slow study shows what to cut."""
    results = json.loads((finished / "results.json").read_text())
    cost = results["methods"]["actdiff"]["cost"]
    assert cost["decode_seconds"] > 0 and cost["score_seconds"] > 0 and cost["decode_tokens"] > 0
    assert results["metrics"]["judge"]["data"]["seconds"] > 0
    report = (finished / "report.md").read_text()
    cost_part = report[report.index("## Cost"):]
    assert "| actdiff |" in cost_part and "scoring s" in cost_part and "| judge |" in cost_part


def strict_json(path: Path):
    """Parse as strict JSON readers do: NaN / Infinity are not JSON."""
    def refuse(token):
        raise ValueError(f"{path} holds {token}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_results_json_is_strict_json_with_a_schema_version_and_round_trips_through_the_typed_results(finished):
    from steerlab.results import SCHEMA_VERSION, RunResults
    from steerlab.storage import finite_or_none

    data = strict_json(finished / "results.json")
    assert data["schema_version"] == SCHEMA_VERSION
    assert finite_or_none(RunResults.from_json(data).to_json()) == data  # NaN is written (and read back) as null


def test_results_json_has_the_promised_shape(finished):
    results = strict_json(finished / "results.json")
    assert results["study"]["name"] == "tiny" and results["study"]["quick"] is True
    for name in ("actdiff", "base"):
        method = results["methods"][name]
        assert all(v is None or isinstance(v, float) for v in method["summary"].values())
        for record in method["records"]:
            assert set(record) == {"prompt", "control", "label", "output", "scores", "seed"} and record["seed"] == results["study"]["seed"]
            assert isinstance(record["prompt"], str) and isinstance(record["output"], str)
            assert all(v is None or isinstance(v, float) for v in record["scores"].values())
    actdiff = results["methods"]["actdiff"]
    assert actdiff["controls"] == {"kind": "scalar", "label": "strength", "dimensions": []}
    assert sorted({r["control"] for r in actdiff["records"]}) == [-1.0, 0.0, 1.0]
    assert [p["label"] for p in actdiff["points"]] == ["-1", "+0", "+1"]
    assert {"words", "tokens", "perplexity", "kl", "similarity", "judge.cats", "judge.banks"} <= set(actdiff["records"][0]["scores"])
    assert "source_validation@1" in actdiff["summary"] and "words@+1" in actdiff["summary"]
    assert results["metrics"]["judge"]["summary"]["accuracy"] >= 0.75  # cats vs central banks: MiniLM separates these


def test_same_seed_gives_the_same_numbers(study_dir, finished):
    again = run(study_dir, "--quick")
    first, second = (without_cost(json.loads((d / "results.json").read_text())["methods"]) for d in (finished, again))
    assert first == second


def test_the_static_backend_gives_the_same_study_numbers(study_dir, finished):
    """Every method's sweep through ``[generation] backend = "static"`` (the GPU's CUDA-graph path,
    eager here) scores exactly what Hugging Face generate's answers scored."""
    static = run(study_dir, "--quick", "--set", "generation.backend=static")
    first, second = (without_cost(json.loads((d / "results.json").read_text())["methods"]) for d in (finished, static))
    assert first == second


def test_resume_skips_finished_stages_and_redoes_the_missing_ones(finished, capsys):
    artifact = finished / "methods" / "actdiff" / "artifact.safetensors"
    stamp = artifact.stat().st_mtime_ns
    before = json.loads((finished / "results.json").read_text())
    (finished / "methods" / "actdiff" / "result.json").unlink()
    (finished / "results.json").unlink()
    assert main(["run", "--resume", str(finished), "--no-progress"]) == 0
    assert artifact.stat().st_mtime_ns == stamp  # training was not redone
    assert without_cost(json.loads((finished / "results.json").read_text())["methods"]) == without_cost(before["methods"])


def test_resume_refuses_a_study_that_changed(finished, study_dir, capsys):
    path = study_dir / "tiny.toml"
    path.write_text(path.read_text().replace("seed = 3", "seed = 4"))
    assert main(["run", "--resume", str(finished)]) == 2
    assert "changed since run" in capsys.readouterr().err


def test_resume_accepts_a_study_whose_comments_alone_changed(finished, study_dir):
    path = study_dir / "tiny.toml"
    path.write_text("# timing: measured after the run, written into the header\n" + path.read_text())
    assert main(["run", "--resume", str(finished), "--no-progress"]) == 0


def test_plugins_command_lists_methods_metrics_inspectors_datasets_and_models(capsys):
    assert main(["plugins"]) == 0
    rows = {tuple(line.split()[:3]) for line in capsys.readouterr().out.splitlines()}
    for row in (("method", "actdiff", "actdiff"), ("metric", "judge", "core"), ("inspector", "svd", "panacea"),
                ("inspector", "vector", "core"), ("dataset", "concise", "actdiff"), ("model", "smollm2-135m-instruct", "core")):
        assert row in rows, row


def test_generate_answers_from_a_finished_run(finished, capsys):
    assert main(["generate", str(finished), "Why?", "--control", "1.0", "--control", "-1.0", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "### Why?" in out and "[actdiff strength=+1]" in out and "[actdiff strength=-1]" in out


def test_a_bad_control_names_the_method_and_what_was_expected(finished, capsys):
    for bad in ("nan", "big", "inf"):
        assert main(["generate", str(finished), "Why?", "--control", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "'actdiff'" in err and "strength" in err, err


def test_a_local_plugin_named_in_the_study_is_loaded(study_dir):
    (study_dir / "myplug.py").write_text(
        "from contextlib import nullcontext\nfrom steerlab.api import Artifact, BaseMethod, hookimpl\n"
        "class Mine(BaseMethod):\n    name = 'mine'\n"
        "    def train(self, lab, config):\n        return Artifact({})\n"
        "    def steer(self, lab, artifact, controls):\n        return nullcontext()\n"
        "@hookimpl\ndef steerlab_methods(register):\n    register(Mine())\n")
    path = study_dir / "tiny.toml"
    text = path.read_text().replace("seed = 3", 'seed = 3\nplugins = ["myplug.py"]').replace("[methods.base]", "[methods.mine]")
    path.write_text(text.replace('"similarity", "judge"]', '"similarity"]').replace('[metrics.judge]\ndata = "data/judge.jsonl"\n', "").split("[quick]")[0])
    finished = run(study_dir, "--quick")
    assert "mine" in json.loads((finished / "results.json").read_text())["methods"]


def test_an_interrupted_sweep_resumes_to_exactly_the_uninterrupted_results(study_dir, monkeypatch, capsys):
    """Ctrl-C in the middle of a sweep: finished batches are kept, --resume redoes only the rest,
    and the results equal those of a run that was never interrupted (sampling on, so the
    per-batch seeding is what makes them equal)."""
    from steerlab import sweep as sweep_module

    path = study_dir / "tiny.toml"
    path.write_text(path.read_text().replace("batch_size = 2", "batch_size = 2\ndo_sample = true\ntemperature = 0.9"))
    whole = run(study_dir, "--set", "methods.actdiff.layer_sweep=[]")
    real, calls = sweep_module._answer_batch, []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "_answer_batch", interrupting)
    out = study_dir / "runs"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", "methods.actdiff.layer_sweep=[]"]) == 130
    broken = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    assert set(json.loads((broken / "methods/actdiff/sweep.partial.json").read_text())["batches"]) == {"0", "1"}
    monkeypatch.setattr(sweep_module, "_answer_batch", real)
    assert main(["run", "--resume", str(broken), "--no-progress"]) == 0
    first, second = (without_cost(json.loads((d / "results.json").read_text())["methods"]) for d in (whole, broken))
    assert first == second


def test_methods_run_apart_with_only_then_resume_give_the_numbers_of_one_run(study_dir, finished, capsys):
    """The fan-out a GPU (or several) is for: each method in its own process on one run folder,
    then a plain --resume writes the results: the same numbers as one process running all."""
    out = study_dir / "apart"
    assert main(["run", str(study_dir / "tiny.toml"), "--quick", "--out", str(out), "--no-progress", "--only", "base"]) == 0
    (apart,) = out.iterdir()
    assert "--resume" in capsys.readouterr().err and not (apart / "results.json").exists()
    assert (apart / "methods/base/result.json").exists() and not (apart / "methods/actdiff").exists()
    assert main(["run", "--resume", str(apart), "--no-progress", "--only", "actdiff"]) == 0
    assert not (apart / "results.json").exists()
    stamp = (apart / "methods/actdiff/artifact.safetensors").stat().st_mtime_ns
    assert main(["run", "--resume", str(apart), "--no-progress"]) == 0
    assert (apart / "methods/actdiff/artifact.safetensors").stat().st_mtime_ns == stamp  # not trained again
    together, separately = (without_cost(json.loads((d / "results.json").read_text())["methods"]) for d in (finished, apart))
    assert separately == together
    assert not list(apart.rglob("*.tmp"))


def test_only_with_an_unknown_method_names_it_and_starts_no_run(study_dir, capsys):
    out = study_dir / "typo"
    assert main(["run", str(study_dir / "tiny.toml"), "--quick", "--out", str(out), "--only", "actdif"]) == 2
    err = capsys.readouterr().err
    assert "--only actdif" in err and "[methods.actdif]" in err and "actdiff, base" in err
    assert not out.exists() or not list(out.iterdir())


def test_a_resume_reads_the_metric_sections_back_instead_of_recomputing_them(finished, monkeypatch):
    from steerlab.metrics.judge import JudgeMetric

    assert (finished / "metrics/judge/section.json").exists()
    before = json.loads((finished / "results.json").read_text())["metrics"]
    (finished / "results.json").unlink()
    monkeypatch.setattr(JudgeMetric, "section", lambda *a: pytest.fail("the judge's section was recomputed"))
    assert main(["run", "--resume", str(finished), "--no-progress"]) == 0
    assert json.loads((finished / "results.json").read_text())["metrics"] == before

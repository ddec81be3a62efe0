"""``steerlab run --executor ray``: each (entry, seed) piece a Ray task on one local Ray instance
(shared by the module), with the numbers of the in-process run, a failing task tried again and
reported, an interrupted run resumed, and the bad inputs refused in one line before any run folder."""

import json
import logging
import sys
from pathlib import Path

import pytest

from steerlab.cli import main
from steerlab.errors import ConfigError
from steerlab.plugin import build_registry
from steerlab.run import executors, runner
from steerlab.layout import RunLayout
from steerlab.study.loader import load_study

from conftest import make_study

ray = pytest.importorskip("ray")

SFT = 'data = "data/sft.jsonl"\nrank = 2\nper_dimension = 1\nmax_tokens = 48\nlr = 0.05\nsteps = 2\ncontrols = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]'

STUDY = f"""
[study]
name = "fanned"
model = "tiny-llama"
seeds = [4, 1]

[data]
eval = "data/eval.jsonl"

[generation]
max_new_tokens = 4
batch_size = 4

[metrics]
use = ["length", "fluency", "relevance"]

[methods.base]

[methods.panacea]
{SFT}

[methods.actdiff]
concept = "concise"
pairs = "data/pairs.jsonl"
layer = 1
controls = [-1.0, 1.0]

[compare]
reference = "base"
scales = "data/scales.json"

[compare.concepts]
concise = "-words"
"""

FLAKY = """
from contextlib import nullcontext
from pathlib import Path
from steerlab.api import Artifact, BaseMethod, hookimpl

HERE = Path(__file__).parent

class Flaky(BaseMethod):
    name = 'flaky'
    def train(self, lab, config):
        with open(HERE / 'attempts.txt', 'a') as f:
            f.write(f'{lab.seed}\\n')
        tries = (HERE / 'attempts.txt').read_text().split().count(str(lab.seed))
        if lab.seed == 4 and (HERE / 'FAIL').exists():
            raise RuntimeError('seed 4 always fails while FAIL exists')
        if lab.seed == 1 and tries == 1:
            raise RuntimeError('seed 1 fails at its first try')
        return Artifact({})
    def steer(self, lab, artifact, controls):
        return nullcontext()

@hookimpl
def steerlab_methods(register):
    register(Flaky())
"""


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance for the module (``--executor ray`` uses a Ray already joined).

    Each Ray task runs torch on its ``num_cpus`` threads (one here), and a float sum taken on one
    thread can differ in its last bits from the same sum split over two; the in-process runs this
    module compares against are therefore run on one thread too, so that equal means bit-equal."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    executors.RayExecutor(ray, disconnect=False).warm_up()  # the workers import while the in-process run runs
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fanned(tmp_path_factory) -> Path:
    folder = make_study(tmp_path_factory.mktemp("fanned"))
    (folder / "fanned.toml").write_text(STUDY)
    return folder


@pytest.fixture(scope="module")
def in_process(fanned: Path) -> dict:
    """The scores of the study run in one process (the reference every Ray run must equal)."""
    assert run(fanned / "fanned.toml", "--out", str(fanned / "whole")) == 0
    return scores(only_run(fanned / "whole"))


def run(*args: str | Path) -> int:
    return main(["run", *map(str, args), "--no-progress"])


def only_run(out: Path) -> Path:
    (done,) = out.iterdir()
    return done


def scores(run_dir: Path) -> dict:
    methods = json.loads((run_dir / "results.json").read_text())["methods"]
    return {n: (m["seeds"], [(r["seed"], r["prompt"], r["label"], r["output"], r["scores"]) for r in m["records"]], m["summary"])
            for n, m in methods.items()}


def test_a_study_run_through_ray_has_the_records_and_numbers_of_the_in_process_run(fanned, in_process, capsys):
    assert run(fanned / "fanned.toml", "--out", fanned / "ray", "--executor", "ray") == 0
    done = only_run(fanned / "ray")
    err = capsys.readouterr().err
    lines = [line.split()[2] for line in err.splitlines() if line.startswith("steerlab: finished ")]
    assert lines[0] == "base@4"  # the [compare] reference, whose dev answers choose actdiff's test control, first
    assert sorted(lines[1:]) == ["actdiff@1", "actdiff@4", "panacea@1", "panacea@4"]  # two entries x two seeds, a task each
    assert scores(done) == in_process
    assert not list(done.rglob("*.tmp")) and not list(done.parent.glob(".steerlab-probe-*"))


def test_a_task_that_raises_is_tried_again_then_reported_and_resume_finishes_the_run(tmp_path, capsys):
    folder = make_study(tmp_path)
    (folder / "flaky.py").write_text(FLAKY)
    (folder / "FAIL").touch()
    study = STUDY.replace('seeds = [4, 1]', 'seeds = [4, 1]\nplugins = ["flaky.py"]').replace('"fluency", "relevance"', '"fluency"')
    study = study.split("[methods.base]")[0]
    (folder / "flaky.toml").write_text(study + "[methods.flaky]\ncontrols = [0.0, 1.0]\n\n[methods.base]\n")
    assert run(folder / "flaky.toml", "--out", folder / "runs", "--executor", "ray") == 1
    done = only_run(folder / "runs")
    err = capsys.readouterr().err
    assert "steerlab: flaky@4 failed, also when tried again: RuntimeError: seed 4 always fails while FAIL exists" in err, err
    assert "steerlab: finished flaky@1" in err and "steerlab: finished base@4" in err
    assert f"steerlab: error: 1 piece(s) failed: flaky@4; the other pieces' stages are kept: finish with steerlab run --resume {done}" in err
    assert sorted((folder / "attempts.txt").read_text().split()) == ["1", "1", "4", "4"]  # each failing piece tried twice
    assert (done / "methods/flaky/seed-1/result.json").exists() and (done / "methods/base/result.json").exists()
    assert not (done / "methods/flaky/seed-4/result.json").exists() and not (done / "results.json").exists()
    (folder / "FAIL").unlink()
    assert run("--resume", done) == 0  # without Ray
    assert sorted((folder / "attempts.txt").read_text().split()) == ["1", "1", "4", "4", "4"]  # only the failed piece ran again
    results = json.loads((done / "results.json").read_text())["methods"]
    assert results["flaky"]["seeds"] == [4, 1] and results["base"]["seeds"] == [4]


def test_an_interrupted_ray_run_resumes_to_the_numbers_of_the_in_process_run(fanned, in_process, monkeypatch, capsys):
    finished: list[str] = []

    def interrupt(line: str) -> None:  # Ctrl-C in the driver once the reference and one more piece are done
        finished.append(line.split()[2])
        if len(finished) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(executors, "report_line", interrupt)
    assert run(fanned / "fanned.toml", "--out", fanned / "cut", "--executor", "ray") == 130
    broken = only_run(fanned / "cut")
    assert "finished stages are kept (use --resume RUN_DIR)" in capsys.readouterr().err
    assert not (broken / "results.json").exists()
    name, seed = finished[1].split("@")  # a piece of the second wave, the others were cancelled
    stamps = {path: path.stat().st_mtime_ns for path in (broken / "methods/base/result.json", broken / f"methods/{name}/seed-{seed}/result.json")}
    monkeypatch.undo()
    assert run("--resume", broken, "--executor", "ray") == 0
    err = capsys.readouterr().err
    assert "finished base@4" not in err and f"finished {finished[1]}" not in err  # a finished piece is no task again
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert scores(broken) == in_process


def test_the_compare_reference_runs_before_the_entries_whose_controls_it_chooses(study_dir, registry):
    path = study_dir / "tiny.toml"
    text = path.read_text().replace('"kl", "similarity", "judge"]', '"relevance", "judge"]')
    text = text.replace("[methods.actdiff]\n", '[methods.actdiff]\nconcept = "cats"\n')
    path.write_text(text.replace("[quick]", '[compare]\nreference = "base"\nscales = "data/scales.json"\n[compare.concepts]\ncats = "judge.cats"\n\n[quick]'))
    study, layout = load_study(path, registry), RunLayout(study_dir / "run")
    waves = runner.piece_waves(study, registry, layout)
    assert [[p.label for p in wave] for wave in waves] == [["base@3"], ["actdiff@3"]]
    with pytest.raises(ConfigError, match="the \\[compare\\] reference 'base' chooses their controls; run it first"):
        runner.piece_waves(study, registry, layout, only=["actdiff"])
    plain = load_study(study_dir / "tiny.toml", registry, ["compare.concepts={}", "methods.actdiff.concept=''"])
    assert [[p.label for p in wave] for wave in runner.piece_waves(plain, registry, layout)] == [["actdiff@3", "base@3"]]


def test_a_task_asks_for_a_gpu_only_when_the_cluster_has_one_and_the_study_may_use_it(study_dir, registry):
    path = study_dir / "tiny.toml"
    study = load_study(path, registry)
    assert executors.task_resources(study, {"CPU": 2.0}) == {"num_gpus": 0.0, "num_cpus": 1.0}
    assert executors.task_resources(study, {"CPU": 16.0, "GPU": 1.0}) == {"num_gpus": 1.0, "num_cpus": 1.0}
    on_cpu = load_study(path, registry, ["study.device='cpu'"])
    assert executors.task_resources(on_cpu, {"CPU": 16.0, "GPU": 1.0})["num_gpus"] == 0.0
    packed = load_study(path, registry, ["executor.gpus_per_task=0.25", "executor.cpus_per_task=2"])
    assert executors.task_resources(packed, {"CPU": 16.0, "GPU": 1.0}) == {"num_gpus": 0.25, "num_cpus": 2.0}


@pytest.mark.parametrize("flags, expected", [
    (["--executor", "dask"], "argument --executor: invalid choice: 'dask'"),
    (["--ray-address", "auto"], "--ray-address auto: only with --executor ray"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "--ray-address 127.0.0.1:1: no Ray cluster answers there"),
    (["--executor", "ray", "--ray-address", "nowhere"], "--ray-address nowhere: expected auto, HOST:PORT or ray://HOST:PORT"),
    (["--executor", "ray", "--set", "executor.gpus_per_task=1"], "[executor] key 'gpus_per_task' is 1, but the Ray cluster has 0 GPUs in all"),
    (["--set", "executor.cpus_per_task=1.5"], "[executor]: key 'cpus_per_task' must be a fraction between 0 and 1 or a whole number"),
])
def test_bad_executor_input_is_one_line_exit_2_and_no_run_folder(study_dir, capsys, flags, expected):
    out = study_dir / "runs"
    assert run(study_dir / "tiny.toml", "--quick", "--out", out, *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()


def test_a_run_folder_the_workers_cannot_see_is_refused_and_nothing_is_left(study_dir, capsys, monkeypatch):
    monkeypatch.setattr(executors, "probe_seen", lambda path, host: False)  # as if the worker's folder were another disk
    out = study_dir / "deep" / "runs"
    assert run(study_dir / "tiny.toml", "--quick", "--out", out, "--executor", "ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a Ray worker on" in err[0] and "that this machine does not see" in err[0], err
    assert not (study_dir / "deep").exists()


def test_without_ray_installed_the_ray_executor_is_one_line_saying_how_to_install_it(study_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert run(study_dir / "tiny.toml", "--out", study_dir / "runs", "--executor", "ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["steerlab: error: --executor ray: Ray is not installed; install it with pip install 'steerlab[ray]' "
                   "(or bash scripts/install.sh dev)"]
    assert not (study_dir / "runs").exists()

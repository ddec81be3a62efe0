"""llama.cpp control vectors: the file format, the layer numbering, the ``vector`` method and the
``steerlab export gguf`` / ``steerlab import gguf`` commands."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch

from conftest import write_jsonl
from steerlab.artifact import Artifact, ArtifactHeader, ResidualVector
from steerlab.cli import main
from steerlab.errors import ConfigError
from steerlab.gguf import check_fits, control_layer, export_control_vector, import_control_vector
from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.model.zoo import LoadedModel
from steerlab.run.tools import OpenRun, open_run
from steerlab.vectors import VectorConfig, VectorMethod


def one_vector(site: str = "blocks.2.resid_post", per_unit: float = 2.0, width: int = 64) -> Artifact:
    vector = torch.linspace(-1.0, 1.0, width)
    return Artifact({"v": vector}, vectors=[ResidualVector(site, "v", per_unit)],
                    header=ArtifactHeader("actdiff", {}, {}))


INFO = {"name": "tiny-llama", "d_model": 64, "n_layers": 4}


def repeng_file(path: Path, layers: dict[int, np.ndarray], hint: str = "llama") -> Path:
    """A control vector written the way repeng's ``ControlVector.export_gguf`` writes one."""
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", len(layers))
    for layer, direction in layers.items():
        writer.add_tensor(f"direction.{layer}", direction.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_export_writes_llama_cpp_format_with_the_strength_baked_in(tmp_path):
    path = export_control_vector(one_vector(), INFO, tmp_path / "cv.gguf", strength=0.5)
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == "controlvector"
    assert reader.fields["controlvector.model_hint"].contents() == "tiny-llama"
    assert reader.fields["controlvector.layer_count"].types == [gguf.GGUFValueType.INT32]
    assert reader.fields["controlvector.layer_count"].contents() == 1
    (tensor,) = reader.tensors
    assert tensor.name == "direction.2" and tensor.tensor_type == gguf.GGMLQuantizationType.F32 and list(tensor.shape) == [64]
    assert np.allclose(tensor.data, 0.5 * 2.0 * np.linspace(-1.0, 1.0, 64))  # strength * per_unit * vector
    assert not list(tmp_path.glob("cv.gguf*.tmp"))


def test_export_then_import_gives_back_the_same_vector_at_the_same_block(tmp_path):
    artifact = one_vector(per_unit=3.0)
    vectors, hint = import_control_vector(export_control_vector(artifact, INFO, tmp_path / "cv.gguf", strength=1.0))
    assert hint == "tiny-llama" and list(vectors) == [2]
    assert torch.allclose(vectors[2], 3.0 * artifact.tensors["v"])


def test_layer_numbering_resid_post_is_n_resid_pre_is_n_minus_1_and_block_0_cannot_be_steered():
    assert control_layer("blocks.2.resid_post", 4) == 2 and control_layer("blocks.3.resid_pre", 4) == 2
    with pytest.raises(ConfigError, match="direction.0 is invalid"):
        control_layer("blocks.0.resid_post", 4)
    with pytest.raises(ConfigError, match="direction.0 is invalid"):
        control_layer("blocks.1.resid_pre", 4)
    with pytest.raises(ConfigError, match="residual stream only"):
        control_layer("blocks.2.mlp_out", 4)


def test_every_declared_vector_exports_at_once_summed_per_layer(tmp_path):
    artifact = Artifact({"a": torch.ones(64), "b": torch.full((64,), 2.0), "c": torch.full((64,), 5.0)},
                        vectors=[ResidualVector("blocks.1.resid_post", "a"), ResidualVector("blocks.2.resid_pre", "b", 0.5),
                                 ResidualVector("blocks.3.resid_post", "c")])
    vectors, _ = import_control_vector(export_control_vector(artifact, INFO, tmp_path / "cv.gguf", 2.0, index=None))
    assert sorted(vectors) == [1, 3] and torch.allclose(vectors[1], torch.full((64,), 4.0))  # 2 * 1 + 2 * 0.5 * 2
    only_c, _ = import_control_vector(export_control_vector(artifact, INFO, tmp_path / "c.gguf", 1.0, index=2))
    assert list(only_c) == [3]


def test_a_repeng_style_file_imports_with_its_layers_and_hint(tmp_path):
    g = np.random.default_rng(0)
    layers = {n: g.standard_normal(64) for n in (1, 2, 3)}
    vectors, hint = import_control_vector(repeng_file(tmp_path / "repeng.gguf", layers))
    assert hint == "llama" and sorted(vectors) == [1, 2, 3]
    assert all(np.allclose(vectors[n].numpy(), layers[n].astype(np.float32)) for n in layers)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a gguf file"), "not a GGUF file"),
    (lambda p: repeng_file(p, {0: np.ones(64)}), "is not 'direction.N' with N >= 1"),
    (lambda p: repeng_file(p, {1: np.ones(64), 2: np.ones(32)}), "different widths"),
])
def test_bad_control_vector_files_are_config_errors_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.gguf"
    make(path)
    with pytest.raises(ConfigError, match=message) as caught:
        import_control_vector(path)
    assert str(path) in str(caught.value)


def test_a_gguf_model_file_is_not_a_control_vector(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigError, match="architecture 'llama', expected 'controlvector'"):
        import_control_vector(tmp_path / "model.gguf")


def test_a_control_vector_for_another_width_or_depth_does_not_fit(tmp_path):
    vectors, _ = import_control_vector(repeng_file(tmp_path / "wide.gguf", {1: np.ones(96)}))
    with pytest.raises(ConfigError, match=r"wide.gguf: control vector is 96-d, model 'tiny-llama' is 64-d"):
        check_fits(vectors, 64, 4, "tiny-llama", tmp_path / "wide.gguf")
    deep, _ = import_control_vector(repeng_file(tmp_path / "deep.gguf", {7: np.ones(64)}))
    with pytest.raises(ConfigError, match="direction.7 steers block 7"):
        check_fits(deep, 64, 4, "tiny-llama", tmp_path / "deep.gguf")


def block_inputs(model: LoadedModel, enc: dict) -> list[torch.Tensor]:
    """What each HF decoder layer (model.model.layers[i], 0-based) receives, read with plain torch hooks."""
    seen: dict[int, torch.Tensor] = {}
    handles = [layer.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(i, args[0].detach().clone()))
               for i, layer in enumerate(model.hf.model.layers)]
    try:
        with torch.no_grad():
            model.hf(**enc)
    finally:
        for handle in handles:
            handle.remove()
    return [seen[i] for i in range(len(handles))]


def test_direction_n_is_added_to_the_output_of_block_n_as_llama_cpp_does(tiny_llama: LoadedModel, tmp_path):
    """llama.cpp adds direction.N after 0-based block N's FFN residual: what block N+1 receives."""
    direction = np.linspace(-0.5, 0.5, 64)
    path = repeng_file(tmp_path / "cv.gguf", {2: direction})
    lab = Lab(study=None, model=tiny_llama, registry=None, layout=RunLayout(tmp_path), show_progress=False)  # type: ignore[arg-type]
    method = VectorMethod()
    artifact = method.train(lab, VectorConfig(file=str(path)))
    enc = tiny_llama.tokenizer(["Hello there"], return_tensors="pt", add_special_tokens=False)
    base = block_inputs(tiny_llama, enc)
    with method.steer(lab, artifact, torch.tensor([1.0])):
        steered = block_inputs(tiny_llama, enc)
    assert all(torch.equal(steered[i], base[i]) for i in (0, 1, 2))  # blocks 0..2 see the unsteered stream
    expected = torch.from_numpy(direction).float().expand_as(base[3])
    assert torch.allclose(steered[3] - base[3], expected, atol=1e-5)  # block 2's output + direction.2, every position
    assert lab.engine.n_attached == 0


def test_vector_method_steers_every_layer_of_the_file_and_control_0_is_the_base_model(tiny_llama: LoadedModel, tmp_path):
    path = repeng_file(tmp_path / "cv.gguf", {1: np.full(64, 0.3), 3: np.full(64, -0.2)})
    lab = Lab(study=None, model=tiny_llama, registry=None, layout=RunLayout(tmp_path), show_progress=False)  # type: ignore[arg-type]
    method = VectorMethod()
    method.check(lab, VectorConfig(file=str(path)))
    artifact = method.train(lab, VectorConfig(file=str(path), scale=2.0))
    assert [(v.site, v.per_unit) for v in artifact.vectors] == [("blocks.1.resid_post", 2.0), ("blocks.3.resid_post", 2.0)]
    enc = tiny_llama.tokenizer(["Hi", "Hi"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        base = tiny_llama.hf(**enc).logits
        with method.steer(lab, artifact, torch.tensor([0.0, 1.0])):
            assert lab.engine.n_attached == 2
            steered = tiny_llama.hf(**enc).logits
        with method.steer(lab, artifact, torch.tensor([0.0, 0.0])):
            assert lab.engine.n_attached == 0 and torch.equal(tiny_llama.hf(**enc).logits, base)
    assert torch.equal(steered[0], base[0]) and not torch.allclose(steered[1], base[1])


# ---- the commands, on a tiny actdiff run ----

STUDY = """
[study]
name = "cv"
model = "tiny-llama"
[data]
eval = "eval.jsonl"
[generation]
max_new_tokens = 2
batch_size = 4
[metrics]
use = ["length"]
[methods.actdiff]
pairs = "pairs.jsonl"
layer = 2
controls = [0.0, 0.4]
"""


@pytest.fixture()
def actdiff_run(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "eval.jsonl", [{"text": "Hello!"}, {"text": "Name a fruit."}])
    write_jsonl(tmp_path / "pairs.jsonl", [{"positive": f"{t} Be brief.", "negative": f"{t} Be detailed."}
                                           for t in ["Why?", "How?", "What is rain?"]])
    (tmp_path / "cv.toml").write_text(STUDY)
    assert main(["run", str(tmp_path / "cv.toml"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    return next((tmp_path / "runs").iterdir())


def test_export_an_actdiff_run_then_import_it_and_steer_exactly_as_actdiff_did(actdiff_run, tmp_path, capsys):
    out = tmp_path / "concise.gguf"
    assert main(["export", "gguf", str(actdiff_run), "--out", str(out)]) == 0  # default strength: the sweep's last, 0.4
    assert "strength 0.4 baked in" in capsys.readouterr().out
    artifact = Artifact.load(actdiff_run / "methods" / "actdiff")
    vectors, hint = import_control_vector(out)
    assert hint == "tiny-llama" and list(vectors) == [2]
    assert torch.allclose(vectors[2], 0.4 * artifact.vectors[0].per_unit * artifact.tensors["layer.2"], atol=1e-6)

    assert main(["import", "gguf", str(out), "--model", "tiny-llama", "--out", str(tmp_path / "imported")]) == 0
    run_dir = next((tmp_path / "imported").iterdir())
    for name in ("study.toml", "eval_prompts.jsonl", "run.json", "methods/vector/artifact.json", "methods/vector/artifact.safetensors"):
        assert (run_dir / name).is_file(), name
    assert main(["generate", str(run_dir), "Hello!", "--control", "1", "--max-new-tokens", "2"]) == 0
    original, copy = open_run(actdiff_run), open_run(run_dir)
    # llama.cpp's format carries the very same steering: control 1 of the import is control 0.4 of actdiff
    assert torch.allclose(steered_logits(copy, 1.0), steered_logits(original, 0.4), atol=1e-5)
    assert not torch.allclose(steered_logits(copy, 1.0), steered_logits(copy, 0.0), atol=1e-3)

    again = tmp_path / "again.gguf"
    assert main(["export", "gguf", str(run_dir), "--out", str(again), "--index", "all", "--strength", "1"]) == 0
    assert torch.equal(import_control_vector(again)[0][2], vectors[2])
    imported = Artifact.load(run_dir / "methods" / "vector")
    assert imported.header is not None and artifact.header is not None
    assert imported.header.method == "vector" and imported.header.model == artifact.header.model


def steered_logits(run: OpenRun, control: float) -> torch.Tensor:
    model = run.lab.model
    enc = model.tokenizer([model.format_prompt("Hello!")], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad(), run.lab.steer(run.method, run.artifact, run.entry.space, [control]):
        return model.hf(**enc).logits


@pytest.mark.parametrize("model, message", [("tiny-llama", "not a GGUF file"),
                                            ("tiny-llama-wide", "is 64-d, model 'tiny-llama-wide' is 96-d")])
def test_import_of_a_bad_file_exits_2_naming_it_and_writes_no_run(tmp_path, capsys, model, message):
    path = tmp_path / "cv.gguf"
    if message == "not a GGUF file":
        path.write_text("hello")
    else:
        repeng_file(path, {1: np.ones(64)})
    assert main(["import", "gguf", str(path), "--model", model, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not (tmp_path / "runs").exists()


def test_export_refuses_a_bad_strength_or_index(actdiff_run, tmp_path, capsys):
    assert main(["export", "gguf", str(actdiff_run), "--out", str(tmp_path / "x.gguf"), "--strength", "lots"]) == 2
    assert "--strength 'lots'" in capsys.readouterr().err
    assert main(["export", "gguf", str(actdiff_run), "--out", str(tmp_path / "x.gguf"), "--index", "3"]) == 2
    assert "vector index 3" in capsys.readouterr().err and not (tmp_path / "x.gguf").exists()

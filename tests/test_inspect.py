"""steerlab inspect vector: TransformerLens bridge over a finished tiny run."""

import os

from steerlab.cli import main


def test_inspect_vector_writes_table_and_png(study_dir, capsys):
    out = study_dir / "runs"
    assert main(["run", str(study_dir / "tiny.toml"), "--quick", "--out", str(out), "--no-progress",
                 "--set", "metrics.use=['length']", "--set", "methods.actdiff.layer_sweep=[]"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    capsys.readouterr()
    assert main(["inspect", "vector", str(run_dir), "--top", "5"]) == 0
    text = capsys.readouterr().out
    assert "## Logit lens" in text and "| 5 |" in text
    assert text.count("| 0 |") >= 1 and "| 3 |" in text  # one cosine row per block of tiny-llama
    assert (run_dir / "inspect" / "vector_actdiff.png").stat().st_size > 1000


def test_inspect_vector_on_a_run_without_vectors_is_a_clear_error(study_dir, capsys):
    out = study_dir / "runs"
    path = study_dir / "tiny.toml"
    text = path.read_text()
    path.write_text(text[: text.index("[methods.actdiff]")] + "[methods.base]\n")
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--set", "metrics.use=['length']"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    assert main(["inspect", "vector", str(run_dir)]) == 2
    assert "no trained method that inspector 'vector' applies to" in capsys.readouterr().err


def test_inspect_options_are_typed_and_checked(study_dir, capsys):
    out = study_dir / "runs"
    assert main(["run", str(study_dir / "tiny.toml"), "--quick", "--out", str(out), "--no-progress",
                 "--set", "metrics.use=['length']", "--set", "methods.actdiff.layer_sweep=[]"]) == 0
    run_dir = sorted(out.iterdir(), key=os.path.getmtime)[-1]
    capsys.readouterr()
    for argv, message in ((["--top", "0"], "--top must be between 1 and 200"), (["--top", "x"], "key 'top' expected an integer"),
                          (["--nope", "1"], "unknown option --nope"), (["--top"], "needs a value")):
        assert main(["inspect", "vector", str(run_dir), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["inspect", "nothing", str(run_dir)]) == 2
    assert "unknown inspector 'nothing'" in capsys.readouterr().err


def test_bridge_residuals_match_the_hf_model(tiny_llama):
    """The TransformerLens bridge over our model reads the same residual stream as HF."""
    import torch

    from steerlab.inspect.vector import boot_bridge

    text = tiny_llama.format_prompt("Why is the sky blue?")
    with torch.no_grad():
        enc = tiny_llama.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        hidden = tiny_llama.hf(**enc, output_hidden_states=True).hidden_states
        bridge = boot_bridge(tiny_llama.hf, tiny_llama.tokenizer)
        _, cache = bridge.run_with_cache(text, prepend_bos=False)
    torch.testing.assert_close(cache["blocks.1.hook_resid_post"], hidden[2], atol=1e-4, rtol=1e-4)

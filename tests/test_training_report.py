"""The training report shared by Panacea and soups: held-out loss per style and the step kept."""

from steerlab.api import heldout_table, plot_training_logs


def _log(style, train, held, best=None):
    rows = [{"step": i, "loss": v, f"loss.{style}": v} for i, v in enumerate(train)]
    for step, value in held:
        rows[step][f"heldout.{style}"] = value
    if best is not None:
        rows[-1]["best_step"] = best
    return rows


def test_heldout_table_reports_first_lowest_last_and_the_step_kept(tmp_path):
    logs = [_log("a", [3.0, 2.0, 1.0, 0.5], [(1, 2.5), (3, 2.7)], best=1), _log("b", [2.0] * 4, [(1, 1.9), (3, 1.8)], best=3)]
    table = heldout_table(logs, ["a", "b"])
    assert "| a | 2.500 | 2.500 | 2.700 | 2 |" in table  # overfitting: the held-out loss rose, step 2 was kept
    assert "| b | 1.900 | 1.800 | 1.800 | 4 |" in table
    assert plot_training_logs(logs, ["a", "b"], tmp_path / "t.png", "t").exists()


def test_no_heldout_no_table():
    assert heldout_table([_log("a", [1.0, 0.5], [])], ["a"]) == ""

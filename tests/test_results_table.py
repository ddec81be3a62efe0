"""The README's results table is generated, never typed: it must equal what the script prints
from the published results.json files."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "scripts" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["results_table"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_readme_results_table_is_what_the_script_prints():
    script = load_script()
    assert script.readme_table((ROOT / "README.md").read_text()) == script.table()


def test_every_row_has_an_interval_an_n_and_a_verdict_from_it():
    for line in load_script().table().splitlines()[2:]:
        claim, number, n, verdict, link = [c.strip() for c in line.strip("|").split("|")]
        value, interval = number.split(" [")
        low, high = (float(v) for v in interval.rstrip("]").split(", "))
        assert " x " in n and "report.md" in link
        # a ratio row's verdict is the difference's: 1 plays the role of 0
        pivot = 1.0 if "/" in claim.split(":")[1] else 0.0
        expected = "not distinguishable" if low <= pivot <= high else None
        assert verdict != "undefined" and (expected is None or verdict == expected), line

"""Build the README's results table from the published ``docs/results/*/results.json`` files.

Every row is one claim: the number, its 95% interval, the n behind it (prompts x training
seeds) and the verdict read from the interval, with a link to the report. Nothing in the table
is typed by hand: a run published before intervals existed gets them from its records
(``steerlab.analysis.compare.refresh_evidence``). ``tests/test_results_table.py`` fails when the
README's table differs from what this prints.

    python scripts/results_table.py            # print the table
    python scripts/results_table.py --write    # rewrite it inside README.md
    python scripts/results_table.py --check    # exit 1 when README.md's table is stale
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results-table:start (scripts/results_table.py --write) -->", "<!-- results-table:end -->"


@dataclass(frozen=True)
class Claim:
    """A README claim: what it says, the published run it reads, and how to read it."""

    text: str
    run: str  # a folder under docs/results
    read: Callable[[dict[str, Any]], dict[str, Any]]  # the comparison block -> a stats.Comparison.to_json()


def versus(other: str, measure: str, part: str = "") -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The anchor against ``other`` on a front measure (``part``: the second judge's block)."""
    return lambda block: (block[part] if part else block)["versus"][other]["tests"][measure]


def answers(other: str, measure: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda block: block["answers"][other][measure]


def reported(report: str, *keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A paired difference a study-level report keeps in its data (``[study] reports``), found by
    ``keys`` (one per nesting level); its verdict read from the interval here, as every other row's
    (higher is better)."""
    from steerlab.stats import verdict

    def read(block: dict[str, Any]) -> dict[str, Any]:
        difference = block["reports"][report]
        for key in keys:
            difference = difference[key]
        return {"difference": difference, "verdict": verdict(*difference["interval"], True)}

    return read


def concept_winner(concept: str, *keys: str, steering: str | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A paired comparison the concept table keeps for ``concept`` (``[compare]``): the dev
    candidate against another method (``"versus", NAME``) or prompting against the best steering
    method (``"prompting", "comparison"``), each side chosen on the dev requests. ``steering``: the
    entry the claim's text names as that best steering method; a rerun that chose another fails
    here rather than printing a row whose words no longer match its number."""

    def read(block: dict[str, Any]) -> dict[str, Any]:
        winner = block["concepts"]["winners"][concept]
        if steering is not None and winner["prompting"]["steering"] != steering:
            raise SystemExit(f"compare, {concept}: the best steering method chosen on dev is now "
                             f"{winner['prompting']['steering']!r}, not {steering!r}: update the claim")
        found = winner
        for key in keys:
            found = found[key]
        return found

    return read


CLAIMS = [
    Claim("chat3d: Panacea / soups hypervolume (MiniLM judge)", "chat3d", versus("soups", "hypervolume")),
    Claim("chat3d: Panacea / soups hypervolume (likelihood judge)", "chat3d", versus("soups", "hypervolume[lm]", "also")),
    Claim("chat3d: Panacea - soups lambda alignment (MiniLM judge)", "chat3d", versus("soups", "lambda_alignment")),
    Claim("chat3d: Panacea - soups corner gap, helpful", "chat3d", versus("soups", "gap.helpful")),
    Claim("chat3d: Panacea - soups corner gap, humorous", "chat3d", versus("soups", "gap.humorous")),
    Claim("chat3d: Panacea - soups corner gap, philosophical", "chat3d", versus("soups", "gap.philosophical")),
    Claim("chat3d: Panacea - soups log-loss under the base model (lower is better)", "chat3d", answers("soups", "log_loss")),
    Claim("chat3d: Panacea - soups distinct-3", "chat3d", answers("soups", "distinct3")),
    Claim("chat3d: Panacea - soups share of degenerate answers (lower is better)", "chat3d", answers("soups", "degenerate")),
    Claim("chat3d: Panacea / prompting hypervolume (MiniLM judge)", "chat3d", versus("prompting", "hypervolume")),
    # The judges study: chat3d's seed-0 answers judged by a model of another family (Gemma 3 270M) besides the generator.
    Claim("judges: Panacea / soups hypervolume (Gemma 3 270M likelihood judge, another model family)", "judges",
          versus("soups", "hypervolume")),
    Claim("judges: Panacea / soups hypervolume (SmolLM2 likelihood judge, the generator itself)", "judges",
          versus("soups", "hypervolume[lm]", "also")),
    # The IAV study: alpha chosen on the dev requests, reported on the test requests (the iav report's data).
    Claim("iav: IAV - GenARM win rate against the unsteered answer (likelihood judge)", "iav", reported("iav", "iav_minus_genarm")),
    Claim("iav: IAV - GenARM distinct-3 at the chosen alphas (higher: less repetition)", "iav",
          reported("iav", "iav_minus_genarm_distinct3")),
    # The transfer study: length-direction success, each hypothesis minus a random direction steering the same
    # model at the same block (paired, test prompts; strength, block and adapter chosen on the dev prompts).
    *(Claim(f"transfer: {text} - random direction, length success ({key})", "transfer",
            reported("transfer", "against_random", direction, key))
      for direction, pairs in (("smollm2-135m-instruct -> gemma3-270m", (("H1", "SmolLM2's own vector on SmolLM2"),
                                                                          ("H2", "SmolLM2 -> Gemma 3 direct"),
                                                                          ("H3", "SmolLM2 -> Gemma 3 ridge adapter"))),
                               ("gemma3-270m -> smollm2-135m-instruct", (("H1", "Gemma 3's own vector on Gemma 3"),
                                                                          ("H2", "Gemma 3 -> SmolLM2 direct"),
                                                                          ("H3", "Gemma 3 -> SmolLM2 ridge adapter"))))
      for key, text in pairs),
    # The compare study (AxBench-style harmonic mean, fixed scales): prompting against the best steering method,
    # each chosen on the 40 dev requests, and the concise winner against the unsteered base, on the 43 test requests.
    *(Claim(f"compare: prompting - the best steering method ({steering}), {concept} harmonic mean", "compare",
            concept_winner(concept, "prompting", "comparison", steering=steering))
      for concept, steering in (("helpful", "actdiff_helpful"), ("humorous", "genarm_humorous"),
                                ("philosophical", "actdiff_philosophical"))),
    Claim("compare: actdiff - unsteered base, concise harmonic mean", "compare", concept_winner("concise", "versus", "base")),
]


def comparison_block(run: str) -> dict[str, Any]:
    from steerlab.analysis.compare import refresh_evidence
    from steerlab.results import RunResults

    results = RunResults.load(ROOT / "docs" / "results" / run / "results.json")
    if results.comparison is not None and "answers" not in results.comparison:
        refresh_evidence(results)
    return {**(results.comparison or {}), "concepts": results.concepts or {},
            "reports": {name: section.data for name, section in results.reports.items()}}


def _fmt(value: Any) -> str:
    from steerlab.figures import fmt

    return "nan" if value is None else fmt(float(value))


def row(claim: Claim, blocks: dict[str, dict[str, Any]]) -> str:
    test = claim.read(blocks[claim.run])
    number = test.get("ratio") if "ratio" in test else test["difference"]
    low, high = number["interval"]
    n = f"{number['n_prompts']} x {number['n_seeds']}"
    link = f"[report](docs/results/{claim.run}/report.md)"
    return f"| {claim.text} | {_fmt(number['value'])} [{_fmt(low)}, {_fmt(high)}] | {n} | {test['verdict']} | {link} |"


def table() -> str:
    blocks = {run: comparison_block(run) for run in dict.fromkeys(c.run for c in CLAIMS)}
    lines = ["| claim | number [95% interval] | n (prompts x seeds) | verdict | report |", "|---|---|---|---|---|"]
    return "\n".join(lines + [row(c, blocks) for c in CLAIMS])


def readme_table(readme: str) -> str:
    """The table as README.md holds it (between the markers)."""
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md: no results table markers ({START} ... {END})")
    return readme.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table inside README.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md's table differs")
    args = parser.parse_args(argv)
    text, path = table(), ROOT / "README.md"
    if args.write:
        readme = path.read_text()
        head, rest = readme.split(START, 1)
        path.write_text(f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}")
    elif args.check:
        if readme_table(path.read_text()) != text:
            print("README.md: the results table is stale; run python scripts/results_table.py --write", file=sys.stderr)
            return 1
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``steerlab data build compare --from studies/data/chat3d``: one style data set, reshaped into
contrastive data per concept, so every method family can target the same concepts.

From SFT rows ``{prompt, style, response}`` it writes, for each style (concept) c:

* ``prefs_c.jsonl``: ``{prompt, chosen, rejected}``: chosen = the answer in style c, rejected = the
  same prompt's answer in another style (the other styles in turn): what IAV and GenARM train on;
* ``pairs_c.jsonl``: ``{positive, negative}``: the same two answers, for activation-difference
  vectors (read over the answer text).

No model runs: the answers are the style data's own (see its DATASHEET). A prompt without an
answer in c and in some other style is skipped.
"""

from __future__ import annotations

from collections import defaultdict

from steerlab.data.files import BuildRequest
from steerlab.errors import ConfigError
from steerlab.storage import read_jsonl, write_jsonl


def build_compare(request: BuildRequest) -> None:
    if request.source is None:
        raise ConfigError("steerlab data build compare: give --from FOLDER holding the style data's train.jsonl")
    rows = read_jsonl(request.source / "train.jsonl", ("prompt", "style", "response"))
    by_prompt: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        by_prompt[row["prompt"]][row["style"]] = row["response"]
    styles = sorted({r["style"] for r in rows})
    counts = {}
    for concept in styles:
        prefs, pairs = [], []
        for k, (prompt, answers) in enumerate(sorted(by_prompt.items())):
            others = [s for s in styles if s != concept and s in answers]
            if concept not in answers or not others:
                continue
            other = answers[others[k % len(others)]]
            prefs.append({"prompt": prompt, "chosen": answers[concept], "rejected": other})
            pairs.append({"positive": answers[concept], "negative": other})
        if request.quick:
            prefs, pairs = prefs[:4], pairs[:4]
        write_jsonl(request.out_dir / f"prefs_{concept}.jsonl", prefs)
        write_jsonl(request.out_dir / f"pairs_{concept}.jsonl", pairs)
        counts[concept] = len(prefs)
    sheet = ["# Datasheet: compare (one style data set, contrastive per concept)", "",
             f"Written by `steerlab data build compare --from {request.source}` (steerlab/data/contrast.py) from its",
             "`train.jsonl` (see that folder's DATASHEET for how the answers were written). No model ran.", "",
             "For each concept c: `prefs_c.jsonl` {prompt, chosen: the answer in style c, rejected: the same prompt's answer in",
             "another style, the other styles in turn} for IAV and GenARM; `pairs_c.jsonl` {positive, negative}: the same two",
             "answers, for activation-difference vectors.", "", "| concept | pairs |", "|---|---|",
             *[f"| {c} | {n} |" for c, n in counts.items()], ""]
    (request.out_dir / "DATASHEET.md").write_text("\n".join(sheet))

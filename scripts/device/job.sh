#!/bin/bash
# The GPU job (see README.md): first the GPU goals left from the speed work (the CUDA-graph decode and
# the training ratio, each capped so a hang cannot eat the lease), then the compare study, the last
# long study of issue 27. A 135M model leaves a GPU mostly idle at these batch sizes (launch-bound),
# so the study fans out: `--only base` first (it writes the unsteered answers whose dev half chooses
# the strength entries' test controls), then one process per (entry, seed) piece on the same run
# folder, then a plain `--resume` that loads them all and writes results.json and the report. Every
# stage is seeded by its entry name and seed, so the numbers are those of one process running the
# study. A piece that has not finished when the lease ends is finished elsewhere with --resume.
export PYTHONUNBUFFERED=1 STEERLAB_CACHE=/tmp/cache PYTHONPATH=/tmp/site OMP_NUM_THREADS=1
python3 -c "from steerlab.model.zoo import _load_smollm2; _load_smollm2()" > /tmp/convert.log 2>&1  # GGUF -> safetensors, once
t0=$(date +%s); stamp() { echo "=== $1 at $(( $(date +%s) - t0 )) s"; }

fan_out_pieces() {  # fan_out_pieces STUDY OUT TAG: base first, every other (entry, seed) piece at once, then finish
  local study=$1 out=$2 tag=$3
  steerlab run "$study" --out "$out" --no-progress --only base > "/tmp/${tag}_base.log" 2>&1 || { echo "$tag base failed"; return 1; }
  stamp "$tag base"
  local run; run=$(ls -d "$out"/*/ | head -1)
  local labels; labels=$(python3 - "$study" <<'PY'
# The runner's own list of (entry, seed) pieces (a trained entry once per seed), as --only takes them.
import sys
from steerlab.plugin import build_registry
from steerlab.run.runner import pieces
from steerlab.study.loader import load_study
registry = build_registry()
print(" ".join(p.label for p in pieces(load_study(sys.argv[1], registry), registry) if p.entry.name != "base"))
PY
)
  for m in $labels; do
    steerlab run --resume "$run" --no-progress --only "$m" > "/tmp/${tag}_$m.log" 2>&1 &
  done
  wait
  stamp "$tag pieces"
  steerlab run --resume "$run" --no-progress > "/tmp/${tag}.log" 2>&1; echo "$tag rc $?"
}

stamp start
# The GPU goals this code has not met or checked yet (benchmarks/RESULTS.md): the CUDA-graph decode
# (tokens equal to generate's, steered, and its speed) and training after the stacked singular values
# + fused AdamW. Capped at 100 s each: the study matters more than a benchmark that hangs.
for what in "graphs --batch 1 64 --tokens 64 --repeats 3" "training --steps 8"; do
  timeout 100 python3 benchmarks/speed.py $what > /tmp/speed_${what%% *}.log 2>&1; echo "rc $?"; stamp "speed $what"
done
fan_out_pieces studies/compare.toml /tmp/runs_cmp cmp; stamp compare
echo ALLDONE

#!/bin/bash
# The GPU job (see README.md): the CUDA-graph decode and training benchmarks, chat3d on the 36 test requests, then the others. A 135M model leaves a GPU mostly idle at these batch sizes
# (launch-bound), so each study fans out: `--only base` first (it trains the judge and writes the
# unsteered answers every method reuses), then one process per remaining method on the same run
# folder, then a plain `--resume` that loads them all and writes results.json and the report. Every
# stage is seeded by its entry name, so the numbers are those of one process running the study.
export PYTHONUNBUFFERED=1 STEERLAB_CACHE=/tmp/cache PYTHONPATH=/tmp/site OMP_NUM_THREADS=2
python3 -c "from steerlab.model.zoo import _load_smollm2; _load_smollm2()" > /tmp/convert.log 2>&1  # GGUF -> safetensors, once
t0=$(date +%s); stamp() { echo "=== $1 at $(( $(date +%s) - t0 )) s"; }

fan_out() {  # fan_out STUDY OUT TAG [--set ...]: base first, the other methods at once, then finish
  local study=$1 out=$2 tag=$3; shift 3
  steerlab run "$study" --out "$out" --no-progress --only base "$@" > "/tmp/${tag}_base.log" 2>&1 || { echo "$tag base failed"; return 1; }
  local run; run=$(ls -d "$out"/*/ | head -1)
  local methods; methods=$(python3 -c "import sys, tomllib; print(' '.join(m for m in tomllib.load(open(sys.argv[1], 'rb'))['methods'] if m != 'base'))" "$study")
  for m in $methods; do
    steerlab run --resume "$run" --no-progress --only "$m" > "/tmp/${tag}_$m.log" 2>&1 &
  done
  wait
  steerlab run --resume "$run" --no-progress > "/tmp/${tag}.log" 2>&1; echo "$tag rc $?"
}

stamp start
# First the checks this code has not had on a GPU yet (2026-11-26): the CUDA-graph decode (tokens equal
# to generate's, steered, and its speed) and training after the stacked singular values + fused AdamW.
for what in "graphs --batch 1 64 --tokens 64 --repeats 3" "training --steps 8"; do
  python3 benchmarks/speed.py $what > /tmp/speed_${what%% *}.log 2>&1; echo "rc $?"; stamp "speed $what"
done
# Then chat3d as the study file says, on all 36 test requests.
fan_out studies/chat3d.toml /tmp/runs_c3 c3 --set 'data.eval_limit=36'; stamp chat3d
for what in "switch" "generation --batch 1 64 --tokens 32 --repeats 3"; do
  python3 benchmarks/speed.py $what > /tmp/speed_${what%% *}.log 2>&1; echo "rc $?"; stamp "speed $what"
done
echo ALLDONE

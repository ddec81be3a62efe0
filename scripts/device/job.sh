#!/bin/bash
# Copy of the job that ran on the H200 lease of 2026-11-26 (see README.md); edit the steps to fit the lease.
# The GPU job: ablation, then chat3d (test half) with the winner, then the speed benchmarks.
export PYTHONUNBUFFERED=1 STEERLAB_CACHE=/tmp/cache PYTHONPATH=/tmp/site
while [ ! -f /tmp/convert.done ]; do sleep 2; done
t0=$(date +%s); stamp() { echo "=== $1 at $(( $(date +%s) - t0 )) s"; }
stamp start
steerlab run studies/chat3d_ablation.toml --out /tmp/runs --no-progress > /tmp/abl.log 2>&1; echo "rc $?"; stamp ablation
python3 .dev4/pick_winner.py > /tmp/winner.txt 2>/tmp/pick.log; cat /tmp/pick.log /tmp/winner.txt
steerlab run studies/chat3d.toml --out /tmp/runs --no-progress --set data.split=\"test\" $(cat /tmp/winner.txt) > /tmp/chat3d.log 2>&1; echo "rc $?"; stamp chat3d
for what in "switch" "generation --batch 1 64 --tokens 32 --repeats 3" "sweep --prompts 12 --tokens 48" "training --steps 8"; do
  python3 benchmarks/speed.py $what > /tmp/speed_${what%% *}.log 2>&1; echo "rc $?"; stamp "speed $what"
done
echo ALLDONE

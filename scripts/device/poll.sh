#!/bin/bash
# poll.sh LIMIT_S: wait until the job prints ALLDONE or LIMIT_S seconds pass, then pack what is finished
# into $OUT (at most 8 files of 16 MiB come back): the runs without the methods' weights (a metric's small
# judge is kept, as git keeps it in progress/), the logs, and the chat3d
# run's weights in parts when that run has not finished (so it can be finished elsewhere with --resume).
lim=$1; s=$(date +%s)
while ! grep -q ALLDONE /tmp/job.log 2>/dev/null && [ $(( $(date +%s) - s )) -lt "$lim" ]; do sleep 5; done
cat /tmp/job.log
cd /tmp || exit 1
[ -d runs_abl ] && tar czf "$OUT/abl.tgz" --exclude='*/methods/*.safetensors' runs_abl
[ -d runs_c3 ] && tar czf "$OUT/c3.tgz" --exclude='*/methods/*.safetensors' runs_c3
[ -d runs_cmp ] && tar czf "$OUT/cmp.tgz" --exclude='*/methods/*.safetensors' runs_cmp
tar czf "$OUT/logs.tgz" ./*.log winner.txt 2>/dev/null
if [ -d runs_c3 ] && ! ls runs_c3/*/results.json > /dev/null 2>&1; then
  find runs_c3 -name '*.safetensors' | tar cf - -T - | split -b 15M - "$OUT/c3art.part"
fi
ls -la "$OUT"

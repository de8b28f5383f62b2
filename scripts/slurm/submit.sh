#!/usr/bin/env bash
# Submit the paper's protocol to Slurm as job arrays: N tasks train the runs shared by every
# important class (CE first), a second array of N tasks, started when the first has ended,
# trains the class-specific runs (they need every CE run to rank the classes), and one last job
# merges every shard's records into the report (`camri protocol report`).
#
#   DATASET=cifar10 PROFILE=full OUTPUT=/shared/results/cifar10-full scripts/slurm/submit.sh 64
#
# Extra sbatch options (partition, account, time) go in SBATCH_ARGS. A task that finds nothing
# left to train exits at once; resubmitting resumes an unfinished sweep (finished runs are skipped).
set -euo pipefail
n=${1:?give the number of array tasks, e.g. 64}
: "${DATASET:?}" "${PROFILE:?}" "${OUTPUT:?}"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2206
extra=(${SBATCH_ARGS:-})
first=$(sbatch --parsable "${extra[@]}" --export=ALL --array="1-${n}" "$here/protocol_task.sh")
second=$(sbatch --parsable "${extra[@]}" --export=ALL --array="1-${n}" --dependency="afterany:${first}" \
  "$here/protocol_task.sh")
sbatch --parsable "${extra[@]}" --export=ALL --dependency="afterany:${second}" --job-name=camri-report \
  --wrap="${CAMRI:-camri} protocol report --output '${OUTPUT}'"
echo "submitted: shared runs ${first}, class-specific runs ${second}, then the report"

#!/usr/bin/env bash
# One task of a Slurm job array running the paper's protocol: task i of n trains share i/n of
# the runs (`camri protocol --shard i/n`) into one shared output folder, on the GPU Slurm gives it.
# Submit the whole sweep with scripts/slurm/submit.sh, which also merges the shards' records.
#
#   DATASET=cifar10 PROFILE=full OUTPUT=/shared/results/cifar10-full sbatch --array=1-64 protocol_task.sh
#
# Environment: DATASET, PROFILE, OUTPUT (required; OUTPUT on a file system every node sees),
# DATA_DIR (optional: the dataset's folder or archive), CAMRI (the command, default `camri`),
# CAMRI_ARGS (more options for `camri protocol`, e.g. "--threads-per-worker 4").
#SBATCH --job-name=camri-protocol
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=24:00:00
#SBATCH --output=camri-protocol-%A_%a.out
set -euo pipefail

: "${SLURM_ARRAY_TASK_ID:?run this as a Slurm job array task (sbatch --array=1-N ...): SLURM_ARRAY_TASK_ID is not set}"
: "${DATASET:?set DATASET (e.g. cifar10)}" "${PROFILE:?set PROFILE (e.g. full)}" "${OUTPUT:?set OUTPUT (the shared results folder)}"
# Share i of n, counted from 1 whatever the array's first index (--array=0-63 or 1-64).
first=${SLURM_ARRAY_TASK_MIN:-1}
count=${SLURM_ARRAY_TASK_COUNT:?SLURM_ARRAY_TASK_COUNT is not set: submit with sbatch --array}
share=$((SLURM_ARRAY_TASK_ID - first + 1))
if [ "$share" -lt 1 ] || [ "$share" -gt "$count" ]; then
  echo "array task ${SLURM_ARRAY_TASK_ID} is outside the array (first ${first}, ${count} tasks)" >&2
  exit 2
fi
args=(protocol --dataset "$DATASET" --profile "$PROFILE" --output "$OUTPUT" --shard "${share}/${count}" --quiet)
if [ -n "${DATA_DIR:-}" ]; then args+=(--data-dir "$DATA_DIR"); fi
# shellcheck disable=SC2206  # CAMRI_ARGS is split into words on purpose
args+=(${CAMRI_ARGS:-})
echo "task ${SLURM_ARRAY_TASK_ID}: share ${share}/${count} of ${DATASET}/${PROFILE} into ${OUTPUT}"
exec ${CAMRI:-camri} "${args[@]}"

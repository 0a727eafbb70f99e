#!/bin/sh
# shardcap over M = 4 nodes as a Slurm job array: task K runs `shardcap run --partition K/4` and
# writes global shards 4K..4K+3 of a 16-shard space (-n 4 each). Requeue a failed task
# (`scontrol requeue JOBID_K`); it resumes from its journal on the shared file system.
#
# Requirements: /shared (NFS, CephFS, Lustre...) mounted at the same path on every node, with the
# captures under /shared/pcap; each partition keeps its journal and logs under
# /shared/run/part-K. Change M in two places: --array=0-(M-1) and M below.
#SBATCH --job-name=shardcap
#SBATCH --array=0-3
#SBATCH --nodes=1
#SBATCH --exclusive
#SBATCH --requeue
#SBATCH --output=/shared/run/slurm-%A_%a.out

M=4
K=$SLURM_ARRAY_TASK_ID
RUN=/shared/run/part-$K

exec shardcap run --partition "$K/$M" -n 4 --ids suricata \
    --log-dir "$RUN/logs" --state "$RUN/state" /shared/pcap

#!/bin/bash
# A governor run on 8 nodes: 4 partitions of 2 nodes, each scheduling its own nodes, with
# the report, charts and a live view. Submit with:  sbatch sbatch-partitions.sh
#SBATCH --job-name=qcg-sweep
#SBATCH --nodes=8
#SBATCH --ntasks-per-node=48
#SBATCH --time=02:00:00
#SBATCH --output=qcg-sweep.%j.out

set -euo pipefail
module load python/3.11 || true          # whatever gives your site's Python >= 3.9
source "$HOME/venvs/qcg/bin/activate"    # python -m venv ~/venvs/qcg && pip install qcg_pilotjob

RUN="$SLURM_SUBMIT_DIR/run.$SLURM_JOB_ID"
mkdir -p "$RUN"

# the same request file as on a laptop (see examples/sweep.json); the governor reads the
# allocation from SLURM_* and starts one partition manager per 2 nodes with srun
qcg-pm-service --wd "$RUN" --file-path "$SLURM_SUBMIT_DIR/sweep.json" \
    --slurm-partition-nodes 2 --report-format json --show-progress

# afterwards: what ran where, how full the allocation was, what failed
qcg-pm-report stats "$RUN" --details
qcg-pm-report efficiency "$RUN"
qcg-pm-report jobs "$RUN" --state failed --details
qcg-pm-report gantt "$RUN" "$RUN/gantt.svg"
qcg-pm-report utilisation "$RUN" "$RUN/utilisation.svg"

# while it runs, from the login node:   qcg-pm --wd <RUN> top
# if the allocation ended early, resume in a new one with the same command line and
# --resume "$RUN" (finished tasks are not run again)

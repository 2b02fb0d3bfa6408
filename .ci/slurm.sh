#!/usr/bin/env bash
# The cluster profile on a real SLURM: a one-node cluster (Debian slurm-wlm + munge) with a fake
# GPU gres, the smoke DAG run through profiles/slurm with gpu=1 on the training rules, Table 1
# checked, and the daemons this script started stopped by their PIDs.
#   bash .ci/slurm.sh            (as root; installs the packages when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
make env >/dev/null  # the project's environment (snakemake, the SLURM plugin, vmp)
export PATH="$ROOT/.venv/bin:$PATH"
WORK=$(mktemp -d /tmp/vmp-slurm.XXXXXX)
PIDS=()

stop_daemons() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    # Our configuration only: a cluster's own /etc/slurm is never touched (see below).
    if [[ -L /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) == "$WORK"/* ]]; then
        rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf
    fi
}
trap stop_daemons EXIT

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get install -y -q slurm-wlm munge </dev/null >"$WORK/apt.log" 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q slurm-wlm munge </dev/null >"$WORK/apt.log" 2>&1; } ||
        { tail -20 "$WORK/apt.log"; exit 1; }
fi

NODE=$(hostname -s)
CPUS=$(nproc)
mkdir -p "$WORK"/{state,spool,log,munge}
cat >"$WORK/slurm.conf" <<EOF
ClusterName=vmpci
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge/munge.socket
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
GresTypes=gpu
MpiDefault=none
NodeName=$NODE CPUs=$CPUS RealMemory=16000 Gres=gpu:1 State=UNKNOWN
PartitionName=vmpgpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
echo "Name=gpu File=/dev/null" >"$WORK/gres.conf"
# srun inside a job reads /etc/slurm/slurm.conf whatever SLURM_CONF the daemons had, so the
# configuration is linked there; refuse to run beside a real cluster's configuration.
if [[ -e /etc/slurm/slurm.conf ]]; then
    echo "/etc/slurm/slurm.conf exists: not starting a test cluster beside a configured one" >&2
    exit 1
fi
mkdir -p /etc/slurm
ln -s "$WORK/slurm.conf" /etc/slurm/slurm.conf
ln -s "$WORK/gres.conf" /etc/slurm/gres.conf

munged --force --socket="$WORK/munge/munge.socket" --pid-file="$WORK/munge/munged.pid" \
    --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/munged.seed"
PIDS+=("$(cat "$WORK/munge/munged.pid")")
slurmctld
slurmd
for _ in $(seq 100); do [[ -s $WORK/slurmctld.pid && -s $WORK/slurmd.pid ]] && break; sleep 0.1; done
PIDS+=("$(cat "$WORK/slurmctld.pid")" "$(cat "$WORK/slurmd.pid")")
for _ in $(seq 60); do
    sinfo -h -N -o "%T" 2>/dev/null | grep -qx idle && break
    sleep 1
done
sinfo -h -N -o "%N %T %G" | tee "$WORK/sinfo.txt"
grep -q idle "$WORK/sinfo.txt" || { tail -20 "$WORK"/log/*.log; exit 1; }

# The user's one edit: the partition in a copy of the profile.
mkdir -p "$WORK/profile"
sed 's/^\(\s*slurm_partition:\).*/\1 vmpgpu/' profiles/slurm/config.yaml >"$WORK/profile/config.yaml"
grep -q "slurm_partition: vmpgpu" "$WORK/profile/config.yaml"

python - "$WORK" <<'EOF'
import sys
from pathlib import Path
import yaml
work = Path(sys.argv[1])
config = yaml.safe_load(Path("config/smoke.yaml").read_text())
config |= {"results": str(work / "results"), "data_root": str(work / "data")}
config["resources"] = config.get("resources", {}) | {"gpu": 1}
(work / "smoke.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
EOF

cd "$WORK"  # sbatch logs (.snakemake/slurm_logs) stay out of the checkout
ln -s "$ROOT"/{Snakefile,rules,notebooks,config,report,envs,profiles} .
snakemake --profile "$WORK/profile" --configfile "$WORK/smoke.yaml" --cores 2 all \
    >"$WORK/snakemake.log" 2>&1 || { tail -40 "$WORK/snakemake.log"; exit 1; }

python - "$WORK" <<'EOF'
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

work = Path(sys.argv[1])
table = pd.read_csv(work / "results/tables/table1.csv")
assert list(table["variant"]) == ["baseline", "vmp", "vmp_gate", "vmp_normalized", "vmp_oracle"], table
assert table["top1_mean"].between(0, 100).all(), table
log = (work / "snakemake.log").read_text()
submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", log)
training = [job for job, rule in submitted if rule.startswith(("finetune", "pretrain"))]
assert training, f"no training job went through SLURM:\n{log[-2000:]}"
# Finished jobs stay visible to scontrol for MinJobAge (300 s): each asked for the GPU.
shown = subprocess.run(["scontrol", "-o", "show", "job", training[-1]], capture_output=True, text=True)
assert "gres/gpu" in shown.stdout or "gpu:1" in shown.stdout, shown.stdout + shown.stderr
print(f"SLURM smoke run: Table 1 with {len(table)} rows, {len(submitted)} SLURM jobs "
      f"({len(training)} training, each with a GPU)")
EOF

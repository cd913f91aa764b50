#!/usr/bin/env bash
# Bring up a real one-node Slurm cluster on this (Debian) machine, without systemd, for jsweep's Slurm
# tests and for trying launcher=slurm on a workstation. Installs slurmctld, slurmd, slurm-client and munge
# (apt) when they are missing, makes fake GPUs (character devices, major 195) declared as GRES, and starts
# munged, slurmctld and slurmd directly. No accounting database: jsweep polls jobs with squeue and reads
# each cell's own status file, so slurmdbd/mariadb are not needed.
#
#   scripts/slurm_up.sh            # start (idempotent: an already running cluster is left alone)
#   scripts/slurm_up.sh down       # stop the daemons this script started
#
# Environment: SLURM_FAKE_GPUS (default 4), SLURM_PARTITION (default debug), SLURM_STATE (default
# /var/tmp/jsweep-slurm). Needs root.
set -euo pipefail
STATE="${SLURM_STATE:-/var/tmp/jsweep-slurm}"
GPUS="${SLURM_FAKE_GPUS:-4}"
PART="${SLURM_PARTITION:-debug}"
HOST="$(hostname -s)"

if [[ "${1:-}" == down ]]; then
  for d in slurmd slurmctld munged; do
    [[ -f "$STATE/$d.pid" ]] && kill "$(cat "$STATE/$d.pid")" 2>/dev/null || true
  done
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then echo "slurm_up: needs root" >&2; exit 1; fi
t0=$(date +%s)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

if scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "slurm_up: cluster already up ($(sinfo -h -o '%P %D %G' | head -1))"; exit 0
fi

mkdir -p "$STATE"/{ctld,spool,log,dev} /etc/slurm /run/munge /var/log/munge /var/lib/munge
# munge: a key of its own, the daemon as the munge user
if [[ ! -s /etc/munge/munge.key ]]; then
  mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
  pgrep -x munged > "$STATE/munged.pid"
fi

# Fake GPUs: character devices of NVIDIA's major number. Slurm hands them out as GRES and sets
# CUDA_VISIBLE_DEVICES in each job; no driver is needed (cells run on CPU, multi-process ones with gloo).
files=()
for ((i = 0; i < GPUS; i++)); do
  [[ -e "$STATE/dev/nvidia$i" ]] || mknod "$STATE/dev/nvidia$i" c 195 "$i"
  files+=("$STATE/dev/nvidia$i")
done
cpus=$(( $(nproc) > 8 ? $(nproc) : 8 ))   # more CPUs than cores: several small test cells share a CPU
cat > /etc/slurm/slurm.conf <<CONF
# written by jsweep scripts/slurm_up.sh: a one-node test cluster
ClusterName=jsweep
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=10
MinJobAge=30
InactiveLimit=0
JobRequeue=1
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$PART Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
echo "NodeName=$HOST Name=gpu File=$STATE/dev/nvidia[0-$((GPUS - 1))]" > /etc/slurm/gres.conf
echo "ConstrainDevices=no" > /etc/slurm/cgroup.conf

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)$'; then
    echo "slurm_up: one-node cluster up in $(( $(date +%s) - t0 )) s: $(sinfo -h -o 'partition %P, %D node(s), %c CPUs, GRES %G')"
    exit 0
  fi
  sleep 1
done
echo "slurm_up: the cluster did not come up; logs in $STATE/log:" >&2
tail -n 20 "$STATE"/log/*.log >&2 || true
exit 1

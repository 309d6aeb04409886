#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm executor's test (test/slurm.test.ts) and for
# trying `--executor slurm` without a cluster: munged, slurmctld and slurmd on localhost, one partition
# "debug" with this machine's cores and memory, no accounting database (so `sacct` has nothing; the
# executor's status falls back to squeue and each task's exit file).
#
#   bash scripts/slurm-local.sh start DIR   # writes DIR/slurm.conf, starts the daemons, waits for the node
#   bash scripts/slurm-local.sh stop DIR    # stops them (and cancels what is left)
#
# Clients then need SLURM_CONF=DIR/slurm.conf. Needs Debian's slurmctld, slurmd, slurm-client and munge
# (scripts/setup.sh installs them with TAGI_SLURM=1; .ci/run does) and root (slurmd runs jobs as any user).
set -euo pipefail
cmd=${1:?usage: slurm-local.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: slurm-local.sh start|stop DIR}")
node=$(hostname -s)
case "$cmd" in
start)
  for b in munged slurmctld slurmd sbatch squeue; do
    command -v "$b" >/dev/null || { echo "slurm-local: $b not found: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 1; }
  done
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  # munge: a key of our own and a socket in DIR, so nothing system-wide is touched
  [ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 700 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$dir/slurm.conf" <<EOF
ClusterName=tagi-local
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 60); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    case "$state" in idle*|mix*|alloc*) echo "slurm-local: node $node $state (SLURM_CONF=$SLURM_CONF)"; exit 0 ;; esac
    sleep 0.5
  done
  echo "slurm-local: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
  ;;
stop)
  export SLURM_CONF="$dir/slurm.conf"
  [ -f "$SLURM_CONF" ] && scancel --quiet -u "$(id -un)" 2>/dev/null || true
  for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  for _ in $(seq 1 20); do
    alive=0
    for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
      [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  echo "slurm-local: stopped"
  ;;
*) echo "usage: slurm-local.sh start|stop DIR" >&2; exit 2 ;;
esac

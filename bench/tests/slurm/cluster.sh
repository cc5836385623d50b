#!/usr/bin/env bash
# A real single-node Slurm cluster for the Slurm integration test, in a scratch folder.
#
#   cluster.sh start DIR   installs slurm-wlm and munge if missing (Debian, as root), then
#                          starts munged, slurmctld and slurmd with every file under DIR and
#                          prints `SLURM_CONF=DIR/slurm.conf` (the clients' only setting)
#   cluster.sh stop DIR    stops the three daemons by the PIDs in DIR/*.pid
#
# Exit status 3 means "Slurm cannot be installed or started here" (not root, no apt-get, no
# package): the test reports "skipped: <reason>" then. Any other failure is an error.
# Nothing outside DIR is touched except the packages themselves; the daemons listen on
# ports 16817/16818 (not Slurm's defaults, so a real cluster on the machine is left alone).
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop DIR}
dir=${2:?usage: cluster.sh start|stop DIR}
ctld_port=${TOUCHSTONE_SLURMCTLD_PORT:-16817}
slurmd_port=${TOUCHSTONE_SLURMD_PORT:-16818}

skip() { echo "skipped: $*" >&2; exit 3; }

stop() {
    for name in slurmd slurmctld munged; do
        pidfile="$dir/$name.pid"
        [ -s "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [ "$(id -u)" = 0 ] || skip "slurm-wlm and munge are not installed and installing them needs root"
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # The packages must not start their system services (this script starts its own, and
    # stops them by PID): a temporary policy-rc.d denies it where none is set.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    timeout 600 apt-get update -qq >"$dir/apt.log" 2>&1 || skip "apt-get update failed (see $dir/apt.log)"
    timeout 900 apt-get install -y -qq --no-install-recommends slurm-wlm munge >>"$dir/apt.log" 2>&1 \
        || skip "apt-get install slurm-wlm munge failed (see $dir/apt.log)"
}

wait_for() { # what, seconds, command...
    local what=$1 secs=$2; shift 2
    for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out after ${secs}s waiting for $what" >&2
    return 1
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    install
    [ "$(id -u)" = 0 ] || skip "the test cluster's slurmd must run as root"
    mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
    chmod 700 "$dir/munge"
    # munge: a fresh key for this cluster only.
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed"
    wait_for "munged" 10 test -S "$dir/munge/munge.socket"

    host=$(hostname -s)
    # The node line as slurmd itself detects it, with memory rounded down so the node is
    # never drained for having less than configured.
    node=$(slurmd -C | head -1 | sed -E 's/RealMemory=([0-9]+)/RealMemory=\1/')
    mem=$(echo "$node" | sed -nE 's/.*RealMemory=([0-9]+).*/\1/p')
    node=$(echo "$node" | sed -E "s/RealMemory=[0-9]+/RealMemory=$((mem * 9 / 10))/")
    cat >"$dir/slurm.conf" <<CONF
ClusterName=touchstone
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
MinJobAge=3600
DefMemPerCPU=1024
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF"
    wait_for "slurmctld" 30 scontrol ping
    slurmd -f "$SLURM_CONF"
    wait_for "node $host to be idle" 60 sh -c "sinfo -h -N -o %t | grep -qx idle"
    echo "SLURM_CONF=$SLURM_CONF"
}

case "$cmd" in
start) trap 'stop' ERR; start ;;
stop) stop ;;
*) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the Slurm integration tests
# (make test-slurm) and for trying `python -m harness run ... --executor slurm`.
#
#   scripts/slurm-local.sh start     install Slurm and munge with apt where missing, write
#                                    /etc/slurm/slurm.conf for this machine, start munged,
#                                    slurmctld and slurmd, and wait until the node is idle
#   scripts/slurm-local.sh status    which daemons this script started are alive; sinfo
#   scripts/slurm-local.sh stop      end every daemon this script started, by pid
#
# Needs root (the daemons, apt, /etc/slurm). Debian's slurm-wlm 22.05 with munge.
# The node is this machine, sized by `slurmd -C` (its cores and memory), in one
# partition, `debug`; accounting is off (no slurmdbd), so sacct has nothing to say
# and the harness asks squeue instead (harness/run/shards.py).
#
# Everything the daemons keep is in $LSTM_BENCH_SLURM_DIR (default /tmp/lstm-bench-slurm):
# pid files, logs, state. start refuses to overwrite a slurm.conf it did not write.
# Exit status: 0 done, 1 could not (one line says why), 2 bad usage.
set -euo pipefail

DIR="${LSTM_BENCH_SLURM_DIR:-/tmp/lstm-bench-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# written by lstm-bench scripts/slurm-local.sh"
PARTITION=debug
START_WAIT_S=60            # how long start waits for the node to come up idle
STOP_WAIT_S=20             # how long stop waits for a daemon to exit after SIGTERM
KILL_WAIT_S=5              # Slurm's KillWait: seconds between a job's SIGTERM and its SIGKILL

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: $*" >&2; exit 1; }

alive() {   # alive NAME: the daemon this script started under NAME is running
    local f="$DIR/$1.pid"
    [[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get to install it"
    say "installing slurm-wlm and munge with apt"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; } \
        || die "apt-get could not install slurm-wlm and munge"
}

write_conf() {
    if [[ -f "$CONF" ]] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
        die "$CONF exists and was not written by this script; not touching it"
    fi
    local node host
    node="$(slurmd -C | head -n1)"            # NodeName=<host> CPUs=... RealMemory=...
    host="$(hostname -s)"
    mkdir -p "$DIR/ctld" "$DIR/d" "$(dirname "$CONF")"
    cat >"$CONF" <<EOF
$MARK; scripts/slurm-local.sh stop ends its daemons
ClusterName=lstmbench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=$KILL_WAIT_S
MinJobAge=300
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [[ $EUID -eq 0 ]] || die "start needs root (the daemons, apt and /etc/slurm)"
    install
    mkdir -p "$DIR"
    write_conf
    if ! alive munged; then
        if [[ -S /run/munge/munge.socket.2 ]] && munge -n >/dev/null 2>&1; then
            say "munged already runs (not started here, so stop leaves it)"
        else
            mkdir -p /run/munge /var/log/munge /var/lib/munge
            [[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
                                              chmod 400 /etc/munge/munge.key; }
            mkdir -p "$DIR/munge"                # munged runs as munge, and writes only here
            chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge "$DIR/munge"
            runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
                || die "munged did not start (see $DIR/munge/munged.log)"
            for _ in $(seq 50); do [[ -s "$DIR/munge/munged.pid" ]] && break; sleep 0.1; done
            cp "$DIR/munge/munged.pid" "$DIR/munged.pid"
        fi
    fi
    alive slurmctld || slurmctld || die "slurmctld did not start (see $DIR/slurmctld.log)"
    alive slurmd || slurmd || die "slurmd did not start (see $DIR/slurmd.log)"
    local deadline=$((SECONDS + START_WAIT_S)) state=""
    while ((SECONDS < deadline)); do
        state="$(sinfo -h -p "$PARTITION" -o %T 2>/dev/null | head -n1 || true)"
        if [[ "$state" == idle* ]]; then
            say "one-node cluster up: partition $PARTITION, $(sinfo -h -o '%c CPUs, %m MB' | head -n1); state in $DIR"
            return
        fi
        sleep 1
    done
    die "the node did not come up idle within ${START_WAIT_S} s (state: ${state:-none}); see $DIR/*.log"
}

stop() {
    local name pid any=0
    for name in slurmd slurmctld munged; do         # the reverse of start's order
        [[ -s "$DIR/$name.pid" ]] || continue
        pid="$(cat "$DIR/$name.pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq $((STOP_WAIT_S * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            say "stopped $name (pid $pid)"
            any=1
        fi
        rm -f "$DIR/$name.pid"
    done
    ((any)) || say "nothing to stop: no daemon this script started is running"
    if [[ -f "$CONF" ]] && head -n1 "$CONF" | grep -qF "$MARK"; then
        rm -f "$CONF"
    fi
}

status() {
    local name rc=0
    for name in munged slurmctld slurmd; do
        if alive "$name"; then say "$name running (pid $(cat "$DIR/$name.pid"))"; else say "$name not running"; rc=1; fi
    done
    if ((rc == 0)); then sinfo; fi
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: scripts/slurm-local.sh start|stop|status" >&2; exit 2 ;;
esac

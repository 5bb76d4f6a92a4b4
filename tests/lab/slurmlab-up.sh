#!/usr/bin/env bash
# Bring up a throwaway Slurm lab on this host (no systemd needed), following
# docs in /work/shared/notes (tested facts for Slurm 22.05 on Debian 12):
# munged on a private socket, optionally MariaDB + slurmdbd (accounting),
# slurmctld and slurmd on 127.0.0.1. Every PID goes to DIR/run/pids (one
# "NAME PID" line each, in start order); slurmlab-down.sh stops exactly those.
#
#   slurmlab-up.sh [--with-dbd] [--no-install] [--plugstack F] [--prolog F]
#                  [--epilog F] [--conf-extra F] [--port-base N] [--fix-hosts]
#                  [--no-smoke] DIR
#
#   --port-base N  slurmctld N, slurmd N+1, slurmdbd N+2, MariaDB N+3
#                  (default 6817; pick another to run two labs side by side)
#   --conf-extra F lines appended to slurm.conf
# Use the lab with:  source DIR/env.sh   (exports SLURM_CONF)
set -euo pipefail

with_dbd=0 install=1 plugstack='' prolog='' epilog='' conf_extra='' port_base=6817 fix_hosts=0 smoke=1
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --with-dbd) with_dbd=1 ;;
    --no-install) install=0 ;;
    --plugstack) plugstack=${2:?}; shift ;;
    --prolog) prolog=${2:?}; shift ;;
    --epilog) epilog=${2:?}; shift ;;
    --conf-extra) conf_extra=${2:?}; shift ;;
    --port-base) port_base=${2:?}; shift ;;
    --fix-hosts) fix_hosts=1 ;;
    --no-smoke) smoke=0 ;;
    -h|--help) usage ;;
    -*) echo "slurmlab-up: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
  shift
done
[ $# -eq 1 ] || usage
LAB=$1
t0=$(date +%s%N)
log() { local ms=$(( ($(date +%s%N) - t0) / 1000000 )); printf 'slurmlab-up: [%d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2; }
die() { echo "slurmlab-up: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
for f in "$plugstack" "$prolog" "$epilog" "$conf_extra"; do
  [ -z "$f" ] || [ -r "$f" ] || die "$f is not readable"
done
mkdir -p "$LAB"
LAB=$(cd "$LAB" && pwd)
# unix socket paths must stay under 108 bytes
[ ${#LAB} -le 70 ] || die "DIR path too long for unix sockets (${#LAB} > 70): $LAB"
mkdir -p "$LAB"/{run,log,etc,spool/ctld,spool/d,jobs,lib}
pids=$LAB/run/pids
if [ -s "$pids" ]; then
  while read -r name pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then die "$name (pid $pid) from a previous run is still alive; run slurmlab-down.sh $LAB"; fi
  done < "$pids"
fi
: > "$pids"
record() { echo "$1 $2" >> "$pids"; }

# ---- packages
if [ "$install" = 1 ]; then
  pk=(slurmctld slurmd slurm-client munge libslurm-dev gcc libc6-dev iproute2)
  [ "$with_dbd" = 1 ] && pk+=(slurmdbd mariadb-server)
  missing=()
  for p in "${pk[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    guard=/usr/sbin/policy-rc.d made_guard=0
    if [ ! -e "$guard" ]; then printf '#!/bin/sh\nexit 101\n' > "$guard"; chmod 755 "$guard"; made_guard=1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2 &&
      apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
    [ "$made_guard" = 1 ] && rm -f "$guard"
    [ "${rc:-0}" = 0 ] || die "apt-get failed"
  fi
fi

# ---- hostname must resolve to 127.0.0.1 (NoInAddrAny binds to it)
host=$(hostname)
addr=$(getent ahostsv4 "$host" | awk 'NR==1{print $1}')
if [ "$addr" != 127.0.0.1 ]; then
  if [ "$fix_hosts" = 1 ]; then
    sed -i "1i 127.0.0.1 $host # slurmlab-added" /etc/hosts
    echo 1 > "$LAB/run/hosts-fixed"
    log "added '127.0.0.1 $host' to /etc/hosts"
  else
    die "hostname $host resolves to '${addr:-nothing}', not 127.0.0.1 (use --fix-hosts)"
  fi
fi

ctld_port=$port_base slurmd_port=$((port_base + 1)) dbd_port=$((port_base + 2)) my_port=$((port_base + 3))
for p in $ctld_port $slurmd_port; do ss -ltn "( sport = :$p )" | grep -q LISTEN && die "port $p is in use (try --port-base)"; done
if [ "$with_dbd" = 1 ]; then
  for p in $dbd_port $my_port; do ss -ltn "( sport = :$p )" | grep -q LISTEN && die "port $p is in use (try --port-base)"; done
fi

wait_pidfile() { # FILE NAME TIMEOUT_S -> echoes the pid
  local f=$1 i
  for i in $(seq 1 $(( $3 * 20 ))); do
    if [ -s "$f" ]; then local p; p=$(head -n1 "$f" | tr -dc 0-9); [ -n "$p" ] && kill -0 "$p" 2>/dev/null && { echo "$p"; return 0; }; fi
    sleep 0.05
  done
  die "$2 did not write a live pid to $f (see $LAB/log)"
}
wait_port() { # PORT NAME TIMEOUT_S
  local i
  for i in $(seq 1 $(( $3 * 20 ))); do ss -ltn "( sport = :$1 )" | grep -q LISTEN && return 0; sleep 0.05; done
  die "$2 is not listening on $1 (see $LAB/log)"
}

# ---- munged on a private socket, as the munge user
mkdir -p "$LAB/munge"
[ -s "$LAB/munge/munge.key" ] || mungekey -c -k "$LAB/munge/munge.key"
chown -R munge:munge "$LAB/munge"; chmod 0755 "$LAB/munge" "$LAB"; chmod 0400 "$LAB/munge/munge.key"
rm -f "$LAB/munge/munged.pid"
runuser -u munge -- munged --socket="$LAB/munge/munge.socket" --key-file="$LAB/munge/munge.key" \
  --pid-file="$LAB/munge/munged.pid" --log-file="$LAB/munge/munged.log" --seed-file="$LAB/munge/munged.seed"
record munged "$(wait_pidfile "$LAB/munge/munged.pid" munged 10)"
munge -n -S "$LAB/munge/munge.socket" | unmunge -S "$LAB/munge/munge.socket" >/dev/null || die "munge round trip failed"
log "munged up"

memtotal=$(awk '/MemTotal/{print int($2/1024*0.9)}' /proc/meminfo)
acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
if [ "$with_dbd" = 1 ]; then
  # ---- MariaDB, datadir in the lab
  mkdir -p "$LAB/mysql"
  cat > "$LAB/mysql/my.cnf" <<CNF
[mariadbd]
datadir=$LAB/mysql/data
socket=$LAB/mysql/mysqld.sock
port=$my_port
bind-address=127.0.0.1
pid-file=$LAB/mysql/mysqld.pid
log-error=$LAB/log/mariadb.log
user=mysql
skip-name-resolve
innodb_buffer_pool_size=128M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
[client]
socket=$LAB/mysql/mysqld.sock
CNF
  chown -R mysql:mysql "$LAB/mysql"; touch "$LAB/log/mariadb.log"; chown mysql:mysql "$LAB/log/mariadb.log"
  fresh=0
  if [ ! -d "$LAB/mysql/data/mysql" ]; then
    mariadb-install-db --defaults-file="$LAB/mysql/my.cnf" --auth-root-authentication-method=socket >"$LAB/log/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed (see $LAB/log/mariadb-install.log)"
    fresh=1
  fi
  rm -f "$LAB/mysql/mysqld.pid"
  setsid mariadbd --defaults-file="$LAB/mysql/my.cnf" </dev/null >"$LAB/log/mariadbd.out" 2>&1 &
  record mariadbd "$(wait_pidfile "$LAB/mysql/mysqld.pid" mariadbd 30)"
  for i in $(seq 1 200); do mariadb --defaults-file="$LAB/mysql/my.cnf" -u root -e 'select 1' >/dev/null 2>&1 && break; sleep 0.05; done
  if [ "$fresh" = 1 ]; then
    mariadb --defaults-file="$LAB/mysql/my.cnf" -u root -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmlabpw';
      CREATE USER 'slurm'@'localhost' IDENTIFIED BY 'slurmlabpw';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" ||
      die "creating the slurm database user failed"
  fi
  log "MariaDB up on 127.0.0.1:$my_port"

  # ---- bind shim: slurmdbd binds 0.0.0.0 and has no listen-address option
  cat > "$LAB/lib/bind_lo.c" <<'SHIM'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
int bind(int fd, const struct sockaddr *sa, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    struct sockaddr_in a;
    memcpy(&a, sa, sizeof a);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY)) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return real(fd, (const struct sockaddr *)&a, sizeof a);
  }
  if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 a;
    memcpy(&a, sa, sizeof a);
    if (!memcmp(&a.sin6_addr, &in6addr_any, sizeof a.sin6_addr)) a.sin6_addr = in6addr_loopback;
    return real(fd, (const struct sockaddr *)&a, sizeof a);
  }
  return real(fd, sa, len);
}
SHIM
  gcc -shared -fPIC -O2 -o "$LAB/lib/bind_lo.so" "$LAB/lib/bind_lo.c" -ldl || die "building the bind shim failed"

  cat > "$LAB/etc/slurmdbd.conf" <<DBD
AuthType=auth/munge
AuthInfo=socket=$LAB/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
DebugLevel=info
LogFile=$LAB/log/slurmdbd.log
PidFile=$LAB/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$my_port
StorageUser=slurm
StoragePass=slurmlabpw
StorageLoc=slurm_acct_db
DBD
  chmod 0600 "$LAB/etc/slurmdbd.conf"
  acct="JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$LAB/munge/munge.socket
AccountingStoreFlags=job_comment"
fi

# ---- slurm.conf
{
  cat <<CONF
ClusterName=lab
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$LAB/munge/munge.socket
CredType=cred/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$LAB/spool/ctld
SlurmdSpoolDir=$LAB/spool/d
SlurmctldPidFile=$LAB/run/slurmctld.pid
SlurmdPidFile=$LAB/run/slurmd.pid
SlurmctldLogFile=$LAB/log/slurmctld.log
SlurmdLogFile=$LAB/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=300
PrologFlags=Alloc
$acct
PlugStackConfig=$LAB/etc/plugstack.conf
CONF
  [ -n "$prolog" ] && echo "Prolog=$(readlink -f "$prolog")"
  [ -n "$epilog" ] && echo "Epilog=$(readlink -f "$epilog")"
  [ -n "$conf_extra" ] && cat "$conf_extra"
  echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memtotal State=UNKNOWN"
  echo "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
} > "$LAB/etc/slurm.conf"
if [ -n "$plugstack" ]; then cp "$plugstack" "$LAB/etc/plugstack.conf"; else : > "$LAB/etc/plugstack.conf"; fi
cat > "$LAB/env.sh" <<ENV
export SLURM_CONF=$LAB/etc/slurm.conf
export SLURMLAB_DIR=$LAB
export SLURMLAB_MUNGE_SOCKET=$LAB/munge/munge.socket
ENV
export SLURM_CONF=$LAB/etc/slurm.conf

if [ "$with_dbd" = 1 ]; then
  rm -f "$LAB/run/slurmdbd.pid"
  SLURM_CONF=$LAB/etc/slurm.conf LD_PRELOAD=$LAB/lib/bind_lo.so slurmdbd ||
    die "slurmdbd failed to start (see $LAB/log/slurmdbd.log)"
  record slurmdbd "$(wait_pidfile "$LAB/run/slurmdbd.pid" slurmdbd 20)"
  wait_port "$dbd_port" slurmdbd 30
  sacctmgr -i add cluster lab >/dev/null 2>&1 || true
  sacctmgr -i add account labacct Description=lab Organization=lab >/dev/null 2>&1 || true
  sacctmgr -i add user root Account=labacct DefaultAccount=labacct AdminLevel=Admin >/dev/null 2>&1 || true
  sacctmgr -n -P list cluster format=cluster | grep -qx lab || die "sacctmgr could not register cluster lab"
  log "slurmdbd up on 127.0.0.1:$dbd_port"
fi

rm -f "$LAB/run/slurmctld.pid" "$LAB/run/slurmd.pid"
slurmctld -f "$SLURM_CONF" || die "slurmctld failed to start (see $LAB/log/slurmctld.log)"
record slurmctld "$(wait_pidfile "$LAB/run/slurmctld.pid" slurmctld 20)"
slurmd -f "$SLURM_CONF" -N localhost || die "slurmd failed to start (see $LAB/log/slurmd.log; a 'required' SPANK plugin that fails to load stops slurmd)"
record slurmd "$(wait_pidfile "$LAB/run/slurmd.pid" slurmd 20)"
for i in $(seq 1 600); do
  st=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  [ "$st" = idle ] && break
  [ "$i" = 600 ] && die "node did not become idle (state '$st'; see $LAB/log)"
  sleep 0.05
done
log "slurmctld + slurmd up, node idle"

if [ "$smoke" = 1 ]; then
  out=$(cd "$LAB/jobs" && srun -N1 -n1 hostname) || die "smoke: srun failed"
  jid=$(cd "$LAB/jobs" && sbatch --parsable -o "$LAB/jobs/%j.out" --wrap 'echo ok') || die "smoke: sbatch failed"
  for i in $(seq 1 400); do squeue -h -j "$jid" 2>/dev/null | grep -q . || break; sleep 0.05; done
  if [ "$with_dbd" = 1 ]; then
    for i in $(seq 1 200); do sacct -j "$jid" -X -n -P -o State 2>/dev/null | grep -q COMPLETED && break; sleep 0.05; done
    sacct -j "$jid" -X -n -P -o State | grep -q COMPLETED || die "smoke: sacct does not show job $jid COMPLETED"
  fi
  log "smoke test passed (srun on $out, batch job $jid)"
fi
ss -ltnp 2>/dev/null | grep -E "slurm|mariadb" >&2 || true
log "ready: source $LAB/env.sh ; stop with: $(dirname "$(readlink -f "$0")")/slurmlab-down.sh $LAB"

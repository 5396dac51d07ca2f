# Helpers shared by the benchmark scripts (sourced, not run). The caller sets
# BIN (the directory of txcoord, txagent, txbench, txadmin) and PIDS (an
# array); every process started here is a child of the caller's shell, its pid
# appended to PIDS so that the caller's EXIT trap can stop it.
# Everything listens on 127.0.0.1 only, and every wait is bounded.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
proc_ticks() { # PID... -> each one's CPU so far (utime+stime, clock ticks), one per line
  local p; for p in "$@"; do cut -d' ' -f14,15 "/proc/$p/stat"; done | awk '{print $1 + $2}'
}
json() { python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, r))' "$@"; }
# WORK, a new directory /tmp/txc-NAME.XXXXXX, and PIDS, the processes the
# script starts: when the script exits, each of them is stopped by its pid and
# the directory removed.
work_dir() { # name
  WORK=$(mktemp -d "/tmp/txc-$1.XXXXXX")
  PIDS=()
  trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}
# Forgets a pid once its process is reaped, so the trap never signals a reused pid.
forget() { local keep=(); for p in "${PIDS[@]:-}"; do [ "$p" != "$1" ] && keep+=("$p"); done; PIDS=("${keep[@]:-}"); }
# Stops the given pids (SIGTERM), reaps them and forgets them.
stop_pids() { local p; for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; forget "$p"; done; }

# ------------------------------------------------ a 3-replica txcoord group
# With GMETRICS=1 set before start_group, replica i also serves /metrics on
# 127.0.0.1:${GM[i]}.
# With GLOGBENCH=1, the replicas serve LogBench.Append (--serve-log-bench),
# which txbench log and txbench probe call.
# With GTLS=DIR (certificates made by scripts/make-certs.sh DIR), every
# process runs mutual TLS: tls_flags ROLE gives its flags.
declare -A GP GPID GM
GDIR=""; GLIST=""; PEERS=""; GMETRICS=${GMETRICS:-0}; GLOGBENCH=${GLOGBENCH:-0}; GTLS=${GTLS:-}
tls_flags() { # role -> the --tls-* flags of that role when GTLS is set, else nothing
  [ -n "$GTLS" ] && echo "--tls-cert $GTLS/$1.crt --tls-key $GTLS/$1.key --tls-ca $GTLS/ca.crt" || true
}
start_replica() { # id
  local extra=()
  if [ "$GMETRICS" = 1 ]; then extra=(--metrics-listen "127.0.0.1:${GM[$1]}"); fi
  if [ "$GLOGBENCH" = 1 ]; then extra+=(--serve-log-bench); fi
  # shellcheck disable=SC2207
  extra+=($(tls_flags replica))
  # GEXTRA: more txcoord flags for every replica (word-split), e.g. "--retain-ended 20000";
  # GLOGLEVEL: their --log-level (default warn).
  # shellcheck disable=SC2206
  [ -n "${GEXTRA:-}" ] && extra+=($GEXTRA)
  "$BIN/txcoord" --id "$1" --listen "127.0.0.1:${GP[$1]}" --peers "$PEERS" --data "$GDIR/r$1" \
    "${extra[@]}" --log-level "${GLOGLEVEL:-warn}" 2>>"$GDIR/r$1.log" & GPID[$1]=$!; PIDS+=($!)
}
start_group() { # dir
  GDIR=$1; mkdir -p "$GDIR"
  for i in 1 2 3; do GP[$i]=$(free_port); if [ "$GMETRICS" = 1 ]; then GM[$i]=$(free_port); fi; done
  PEERS="1=127.0.0.1:${GP[1]},2=127.0.0.1:${GP[2]},3=127.0.0.1:${GP[3]}"
  GLIST="127.0.0.1:${GP[1]},127.0.0.1:${GP[2]},127.0.0.1:${GP[3]}"
  for i in 1 2 3; do start_replica $i; done
  for i in 1 2 3; do wait_port "${GP[$i]}"; done
}
stop_group() { stop_pids "${GPID[1]}" "${GPID[2]}" "${GPID[3]}"; }
leader_of_group() { # prints the leader's id once one serves (10 s at most)
  for _ in $(seq 1 100); do
    local l
    l=$(timeout 5 "$BIN/txadmin" --coordinator "$GLIST" $(tls_flags admin) status --json 2>/dev/null |
        python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["leader"] if s["leader_reachable"] else "")' 2>/dev/null || true)
    [ -n "$l" ] && { echo "$l"; return 0; }
    sleep 0.1
  done
  return 1
}
group_caught_up() { # all three replicas answer and trail the leader by <= 100 slots (20 s at most)
  for _ in $(seq 1 200); do
    timeout 5 "$BIN/txadmin" --coordinator "$GLIST" $(tls_flags admin) status --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
sys.exit(0 if r["leader_reachable"] and len(r["replicas"]) == 3 and max(x["lag"] for x in r["replicas"]) <= 100 else 1)' \
      2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------- two SQLite agents
start_agents() { # dir coordinator-list: txagents bank_a and bank_b (SQLite under dir)
  # -> APID, BPID and AGENTS (txbench's --agent flags)
  local ap bp; ap=$(free_port); bp=$(free_port)
  "$BIN/txagent" --listen 127.0.0.1:$ap --data "$1/a" --coordinator "$2" --resource bank_a=sqlite:$1/a.db --log-level warn 2>"$1/a.log" & APID=$!; PIDS+=($!)
  "$BIN/txagent" --listen 127.0.0.1:$bp --data "$1/b" --coordinator "$2" --resource bank_b=sqlite:$1/b.db --log-level warn 2>"$1/b.log" & BPID=$!; PIDS+=($!)
  AGENTS=(--agent bank_a=127.0.0.1:$ap --agent bank_b=127.0.0.1:$bp)
  wait_port $ap; wait_port $bp
}

# ------------------------------------------------------------ SVG plots
# The scripts write each plot's data to a .dat file in PLOT_DIR and draw the
# SVG next to it with scripts/plots/*.gp; PLOT_DIR is docs/ unless set (e.g.
# to keep a smoke run's plots out of the tree).
PLOT_DIR=${PLOT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../docs" && pwd)}
PLOT_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/plots" && pwd)
mkdir -p "$PLOT_DIR"
cpu_model() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'; }
# The plots' second title line: which machine, which day.
PLOT_MACHINE="$(nproc) cores, $(cpu_model | sed 's/([RT]M\?)//g; s/ CPU / /; s/  */ /g' | tr -d "'"), $(date -u +%F)"
plot() { # script data.dat out.svg [gnuplot assignments]: scripts/plots/script.gp draws PLOT_DIR/out.svg from PLOT_DIR/data.dat
  if ! command -v gnuplot >/dev/null 2>&1; then
    # Said once per script: the tables are the result, the plots a picture of them.
    [ -n "${PLOTS_SKIPPED:-}" ] || echo "- plots skipped: gnuplot is not installed (scripts/install-deps.sh installs gnuplot-nox)"
    PLOTS_SKIPPED=1; return 0
  fi
  # Drawn aside and moved in place: a failed plot leaves the last good one.
  if gnuplot -e "dat='$PLOT_DIR/$2'; out='$WORK/$3'; machine='$PLOT_MACHINE'; ${4:-}" \
       "$PLOT_SCRIPTS/$1.gp" 2>"$WORK/plot-$3.err" && mv "$WORK/$3" "$PLOT_DIR/$3"; then
    echo "- plot: $PLOT_DIR/$3"
  else
    echo "- plot $3 failed: $(head -c 300 "$WORK/plot-$3.err" | tr '\n' ' ')"
  fi
}

#!/usr/bin/env bash
# Scale-out on PostgreSQL against the embedded SQLite store, in one session: read throughput
# (GetSecretValue signed by an IAM user: authentication, policy evaluation, decryption) of
# one SQLite node, one PostgreSQL node and two PostgreSQL nodes on one database (loaded at the
# same time, half the connections each), durable write throughput (PutParameter SecureString,
# Overwrite, over 400 names) of the same three at each of WRITE_CONNECTIONS, and the database
# round trips per request (the PostgreSQL node's tresor_store_round_trips_total over the
# requests wrk made). Measured RUNS times with wrk on loopback; medians and ratios at the end.
#
# With BASELINE set to another build's binary (e.g. main's), every run measures both, one
# after the other, each on a database of its own (a newer schema is refused by an older
# build) and with only one build's nodes up at a time (PostgreSQL's connection limit is
# shared).
#
# On one machine the two PostgreSQL nodes, the database and wrk share the same cores, so
# "two nodes" shows the cost of coherence (the cluster-wide writer lock, NOTIFY), not the
# capacity a second machine would add.
#
#   bench/scaleout.sh [BINARY]     (default: a release build of this checkout)
# Environment: RUNS (3), DURATION (10s), CONNECTIONS (64, reads), WRITE_CONNECTIONS ("4 64"),
#   THREADS (2), BASELINE (unset), TRESOR_TEST_PG_URL
#   (postgres://postgres@127.0.0.1:5432/postgres: the databases are created there and dropped
#   at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
runs=${RUNS:-3}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
write_conns=${WRITE_CONNECTIONS:-4 64}
threads=${THREADS:-2}
admin_url=${TRESOR_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}

command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -p tresor-cli
  bin="$CARGO_TARGET_DIR/release/tresor"
fi
declare -A binary=([new]=$bin)
builds=(new)
if [ -n "${BASELINE:-}" ]; then
  binary[base]=$BASELINE
  builds=(base new)
fi

work=$(mktemp -d)
pids=()
dbs=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  for db in "${dbs[@]}"; do
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
declare -A url
for b in "${builds[@]}"; do
  db="tresor_bench_${b}_$$_$RANDOM"
  psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  url[$b]="${admin_url%/*}/$db"
done
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A port pid
start() { # build name [flags...]
  local b=$1 name=$2
  shift 2
  port[$name]=$(free_port)
  "${binary[$b]}" serve --data-dir "$work/$name" --listen "127.0.0.1:${port[$name]}" --log warn "$@" >>"$work/$name.out" 2>&1 &
  pid[$name]=$!
  pids+=($!)
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:${port[$name]}/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$name did not become healthy" >&2
  cat "$work/$name.out" >&2
  exit 1
}
stop() { # name
  kill "${pid[$1]}" 2>/dev/null || true
  wait "${pid[$1]}" 2>/dev/null || true
}
creds() { # data dir -> "akid secret"
  awk -F' = ' '/aws_access_key_id/ {a=$2} /aws_secret_access_key/ {s=$2} END {print a, s}' "$1/credentials"
}
scripts() { # name admin-dir (signed requests are valid for 5 minutes: made again per run)
  local akid secret
  read -r akid secret < <(creds "$2")
  BENCH_ADMIN_AKID=$akid BENCH_ADMIN_SECRET=$secret "$venv/bin/python" bench/signed_request.py \
    "http://127.0.0.1:${port[$1]}" GetSecretValue --iam-user >"$work/$1.read.lua"
  BENCH_ADMIN_AKID=$akid BENCH_ADMIN_SECRET=$secret "$venv/bin/python" bench/signed_request.py \
    "http://127.0.0.1:${port[$1]}" PutParameterMany >"$work/$1.write.lua"
  wrk -t1 -c1 -d1s -s "$work/$1.read.lua" "http://127.0.0.1:${port[$1]}" >/dev/null
}
up() { # build: its three nodes, with fresh request scripts
  local b=$1
  start "$b" "$b-sqlite"
  start "$b" "$b-pga" --store "${url[$b]}"
  mkdir -p "$work/$b-pgb"
  cp "$work/$b-pga/root.key" "$work/$b-pgb/root.key"
  start "$b" "$b-pgb" --store "${url[$b]}"
  scripts "$b-sqlite" "$work/$b-sqlite"
  scripts "$b-pga" "$work/$b-pga"
  scripts "$b-pgb" "$work/$b-pga"
}
down() { # build
  for n in sqlite pga pgb; do stop "$1-$n"; done
}

round_trips() { # node -> counter value
  curl -fs "http://127.0.0.1:${port[$1]}/metrics" | awk '$1=="tresor_store_round_trips_total" {print $2}'
}
wrk_run() { # node kind connections -> "rps requests"
  local out
  out=$(wrk -t"$threads" -c"$3" -d"$duration" -s "$work/$1.$2.lua" "http://127.0.0.1:${port[$1]}")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1 ($2, $3 connections): $(grep "Non-2xx" <<<"$out" | xargs) of $(awk '/requests in/ {print $1}' <<<"$out")" >&2
  fi
  # Only the requests that succeeded count.
  awk '/requests in/ {n = $1; split($4, t, "s"); d = t[1]} /Non-2xx/ {bad = $NF}
       END {ok = n - bad; printf "%.2f %d\n", (d > 0 ? ok / d : 0), ok}' <<<"$out"
}
measure() { # build kind connections -> appends to $work/<build>.<config>.<kind><connections>.rps (and .rt)
  local b=$1 kind=$2 c=$3 rps n before after tag="$2$3"
  read -r rps n < <(wrk_run "$b-sqlite" "$kind" "$c")
  echo "$rps" >>"$work/$b.sqlite.$tag.rps"
  printf '%-5s %-6s %4s %-14s %12s\n' "$b" "$kind" "$c" "sqlite 1 node" "$rps"
  before=$(round_trips "$b-pga")
  read -r rps n < <(wrk_run "$b-pga" "$kind" "$c")
  after=$(round_trips "$b-pga")
  echo "$rps" >>"$work/$b.pg1.$tag.rps"
  awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f\n", (a - b) / n }' >>"$work/$b.pg1.$tag.rt"
  printf '%-5s %-6s %4s %-14s %12s   (%s round trips/request)\n' "$b" "$kind" "$c" "pg 1 node" "$rps" "$(tail -1 "$work/$b.pg1.$tag.rt" 2>/dev/null)"
  wrk_run "$b-pga" "$kind" $((c / 2 > 0 ? c / 2 : 1)) >"$work/a.out" &
  local wa=$!
  wrk_run "$b-pgb" "$kind" $((c / 2 > 0 ? c / 2 : 1)) >"$work/b.out" &
  local wb=$!
  wait "$wa" "$wb"
  rps=$(awk '{s += $1} END {print s}' "$work/a.out" "$work/b.out")
  echo "$rps" >>"$work/$b.pg2.$tag.rps"
  printf '%-5s %-6s %4s %-14s %12s\n' "$b" "$kind" "$c" "pg 2 nodes" "$rps"
}

printf '%-5s %-6s %4s %-14s %12s\n' build kind conn config "requests/s"
for i in $(seq "$runs"); do
  for b in "${builds[@]}"; do
    up "$b"
    measure "$b" read "$conns"
    for c in $write_conns; do
      measure "$b" write "$c"
    done
    down "$b"
  done
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
echo
for b in "${builds[@]}"; do
  for tag in "read$conns" $(for c in $write_conns; do echo "write$c"; done); do
    s=$(median "$work/$b.sqlite.$tag.rps")
    p1=$(median "$work/$b.pg1.$tag.rps")
    p2=$(median "$work/$b.pg2.$tag.rps")
    rt=$(median "$work/$b.pg1.$tag.rt")
    printf '%s %s (%s connections): median requests/s  SQLite %s | PostgreSQL 1 node %s (%s of SQLite) | 2 nodes together %s (%s of SQLite); %s database round trips per request\n' \
      "$b" "${tag//[0-9]/}" "${tag//[a-z]/}" "$s" "$p1" "$(awk -v a="$p1" -v b="$s" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
      "$p2" "$(awk -v a="$p2" -v b="$s" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" "$rt"
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

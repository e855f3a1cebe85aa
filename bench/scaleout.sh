#!/usr/bin/env bash
# Scale-out on PostgreSQL against the embedded SQLite store, in one session: read throughput
# (GetSecretValue signed by an IAM user: authentication, policy evaluation, decryption) of
# one SQLite node, one PostgreSQL node and two PostgreSQL nodes on one database (loaded at the
# same time, half the connections each), durable write throughput (PutParameter SecureString,
# Overwrite, over 400 names) of the same three, and the database round trips per request
# (the PostgreSQL node's tresor_store_round_trips_total over the requests wrk made). Measured
# alternately RUNS times with wrk on loopback; medians and ratios at the end.
#
# On one machine the two PostgreSQL nodes, the database and wrk share the same cores, so
# "two nodes" shows the cost of coherence (the cluster-wide writer lock, NOTIFY), not the
# capacity a second machine would add.
#
#   bench/scaleout.sh [BINARY]     (default: a release build of this checkout)
# Environment: RUNS (3), DURATION (10s), CONNECTIONS (64), THREADS (2),
#   TRESOR_TEST_PG_URL (postgres://postgres@127.0.0.1:5432/postgres: a database is created
#   there and dropped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
runs=${RUNS:-3}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
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

db="tresor_bench_$$_$RANDOM"
psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null
url="${admin_url%/*}/$db"
work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A port
start() { # name [flags...]
  local name=$1
  shift
  port[$name]=$(free_port)
  "$bin" serve --data-dir "$work/$name" --listen "127.0.0.1:${port[$name]}" --log warn "$@" >"$work/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:${port[$name]}/health" >/dev/null 2>&1 && break; sleep 0.1; done
}
creds() { # data dir -> "akid secret"
  awk -F' = ' '/aws_access_key_id/ {a=$2} /aws_secret_access_key/ {s=$2} END {print a, s}' "$1/credentials"
}
scripts() { # name admin-dir
  local akid secret
  read -r akid secret < <(creds "$2")
  BENCH_ADMIN_AKID=$akid BENCH_ADMIN_SECRET=$secret "$venv/bin/python" bench/signed_request.py \
    "http://127.0.0.1:${port[$1]}" GetSecretValue --iam-user >"$work/$1.read.lua"
  BENCH_ADMIN_AKID=$akid BENCH_ADMIN_SECRET=$secret "$venv/bin/python" bench/signed_request.py \
    "http://127.0.0.1:${port[$1]}" PutParameterMany >"$work/$1.write.lua"
  wrk -t1 -c1 -d1s -s "$work/$1.read.lua" "http://127.0.0.1:${port[$1]}" >/dev/null
}

start sqlite
start pga --store "$url"
mkdir -p "$work/pgb"
cp "$work/pga/root.key" "$work/pgb/root.key"
start pgb --store "$url"
scripts sqlite "$work/sqlite"
scripts pga "$work/pga"
scripts pgb "$work/pga"

round_trips() { # node -> counter value
  curl -fs "http://127.0.0.1:${port[$1]}/metrics" | awk '$1=="tresor_store_round_trips_total" {print $2}'
}
wrk_run() { # node kind connections -> "rps requests"
  local out
  out=$(wrk -t"$threads" -c"$3" -d"$duration" -s "$work/$1.$2.lua" "http://127.0.0.1:${port[$1]}")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses from $1 ($2)" >&2; echo "0 0"; return; fi
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '/requests in/ {print $1}' <<<"$out")"
}
measure() { # kind -> appends to $work/<config>.<kind>.rps and round trips
  local kind=$1 rps n before after
  read -r rps n < <(wrk_run sqlite "$kind" "$conns")
  echo "$rps" >>"$work/sqlite.$kind.rps"
  printf '%-6s %-14s %12s\n' "$kind" "sqlite 1 node" "$rps"
  before=$(round_trips pga)
  read -r rps n < <(wrk_run pga "$kind" "$conns")
  after=$(round_trips pga)
  echo "$rps" >>"$work/pg1.$kind.rps"
  awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f\n", (a - b) / n }' >>"$work/pg1.$kind.rt"
  printf '%-6s %-14s %12s   (%s round trips/request)\n' "$kind" "pg 1 node" "$rps" "$(tail -1 "$work/pg1.$kind.rt")"
  wrk_run pga "$kind" $((conns / 2)) >"$work/a.out" &
  local wa=$!
  wrk_run pgb "$kind" $((conns / 2)) >"$work/b.out" &
  local wb=$!
  wait "$wa" "$wb"
  rps=$(awk '{s += $1} END {print s}' "$work/a.out" "$work/b.out")
  echo "$rps" >>"$work/pg2.$kind.rps"
  printf '%-6s %-14s %12s\n' "$kind" "pg 2 nodes" "$rps"
}

printf '%-6s %-14s %12s\n' kind config "requests/s"
for i in $(seq "$runs"); do
  measure read
  measure write
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
echo
for kind in read write; do
  s=$(median "$work/sqlite.$kind.rps")
  p1=$(median "$work/pg1.$kind.rps")
  p2=$(median "$work/pg2.$kind.rps")
  rt=$(median "$work/pg1.$kind.rt")
  printf '%s: median requests/s  SQLite %s | PostgreSQL 1 node %s (%s of SQLite) | 2 nodes together %s (%s of SQLite); %s database round trips per request\n' \
    "$kind" "$s" "$p1" "$(awk -v a="$p1" -v b="$s" 'BEGIN { printf "%.2f", a / b }')" \
    "$p2" "$(awk -v a="$p2" -v b="$s" 'BEGIN { printf "%.2f", a / b }')" "$rt"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

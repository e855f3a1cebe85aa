#!/usr/bin/env bash
# What the audit log costs in instructions: GetSecretValue (signed by an IAM user) against
# servers of the same binary with the audit log on and with --no-audit, each run under
# valgrind's callgrind, which counts the instructions every thread of the server executes
# (request threads, the audit batcher and indexer) while wrk sends requests. Unlike
# throughput, an instruction count does not move with the load of a shared machine. With a
# second binary (e.g. a build from before a change), its server with the audit log on is
# counted too.
#
#   bench/audit-instructions.sh [BINARY [BASELINE_BINARY]]   (default: a release build)
# Environment: DURATION (20s of counting per server), CONNECTIONS (8), OP (GetSecretValue),
# KEEP (a directory that gets the callgrind profiles, NAME.cg.*, for callgrind_annotate).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
duration=${DURATION:-20s}
conns=${CONNECTIONS:-8}
op=${OP:-GetSecretValue}

command -v valgrind >/dev/null || { echo "needs valgrind (Debian package valgrind)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -p tresor-cli
  bin="$CARGO_TARGET_DIR/release/tresor"
fi
baseline=${2:-}

work=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$work"/*.cg.* "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

count() { # name binary [flags...] -> "instructions requests"
  local name=$1 b=$2; shift 2
  local port pid
  port=$(free_port)
  # Instrumentation starts only once the server is set up and warm (callgrind_control -i on).
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.cg" \
    "$b" serve --dev --listen "127.0.0.1:$port" --log warn "$@" >"$work/$name.out" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
  "$venv/bin/python" bench/signed_request.py "http://127.0.0.1:$port" "$op" --iam-user >"$work/$name.lua"
  wrk -t1 -c"$conns" -d5s -s "$work/$name.lua" "http://127.0.0.1:$port" >/dev/null
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local out
  out=$(wrk -t1 -c"$conns" -d"$duration" -s "$work/$name.lua" "http://127.0.0.1:$port")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses from $name" >&2; exit 1; fi
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local requests ir
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  # The dump taken on request (a file with a numeric suffix): its event totals.
  ir=$(cat "$work/$name".cg.* 2>/dev/null | awk '/^totals:/ {t += $2} /^summary:/ {s += $2} END {print (t ? t : s)}')
  echo "$ir $requests"
}

printf '%-10s %16s %10s %14s\n' server instructions requests 'instr/request'
declare -A per
run() { # name binary [flags...]
  local name=$1 ir requests
  read -r ir requests < <(count "$@")
  per[$name]=$(awk -v i="$ir" -v r="$requests" 'BEGIN { printf "%.0f", i / r }')
  printf '%-10s %16s %10s %14s\n' "$name" "$ir" "$requests" "${per[$name]}"
}
run audit-on "$bin"
run audit-off "$bin" --no-audit
[ -n "$baseline" ] && run baseline "$baseline"
printf '\n%s: the audit log adds %s%% instructions per request' "$op" \
  "$(awk -v a="${per[audit-on]}" -v b="${per[audit-off]}" 'BEGIN { printf "%.1f", (a - b) / b * 100 }')"
if [ -n "$baseline" ]; then
  printf ' (baseline binary with the audit log on: %s%%)' \
    "$(awk -v a="${per[baseline]}" -v b="${per[audit-off]}" 'BEGIN { printf "%.1f", (a - b) / b * 100 }')"
fi
echo

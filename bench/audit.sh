#!/usr/bin/env bash
# What the audit log costs: GetSecretValue (signed by an IAM user: authentication, policy
# evaluation and decryption on every request) against two servers of the same binary, one
# with the audit log on (the default) and one with --no-audit, measured alternately RUNS times
# in one session with wrk on loopback (so that load from elsewhere hits both alike). With a
# second binary (e.g. a build from before /metrics existed), its server is measured too.
#
#   bench/audit.sh [BINARY [BASELINE_BINARY]]   (default: a release build of this checkout)
# Environment: RUNS (3), DURATION (10s), CONNECTIONS (64), THREADS (2), OP (GetSecretValue).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
runs=${RUNS:-3}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
threads=${THREADS:-2}
op=${OP:-GetSecretValue}

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
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A port
start() { # name binary [flags...]
  local name=$1 b=$2; shift 2
  port[$name]=$(free_port)
  # --dev: a throwaway SQLite store (fsyncs as in production), credentials test/test.
  "$b" serve --dev --listen "127.0.0.1:${port[$name]}" --log warn "$@" >"$work/$name.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:${port[$name]}/health" >/dev/null 2>&1 && break; sleep 0.1; done
  "$venv/bin/python" bench/signed_request.py "http://127.0.0.1:${port[$name]}" "$op" --iam-user \
    > "$work/$name.lua"
  wrk -t1 -c1 -d1s -s "$work/$name.lua" "http://127.0.0.1:${port[$name]}" >/dev/null
}

names=(audit-on audit-off)
start audit-on "$bin"
start audit-off "$bin" --no-audit
if [ -n "$baseline" ]; then
  names+=(baseline)
  start baseline "$baseline"
fi

measure() { # name -> "rps p99"
  local out
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$work/$1.lua" "http://127.0.0.1:${port[$1]}")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses from $1" >&2; echo "- -"; return; fi
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out")"
}

printf '%-10s %4s %12s %10s\n' server run "$op/s" p99
for i in $(seq "$runs"); do
  for name in "${names[@]}"; do
    read -r rps p99 < <(measure "$name")
    printf '%-10s %4s %12s %10s\n' "$name" "$i" "$rps" "$p99"
    echo "$rps" >>"$work/$name.rps"
  done
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
on=$(median "$work/audit-on.rps"); off=$(median "$work/audit-off.rps")
printf '\nmedian %s/s: audit on %s, audit off %s: the audit log costs %s%%\n' "$op" "$on" "$off" \
  "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.1f", (b - a) / b * 100 }')"
# Each run's audit-on and audit-off figures are measured back to back: the median of their
# ratios is less exposed to the machine's load changing between runs.
paste "$work/audit-on.rps" "$work/audit-off.rps" | awk '{ print $1 / $2 }' >"$work/pairs"
printf 'median of the runs'"'"' on/off ratios: %s (the audit log costs %s%%)\n' "$(median "$work/pairs")" \
  "$(awk -v r="$(median "$work/pairs")" 'BEGIN { printf "%.1f", (1 - r) * 100 }')"
if [ -n "$baseline" ]; then
  base=$(median "$work/baseline.rps")
  printf 'baseline binary %s/s; this binary with the audit log off: %s%% of it\n' "$base" \
    "$(awk -v a="$off" -v b="$base" 'BEGIN { printf "%.1f", a / b * 100 }')"
fi

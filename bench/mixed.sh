#!/usr/bin/env bash
# Reads under a durable write load, one command: does a read wait for the store's writer?
# Starts tresor (release build, --dev), then measures in one run:
#   1. GetSecretValue alone (48 keep-alive connections),
#   2. PutParameter alone (16 connections, as below),
#   3. the reads of 1. while 16 connections write PutParameter (SecureString, Overwrite) on 400
#      parameters, with a GET /health probe on one keep-alive connection throughout: every
#      10 ms, as a load balancer probes (bench/health_probe.py), or HEALTH_PROBE=wrk for a
#      closed loop that sends the next probe as soon as one returns.
# Prints reads/s and p99 of both phases, their ratio, writes/s, and /health's p99 and max.
# Targets: mixed read p99 at most 3x the read-only p99; writes >= 2,000/s; /health within 10 ms.
#
#   bench/mixed.sh [BINARY]     (default: a release build of this checkout)
# Environment: DURATION (10s), HEALTH_PROBE (paced | wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
duration=${DURATION:-10s}
bin=${1:-}

command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
if [ -z "$bin" ]; then
  cargo build --release --locked -p tresor-cli
  bin="$CARGO_TARGET_DIR/release/tresor"
fi

work=$(mktemp -d)
cleanup() { kill "${tpid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$bin" serve --dev --listen "127.0.0.1:$port" --log warn >"$work/tresor.out" 2>&1 &
tpid=$!
for _ in $(seq 100); do curl -fs "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done

"$venv/bin/python" bench/signed_request.py "$url" GetSecretValue --iam-user >"$work/read.lua"
"$venv/bin/python" bench/signed_request.py "$url" PutParameterMany --iam-user >"$work/write.lua"
wrk -t1 -c1 -d1s -s "$work/read.lua" "$url" >/dev/null
wrk -t1 -c1 -d2s -s "$work/write.lua" "$url" >"$work/warm.txt"
if grep -q "Non-2xx" "$work/warm.txt"; then echo "writes fail: $(cat "$work/warm.txt")" >&2; exit 1; fi

field() { awk -v k="$1" '$1==k {print $2}' "$2"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
ms() { # wrk latency ("1.23ms", "450.00us", "1.02s") in ms
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print "-" }'
}

wrk -t1 -c48 -d"$duration" --latency -s "$work/read.lua" "$url" >"$work/alone.txt"
wrk -t1 -c16 -d"$duration" --latency -s "$work/write.lua" "$url" >"$work/writes_alone.txt"
wrk -t1 -c48 -d"$duration" --latency -s "$work/read.lua" "$url" >"$work/mixed.txt" &
r=$!
wrk -t1 -c16 -d"$duration" --latency -s "$work/write.lua" "$url" >"$work/writes.txt" &
w=$!
if [ "${HEALTH_PROBE:-paced}" = wrk ]; then
  wrk -t1 -c1 -d"$duration" --latency "$url/health" >"$work/health.txt" &
else
  "$venv/bin/python" bench/health_probe.py "$url" "${duration%s}" 0.01 >"$work/health.txt" &
fi
h=$!
wait $r $w $h
for f in alone writes_alone mixed writes health; do
  if grep -q "Non-2xx" "$work/$f.txt"; then echo "non-2xx responses in phase $f:" >&2; grep -A1 "Non-2xx" "$work/$f.txt" >&2; fi
done

a_p99=$(ms "$(field 99% "$work/alone.txt")"); m_p99=$(ms "$(field 99% "$work/mixed.txt")")
printf '\n%-34s %12s %10s\n' phase "req/s" "p99 ms"
printf '%-34s %12s %10s\n' "GetSecretValue alone" "$(rps "$work/alone.txt")" "$a_p99"
printf '%-34s %12s %10s\n' "PutParameter alone (16 writers)" "$(rps "$work/writes_alone.txt")" "$(ms "$(field 99% "$work/writes_alone.txt")")"
printf '%-34s %12s %10s\n' "GetSecretValue under 16 writers" "$(rps "$work/mixed.txt")" "$m_p99"
printf '%-34s %12s %10s\n' "PutParameter (16 writers)" "$(rps "$work/writes.txt")" "$(ms "$(field 99% "$work/writes.txt")")"
printf '%-34s %12s %10s   max %s\n' "GET /health during the mix" "$(rps "$work/health.txt")" "$(ms "$(field 99% "$work/health.txt")")" "$(awk '/Latency/ {print $4}' "$work/health.txt")"
awk -v a="$a_p99" -v m="$m_p99" 'BEGIN { if (a > 0) printf "read p99 under writes / alone: %.1fx (target <= 3x)\n", m/a }'

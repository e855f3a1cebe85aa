#!/usr/bin/env bash
# Where each read's CPU goes, stage by stage, and what that means for the ratio targets of
# bench/ceiling.sh. One server (release build, --dev), the same requests and wrk load as
# bench/ceiling.sh (64 keep-alive connections on loopback); for GET /health and each read:
#   - the server's CPU time per answered request (user + system, from /proc) and wrk's own
#     (bash's `time`): on a machine whose cores wrk shares, throughput is about the inverse
#     of their sum;
#   - in a second run of the same load, a perf profile of the server (software clock, DWARF
#     call graphs) split by bench/stages.py into the stages of a request (audit, sigv4,
#     policy, kms, operation, kernel send/receive/other, http), as shares and as
#     microseconds per request;
#   - the ratio to /health as CPU per request, and what it would be if the audit log, SigV4,
#     the policy evaluations and the KMS unwrap cost nothing at all.
#
#   bench/stages.sh [BINARY]        (default: a release build of this checkout)
# Environment: DURATION (seconds of each of the two runs per request kind, 8), CONNECTIONS
#   (64), THREADS (2), FREQ (perf samples a second, 500), NO_AUDIT (1 = --no-audit),
#   TRESOR_BENCH_VENV.
# Needs perf (Debian package linux-perf; installed when missing) and a binary with debug info
# (the release profile keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
duration=${DURATION:-8}
duration=${duration%s}
conns=${CONNECTIONS:-64}
threads=${THREADS:-2}
freq=${FREQ:-500}
[ "$duration" -ge 4 ] || { echo "DURATION must be at least 4 (seconds)" >&2; exit 2; }
extra_flags=()
[ "${NO_AUDIT:-0}" = 1 ] && extra_flags+=(--no-audit)

command -v perf >/dev/null || { echo "installing perf (Debian package linux-perf)"; apt-get install -y -qq linux-perf >/dev/null; }
command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
py="$venv/bin/python"
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -p tresor-cli
  bin="$CARGO_TARGET_DIR/release/tresor"
fi

work=$(mktemp -d)
cleanup() { [ -n "${tpid:-}" ] && kill "$tpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$bin" serve --dev --listen "127.0.0.1:$port" --log warn "${extra_flags[@]}" >"$work/tresor.out" 2>&1 &
tpid=$!
for _ in $(seq 100); do curl -fs "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done
"$py" bench/ceiling_setup.py "$url" "$work" >/dev/null

. bench/lib.sh
kinds=(health gsv ref decrypt)
desc=("GET /health (ceiling)" "GetSecretValue (IAM user, CMK, RP)" "GetParameter /aws/reference/..." "KMS Decrypt 1 KiB")
for kind in "${kinds[@]}"; do
  args=("$url/health")
  [ "$kind" = health ] || args=(-s "$work/$kind.lua" "$url")
  wrk -t1 -c1 -d1s "${args[@]}" >"$work/warm.txt"
  if grep -q "Non-2xx\|Socket errors" "$work/warm.txt"; then echo "$kind fails on $bin" >&2; cat "$work/tresor.out" >&2; exit 1; fi
  # A run without the profiler gives the CPU time per request (perf's sampling would add its
  # own); a second run of the same load is profiled, for the shares.
  timed "$kind" "$work" "$work/cpu" "${args[@]}"
  n=$(awk '/requests in/ { print $1 }' "$work/$kind.txt")
  if grep -q "Non-2xx\|Socket errors" "$work/$kind.txt" || [ "${n:-0}" -le 0 ]; then
    echo "$kind: not every request was answered with a 2xx:" >&2; cat "$work/$kind.txt" >&2; exit 1
  fi
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/$kind.txt")
  read -r server_us wrk_us < <(awk -v k="$kind" '$2 == k { printf "%.1f %s\n", $3 + $4, $5 }' "$work/cpu")
  wrk -t"$threads" -c"$conns" -d"$duration" "${args[@]}" >"$work/$kind.profiled.wrk" 2>&1 &
  w=$!
  sleep 1
  if ! perf record -q -F "$freq" --call-graph dwarf,16384 -p "$tpid" -o "$work/$kind.perf" \
    -- sleep $((duration - 2)) >/dev/null 2>"$work/perf.err"; then
    echo "perf record failed (root, or kernel.perf_event_paranoid <= 1, is needed):" >&2
    cat "$work/perf.err" >&2; exit 1
  fi
  wait "$w"
  perf script -i "$work/$kind.perf" -F comm,tid,ip,sym,dso --no-inline 2>/dev/null >"$work/$kind.stacks"
  "$py" bench/stages.py "$work/$kind.stacks" "$server_us" >"$work/$kind.stages"
  echo "$kind $rps $server_us $wrk_us $(awk '/^security/ { print $NF }' "$work/$kind.stages")" >>"$work/summary"
done

echo
echo "audit: $([ "${NO_AUDIT:-0}" = 1 ] && echo off || echo on); ${conns} connections, ${duration} s each; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
for i in "${!kinds[@]}"; do
  read -r _ rps server_us wrk_us _ < <(awk -v k="${kinds[$i]}" '$1 == k' "$work/summary")
  echo
  echo "${desc[$i]}: $rps req/s; CPU per request: server $server_us us, wrk $wrk_us us"
  cat "$work/${kinds[$i]}.stages"
done
echo
echo "Ratio to /health as CPU per request (server + wrk; on cores wrk shares, throughput is"
echo "about its inverse), now and if audit + sigv4 + policy + kms cost nothing; the CPU a read"
echo "may spend beyond /health's for the target ratio (0.6; 0.5 for ref), and its security work:"
awk '
  $1 == "health" { h = $3 + $4; hr = $2 }
  $1 != "health" { k[++m] = $1; r[$1] = $2; t[$1] = $3 + $4; s[$1] = $5 }
  END {
    printf "  %-8s %11s %10s %13s %14s %14s\n", "request", "req/s ratio", "CPU ratio", "without them", "target allows", "security work"
    for (i = 1; i <= m; i++) {
      x = k[i]; target = (x == "ref") ? 0.5 : 0.6
      printf "  %-8s %11.3f %10.3f %13.3f %11.1f us %11.1f us\n", x, r[x] / hr, h / t[x], h / (t[x] - s[x]), h / target - h, s[x]
    }
  }' "$work/summary"

#!/usr/bin/env bash
# The hot read path against the HTTP ceiling, one command. In ONE run of one server (release
# build, --dev) it measures, with wrk (64 keep-alive connections on loopback):
#   - GET /health (unauthenticated, no store): the ceiling HTTP, the kernel and wrk allow;
#   - GetSecretValue as an IAM user with an identity policy, the secret under a customer KMS
#     key with a key policy, and a resource policy on the secret;
#   - GetParameter of /aws/reference/secretsmanager/<that secret> (WithDecryption);
#   - KMS Decrypt of 1 KiB under that key;
#   - GetSecretValue again while 16 connections write PutSecretValue on 400 other secrets;
# and prints req/s, p99 and each read's ratio to /health (throughput, and p99 over /health's
# p99). Then (unless SKIP_COLD=1) cold start and resident memory on a data directory with
# 10,000 secrets and 10,000 parameters (seeded once, kept in SEED_DIR), and (unless SOAK=0) a
# read/write soak sampling the resident memory.
#
#   bench/ceiling.sh [BINARY]              one binary, one run (default: release build)
#   bench/ceiling.sh BEFORE AFTER          before/after: RUNS (3) alternate runs of each, medians
# Environment: DURATION (10s), CONNECTIONS (64), THREADS (2), NO_AUDIT (1 = --no-audit),
#   SKIP_COLD (1 = no cold start), SEED_DIR (bench/.seed-10k),
#   SOAK (seconds, 20; 600 for the 10-minute soak; 0 = none), TRESOR_BENCH_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
threads=${THREADS:-2}
soak=${SOAK:-20}
seed_default=$root/bench/.seed-10k
seed_dir=${SEED_DIR:-$seed_default}
extra_flags=()
[ "${NO_AUDIT:-0}" = 1 ] && extra_flags+=(--no-audit)

command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
py="$venv/bin/python"
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release --locked -p tresor-cli
  bins=("$CARGO_TARGET_DIR/release/tresor")
fi
[ ${#bins[@]} -le 2 ] || { echo "usage: bench/ceiling.sh [BINARY | BEFORE AFTER]" >&2; exit 2; }

work=$(mktemp -d)
cleanup() { [ -n "${tpid:-}" ] && kill "$tpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ms() { # wrk latency ("1.23ms", "450.00us", "1.02s") in ms
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v+0 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000 } else print "-" }'
}
summary() { # wrk output file -> "rps p99ms" ("- -" when any answer was not 2xx)
  if grep -q "Non-2xx\|Socket errors" "$1"; then echo "errors in $1:" >&2; grep "Non-2xx\|Socket errors" "$1" >&2; echo "- -"; return; fi
  echo "$(awk '/Requests\/sec/ {print $2}' "$1") $(ms "$(awk '$1=="99%" {print $2}' "$1")")"
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# The anonymous part of the resident set (heap, stacks): what a leak would grow. The rest is
# RssFile, the pages of the database files SQLite reads through its memory map (bounded by
# the map's size per connection) and the WAL index.
rss_anon_kb() { awk '/RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

. bench/lib.sh

# One run of BINARY: writes "name rps p99" lines to OUT.
measure() {
  local bin=$1 out=$2 port url d
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  url="http://127.0.0.1:$port"
  d=$(mktemp -d -p "$work")
  "$bin" serve --dev --listen "127.0.0.1:$port" --log warn "${extra_flags[@]}" >"$d/tresor.out" 2>&1 &
  tpid=$!
  for _ in $(seq 100); do curl -fs "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done
  "$py" bench/ceiling_setup.py "$url" "$d" >/dev/null
  # Every request must succeed before it is measured (and warms the caches as a client would).
  for s in gsv ref decrypt; do
    wrk -t1 -c1 -d1s -s "$d/$s.lua" "$url" >"$d/warm.txt"
    if [ "$(summary "$d/warm.txt")" = "- -" ]; then echo "$s fails on $bin" >&2; cat "$d/tresor.out" >&2; exit 1; fi
  done
  : >"$out"
  timed health "$d" "$out" --latency "$url/health"
  echo "health $(summary "$d/health.txt")" >>"$out"
  for s in gsv ref decrypt; do
    timed "$s" "$d" "$out" --latency -s "$d/$s.lua" "$url"
    echo "$s $(summary "$d/$s.txt")" >>"$out"
  done
  wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$d/gsv.lua" "$url" >"$d/mixed.txt" &
  local r=$!
  wrk -t1 -c16 -d"$duration" --latency -s "$d/writers.lua" "$url" >"$d/writes.txt" &
  local w=$!
  wait $r $w
  echo "mixed $(summary "$d/mixed.txt")" >>"$out"
  echo "writes $(summary "$d/writes.txt")" >>"$out"
  if [ "$soak" != 0 ] && [ -n "${SOAK_RUN:-}" ]; then
    # In rounds of at most 4 minutes, each with freshly signed requests: a SigV4 signature is
    # refused once it is 5 minutes old, and a soak of failing requests measures nothing.
    local left=${soak%s} secs first="" last max=0 v round=0 failed="" minutes=""
    while [ "$left" -gt 0 ]; do
      secs=$((left > 240 ? 240 : left)); left=$((left - secs)); round=$((round + 1))
      "$py" bench/ceiling_setup.py --resign "$url" "$d"
      wrk -t1 -c32 -d"${secs}s" --latency -s "$d/gsv.lua" "$url" >"$d/soak_r.$round.txt" &
      r=$!
      wrk -t1 -c8 -d"${secs}s" --latency -s "$d/soak_writers.lua" "$url" >"$d/soak_w.$round.txt" &
      w=$!
      sleep 1
      [ -z "$first" ] && first=$(rss_kb "$tpid")
      for t in $(seq $((secs > 2 ? secs - 2 : 1))); do
        sleep 1; v=$(rss_kb "$tpid"); [ "$v" -gt "$max" ] && max=$v
        if [ $((t % 60)) = 0 ]; then minutes="$minutes $((v / 1024))($(($(rss_anon_kb "$tpid") / 1024)))"; fi
      done
      wait $r $w
      for f in "$d/soak_r.$round.txt" "$d/soak_w.$round.txt"; do
        [ "$(summary "$f")" = "- -" ] && failed=1
      done
    done
    last=$(rss_kb "$tpid")
    echo "soak_rss_kb $first $last $max" >>"$out"
    [ -n "$minutes" ] && echo "soak_minutes$minutes" >>"$out"
    if [ -n "$failed" ]; then
      echo "soak_rps - - - - (requests failed: see above)" >>"$out"
    else
      echo "soak_rps $(summary "$d/soak_r.$round.txt") $(summary "$d/soak_w.$round.txt") (last round of $round)" >>"$out"
    fi
  fi
  kill "$tpid"; wait "$tpid" 2>/dev/null || true; tpid=
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
field() { awk -v n="$2" -v c="$3" '$1 == n { print $c }' "$1"; }

runs=${RUNS:-3}
[ ${#bins[@]} -eq 1 ] && runs=${RUNS:-1}
labels=(before after)
[ ${#bins[@]} -eq 1 ] && labels=(this)
for i in $(seq "$runs"); do
  for b in "${!bins[@]}"; do
    echo "== run $i: ${labels[$b]} ${bins[$b]} (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    SOAK_RUN=$([ "$i" = "$runs" ] && [ "$b" = 0 ] && [ ${#bins[@]} -eq 1 ] && echo 1 || true) measure "${bins[$b]}" "$work/${labels[$b]}.$i"
  done
done

echo
echo "audit: $([ "${NO_AUDIT:-0}" = 1 ] && echo off || echo on); ${conns} connections, ${duration} each; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-34s %11s %9s %9s %9s\n' binary request "req/s" "p99 ms" "x health" "p99/health"
names=(health gsv ref decrypt mixed writes)
desc=("GET /health (ceiling)" "GetSecretValue (IAM user, CMK, RP)" "GetParameter /aws/reference/..." "KMS Decrypt 1 KiB" "GetSecretValue, 16 writers" "PutSecretValue (the 16 writers)")
for b in "${!bins[@]}"; do
  l=${labels[$b]}
  hr=$(for i in $(seq "$runs"); do field "$work/$l.$i" health 2; done | median)
  hp=$(for i in $(seq "$runs"); do field "$work/$l.$i" health 3; done | median)
  for n in "${!names[@]}"; do
    # The ratio of each run, then the median of the ratios (a run's load hits both alike).
    rr=$(for i in $(seq "$runs"); do awk -v a="$(field "$work/$l.$i" "${names[$n]}" 2)" -v h="$(field "$work/$l.$i" health 2)" 'BEGIN { if (h > 0 && a != "-") printf "%.3f\n", a / h }'; done | median)
    pr=$(for i in $(seq "$runs"); do awk -v a="$(field "$work/$l.$i" "${names[$n]}" 3)" -v h="$(field "$work/$l.$i" health 3)" 'BEGIN { if (h > 0 && a != "-") printf "%.2f\n", a / h }'; done | median)
    r=$(for i in $(seq "$runs"); do field "$work/$l.$i" "${names[$n]}" 2; done | median)
    p=$(for i in $(seq "$runs"); do field "$work/$l.$i" "${names[$n]}" 3; done | median)
    printf '%-7s %-34s %11s %9s %9s %9s\n' "$l" "${desc[$n]}" "$r" "$p" "$rr" "$pr"
  done
  mr=$(for i in $(seq "$runs"); do awk -v m="$(field "$work/$l.$i" mixed 2)" -v g="$(field "$work/$l.$i" gsv 2)" 'BEGIN { if (g > 0) printf "%.3f\n", m / g }'; done | median)
  echo "$l: reads under 16 writers / reads alone: ${mr}x (target >= 0.8)"
  # Where each request's CPU goes: the server's user and system time and wrk's own, in
  # microseconds per request (medians of the runs). On two cores shared with wrk, a read's
  # throughput ratio to /health is about the ratio of these totals, inverted.
  printf '%-7s %-34s %11s %9s %9s %9s %9s\n' "$l" "CPU us/request:" "server usr" "sys" "wrk" "total" "1/ratio"
  ht=$(for i in $(seq "$runs"); do awk '$1 == "cpu" && $2 == "health" { print $3 + $4 + $5 }' "$work/$l.$i"; done | median)
  for n in 0 1 2 3; do
    c=${names[$n]}
    col() { for i in $(seq "$runs"); do awk -v c="$c" -v f="$1" '$1 == "cpu" && $2 == c { print $f }' "$work/$l.$i"; done | median; }
    tot=$(for i in $(seq "$runs"); do awk -v c="$c" '$1 == "cpu" && $2 == c { print $3 + $4 + $5 }' "$work/$l.$i"; done | median)
    printf '%-7s %-34s %11s %9s %9s %9s %9s\n' "$l" "  ${desc[$n]}" "$(col 3)" "$(col 4)" "$(col 5)" "$tot" "$(awk -v t="$tot" -v h="$ht" 'BEGIN { if (h > 0 && t != "-") printf "%.2f", t / h; else print "-" }')"
  done
  [ "$runs" -gt 1 ] && for i in $(seq "$runs"); do echo "  run $i: $(tr '\n' ' ' <"$work/$l.$i")"; done
  if [ -f "$work/$l.$runs" ] && grep -q soak_rss_kb "$work/$l.$runs"; then
    read -r _ f la mx < <(grep soak_rss_kb "$work/$l.$runs")
    echo "soak ${soak}s (32 readers, 8 PutParameter writers): RSS first ${f} KiB, last ${la} KiB, max ${mx} KiB; $(grep soak_rps "$work/$l.$runs" | cut -d' ' -f2-) (reads r/s p99, writes w/s p99)"
    grep -q soak_minutes "$work/$l.$runs" && echo "  RSS MiB (of it anonymous) about every minute of each round: $(grep soak_minutes "$work/$l.$runs" | cut -d' ' -f2-)"
  fi
done

if [ "${SKIP_COLD:-0}" != 1 ]; then
  if [ ! -f "$seed_dir/.seeded" ]; then
    echo "seeding $seed_dir (10,000 secrets, 10,000 parameters; once)" >&2
    "$py" bench/seed.py "${bins[0]}" "$seed_dir"
  fi
  for b in "${!bins[@]}"; do
    echo "${labels[$b]}: $("$py" bench/coldstart.py "${bins[$b]}" "$seed_dir" "${extra_flags[@]}")"
  done
fi

#!/usr/bin/env bash
# Before/after in one session: runs bench/mixed.sh on two binaries alternately, RUNS times each
# (so that a burst of load from elsewhere on the machine hits both alike), and prints every
# run's figures and, per binary, the median of each figure.
#
#   bench/compare.sh BEFORE_BINARY AFTER_BINARY
# Environment: RUNS (3), DURATION (10s, passed to mixed.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/compare.sh BEFORE_BINARY AFTER_BINARY" >&2; exit 2; }
runs=${RUNS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$runs"); do
  for which in before after; do
    bin=$1; [ "$which" = after ] && bin=$2
    echo "== run $i: $which ($(uptime | sed 's/.*load average: //'))" >&2
    bench/mixed.sh "$bin" 2>&1 | tee "$out/$which.$i.txt" | tail -7 >&2
  done
done

# One line per run: read-only req/s, p99; writes/s alone; mixed reads/s, p99; writes/s mixed;
# /health p99; mixed/alone read p99 ratio.
extract() {
  awk '
    /^GetSecretValue alone/            { a_rps=$3; a_p99=$4 }
    /^PutParameter alone/              { wa_rps=$5 }
    /^GetSecretValue under 16 writers/ { m_rps=$5; m_p99=$6 }
    /^PutParameter \(16 writers\)/      { w_rps=$4 }
    /^GET \/health/                    { h_p99=$7 }
    END { printf "%s %s %s %s %s %s %s %.1f\n", a_rps, a_p99, wa_rps, m_rps, m_p99, w_rps, h_p99, (a_p99 > 0 ? m_p99 / a_p99 : 0) }
  ' "$1"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

printf '\n%-7s %6s %11s %7s %9s %11s %7s %9s %10s %6s\n' binary run "reads/s" "p99 ms" "writes/s" "mixed r/s" "p99 ms" "mixed w/s" "health p99" ratio
for which in before after; do
  for i in $(seq "$runs"); do
    read -r a ap wa m mp w h r < <(extract "$out/$which.$i.txt")
    printf '%-7s %6s %11s %7s %9s %11s %7s %9s %10s %5sx\n' "$which" "$i" "$a" "$ap" "$wa" "$m" "$mp" "$w" "$h" "$r"
  done
  meds=()
  for col in 1 2 3 4 5 6 7 8; do
    meds+=("$(for i in $(seq "$runs"); do extract "$out/$which.$i.txt" | awk -v c="$col" '{ print $c }'; done | median)")
  done
  printf '%-7s %6s %11s %7s %9s %11s %7s %9s %10s %5sx\n' "$which" median "${meds[@]}"
done

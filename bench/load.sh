#!/usr/bin/env bash
# One-command load benchmark: tresor (release build, --dev) and moto's server side by side,
# the same SigV4-signed request for each operation, wrk with 64 keep-alive connections for
# 10 s on loopback. Prints requests/s and p50/p99 latency for both, and the ratio.
# tresor is called by an IAM user with an identity policy (full authentication,
# authorization and decryption on every request); moto accepts any credentials.
#
#   bench/load.sh [OPERATION ...]     (default: every operation in signed_request.py)
# Environment: DURATION (10s), CONNECTIONS (64), THREADS (2), TRESOR_BIN (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=${TRESOR_BENCH_VENV:-$root/.venv-bench}
duration=${DURATION:-10s}
conns=${CONNECTIONS:-64}
threads=${THREADS:-2}
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(GetCallerIdentity GetSecretValue KmsDecrypt1KiB GetParameterSecureString GetParameterReference)

command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
# TRESOR_BIN: a tresor binary to measure instead of a release build of this checkout (e.g. an
# earlier build, for a before/after comparison in one session).
if [ -z "${TRESOR_BIN:-}" ]; then
  cargo build --release --locked -p tresor-cli
  TRESOR_BIN="$CARGO_TARGET_DIR/release/tresor"
fi

work=$(mktemp -d)
cleanup() { kill "${tpid:-}" "${mpid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tport=$(free_port); mport=$(free_port)
"$TRESOR_BIN" serve --dev --listen "127.0.0.1:$tport" --log warn >"$work/tresor.out" 2>&1 &
tpid=$!
"$venv/bin/moto_server" -H 127.0.0.1 -p "$mport" >"$work/moto.out" 2>&1 &
mpid=$!
for url in "http://127.0.0.1:$tport/health" "http://127.0.0.1:$mport/moto-api/"; do
  for _ in $(seq 100); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done

run() { # endpoint op [--iam-user] -> "rps p50 p99"
  if ! "$venv/bin/python" bench/signed_request.py "$1" "$2" ${3:-} > "$work/req.lua" 2>"$work/setup.err"; then
    echo "- - -"; echo "setup of $2 failed on $1: $(tail -1 "$work/setup.err")" >&2; return
  fi
  # The request must succeed before it is measured.
  wrk -t1 -c1 -d1s -s "$work/req.lua" "$1" >/dev/null
  local out
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$work/req.lua" "$1")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses from $1 for $2 (not counted as a result):" >&2; echo "- - -"; return; fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$rps $p50 $p99"
}

printf '\n%-28s %14s %10s %10s   %14s %10s %10s   %8s\n' operation "tresor req/s" p50 p99 "moto req/s" p50 p99 ratio
for op in "${ops[@]}"; do
  read -r trps tp50 tp99 < <(run "http://127.0.0.1:$tport" "$op" --iam-user)
  read -r mrps mp50 mp99 < <(run "http://127.0.0.1:$mport" "$op")
  ratio=$(awk -v a="$trps" -v b="$mrps" 'BEGIN { if (b > 0) printf "%.0fx", a/b; else print "-" }')
  printf '%-28s %14s %10s %10s   %14s %10s %10s   %8s\n' "$op" "$trps" "$tp50" "$tp99" "$mrps" "$mp50" "$mp99" "$ratio"
done

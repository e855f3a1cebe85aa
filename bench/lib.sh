# Shared by the bench scripts (sourced after they `cd` to the checkout's root).

# The server's CPU time so far, user and system, in clock ticks.
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }
# timed NAME DIR OUT WRK-ARGS...: one wrk phase into DIR/NAME.txt, and a line "cpu NAME
# server-user server-sys wrk" in OUT: CPU microseconds per answered request, of the server
# (from /proc) and of wrk itself (bash's `time`: the load generator shares the two cores).
# Uses the caller's tpid (the server's pid), threads, conns and duration.
timed() {
  local name=$1 dir=$2 out=$3 s0 s1 n w TIMEFORMAT='%3U %3S'
  shift 3
  s0=$(cpu_ticks "$tpid")
  w=$( { time wrk -t"$threads" -c"$conns" -d"$duration" "$@" >"$dir/$name.txt" 2>&1; } 2>&1 )
  s1=$(cpu_ticks "$tpid")
  n=$(awk '/requests in/ { print $1 }' "$dir/$name.txt")
  awk -v n="${n:-0}" -v a="$s0" -v b="$s1" -v w="$w" -v t="$(getconf CLK_TCK)" -v name="$name" 'BEGIN {
    split(a, x, " "); split(b, y, " "); split(w, z, " ")
    if (n > 0) printf "cpu %s %.1f %.1f %.1f\n", name, (y[1] - x[1]) * 1e6 / t / n, (y[2] - x[2]) * 1e6 / t / n, (z[1] + z[2]) * 1e6 / n }' >>"$out"
}

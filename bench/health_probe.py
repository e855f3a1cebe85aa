"""A load balancer's health probe, paced: GET /health on one keep-alive connection every
INTERVAL seconds for DURATION seconds, each answer timed from request to response. Prints the
wrk-style lines bench/mixed.sh reads: requests/s, then the 99th percentile and the maximum.

A closed loop (wrk -c1) would send the next probe as soon as one returns; once /health answers
in microseconds that is ten thousand probes a second, a CPU load of its own that no real
probe is.

usage: health_probe.py URL DURATION_SECONDS [INTERVAL_SECONDS]
"""

import http.client
import sys
import time
import urllib.parse


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    duration = float(sys.argv[2])
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    latencies = []
    failures = 0
    end = time.monotonic() + duration
    next_at = time.monotonic()
    while time.monotonic() < end:
        start = time.perf_counter()
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except OSError:
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        latencies.append(time.perf_counter() - start)
        failures += not ok
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"Requests/sec: {len(latencies) / duration:.2f}")
    print(f"  Latency {sum(latencies) / len(latencies) * 1000:.2f}ms {p99 * 1000:.2f}ms {latencies[-1] * 1000:.2f}ms")
    print(f"     99% {p99 * 1000:.2f}ms")
    if failures:
        print(f"  Non-2xx or Socket errors: {failures}")


if __name__ == "__main__":
    main()

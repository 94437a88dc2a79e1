"""`python -m bench.metrics_cost`: microseconds the per-request EMF record adds, in a quick loop.

No database: the same 404 (a malformed id, answered before any connection) through
serverless-wsgi with METRICS off and on, interleaved in rounds so background load hits both
alike; the records go to /dev/null. The median difference is the record's cost.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

ROUNDS, REQUESTS = 15, 500


def main() -> None:
    import serverless_wsgi

    from cities import create_app
    from tests.support.lambda_events import http_api_event

    apps = {on: create_app({"DATABASE_URL": None, "METRICS": on, "LOG_LEVEL": "WARNING"})
            for on in (False, True)}
    event = http_api_event("GET", "/cities/abc")

    def per_request_us(app: object) -> float:
        started = time.perf_counter_ns()
        for _ in range(REQUESTS):
            serverless_wsgi.handle_request(app, event, None)
        return (time.perf_counter_ns() - started) / REQUESTS / 1000

    samples: dict[bool, list[float]] = {False: [], True: []}
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115
    try:
        for on in (False, True):
            per_request_us(apps[on])  # warm-up
        for _ in range(ROUNDS):
            for on in (False, True):
                samples[on].append(per_request_us(apps[on]))
    finally:
        sys.stdout.close()
        sys.stdout = stdout
    off, on = statistics.median(samples[False]), statistics.median(samples[True])
    print(f"METRICS off {off:.1f} µs, on {on:.1f} µs per request: +{on - off:.1f} µs "
          f"(medians of {ROUNDS} rounds of {REQUESTS}; load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

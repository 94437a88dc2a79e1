"""`make bench`: every measurement of issue 5 in one run, on this machine, side by side.

The machine is shared and noisy, so nothing here is a single absolute time: each figure is a
median over many interleaved runs (round-robin, shuffled each round, so background load hits
every contender alike), and targets are checked as ratios against a floor measured in the same
run. This module only dispatches: each section is a module of its name (bench/cold.py,
request.py, scale.py, ...) and bench/common.py holds what they share. Knobs (environment
variables) for quicker runs:

    BENCH_SECTIONS       cold,request,scale,artifact,memory,fanin,tls,runtime,latency,quota
                         (default: all)
    BENCH_COLD_RUNS      fresh interpreters per contender (default 60)
    BENCH_REQUESTS       timed rounds per request kind (default 400)
    BENCH_SCALE_ROWS     table sizes (default 10000,1000000)
    BENCH_SCALE_REPEATS  timed runs per list query (default 60)
    BENCH_MEMORY_STEPS   warm request counts for RSS (default 100,5000)
    BENCH_FANIN          concurrent worker processes, requests each, rounds (default 20,50,3)
    BENCH_LATENCY_RUNS   interleaved rounds per path and RTT (default 60)
    BENCH_ARTIFACT       a deployment zip (default: dist/*.zip from `make package`)
    BENCH_OUTPUT         the report (default docs/benchmarks.md; JSON and PNG beside it)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, interleaved, log

sys.path.insert(0, str(ROOT))


def knob(name: str, default: str) -> str:
    """An unset or empty variable means the default, so `BENCH_X= make bench` is a full run."""
    return os.environ.get(name) or default


SECTIONS = knob(
    "BENCH_SECTIONS", "cold,request,scale,artifact,memory,fanin,tls,runtime,latency,quota"
).split(",")
COLD_RUNS = int(knob("BENCH_COLD_RUNS", "60"))
REQUESTS = int(knob("BENCH_REQUESTS", "400"))
SCALE_ROWS = [int(n) for n in knob("BENCH_SCALE_ROWS", "10000,1000000").split(",")]
SCALE_REPEATS = int(knob("BENCH_SCALE_REPEATS", "60"))
MEMORY_STEPS = knob("BENCH_MEMORY_STEPS", "100,5000")
FANIN = [int(n) for n in knob("BENCH_FANIN", "20,50,3").split(",")]
LATENCY_RUNS = int(knob("BENCH_LATENCY_RUNS", "60"))
OUTPUT = Path(knob("BENCH_OUTPUT", str(ROOT / "docs" / "benchmarks.md")))


def machine() -> dict[str, Any]:
    """What the figures were taken on: the report's Machine section."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # runs the `finally` that stops the cluster


def main() -> int:
    import signal

    from bench.report import render

    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    from tests.support.pg_cluster import throwaway_cluster

    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "knobs": {
        "sections": SECTIONS, "cold_runs": COLD_RUNS, "requests": REQUESTS,
        "scale_rows": SCALE_ROWS, "scale_repeats": SCALE_REPEATS, "memory_steps": MEMORY_STEPS,
        "fanin": FANIN, "latency_runs": LATENCY_RUNS,
    }}  # fmt: skip
    if "cold" in SECTIONS:
        from bench.cold import bench_cold

        results["cold"] = bench_cold(COLD_RUNS)
    if {"request", "scale", "memory"} & set(SECTIONS):
        with throwaway_cluster({"max_connections": "50"}) as cluster:
            from cities.db.migrate import migrate

            with_conn = psycopg2_version_and_server(cluster.url())
            results["machine"].update(with_conn)
            url = cluster.create_database("cities_bench")
            results["machine"]["migrations"] = migrate(url)["applied"]
            from bench.request import seed

            seed(url)
            if "request" in SECTIONS:
                from bench.request import bench_request

                results["request"] = bench_request(url, REQUESTS)
            if "memory" in SECTIONS:
                from bench.memory import bench_memory

                results["memory"] = bench_memory(url, MEMORY_STEPS)
            if "scale" in SECTIONS:
                from bench.scale import bench_scale

                results["scale"] = bench_scale(cluster, SCALE_ROWS, SCALE_REPEATS)
    if "fanin" in SECTIONS:  # many containers at once, directly and through PgBouncer
        from bench.fanin import run_fanin

        results["fanin"] = run_fanin(*FANIN)
    if "artifact" in SECTIONS:  # needs the deployment zip (`make package`)
        from bench.artifact import bench_artifact

        results["artifact"] = bench_artifact(COLD_RUNS)
    if "tls" in SECTIONS:
        from bench.tls_connect import bench_tls_connect

        log("TLS connect: client instructions per connect under callgrind, by CA file")
        results["tls"] = bench_tls_connect() or {
            "skipped": "needs valgrind, an SSL-capable PostgreSQL and a system CA bundle"}
    if "runtime" in SECTIONS:  # python3.12 vs 3.13, zip size per architecture (bench/runtime.py)
        from bench.runtime import bench_runtime

        results["runtime"] = bench_runtime(COLD_RUNS)
    if "latency" in SECTIONS:
        from bench.latency import PATHS, bench_latency

        log(f"latency: {len(PATHS)} paths x RTT 0, 1, 20 ms, {LATENCY_RUNS} interleaved rounds")
        results["latency"] = bench_latency(LATENCY_RUNS, interleaved)
    if "quota" in SECTIONS:  # a write with per-writer quotas on vs off (bench/quota.py)
        from bench.quota import bench_quota

        results["quota"] = bench_quota()
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"]["duration_seconds"] = round(time.perf_counter() - started)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")  # kept first
    table = render(results, OUTPUT)
    print(table)
    log(f"wrote {OUTPUT} (and .json, .png beside it) in {results['machine']['duration_seconds']}s")
    return 0


def psycopg2_version_and_server(url: str) -> dict[str, Any]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")
            trgm = cur.fetchone()[0] > 0
    finally:
        conn.close()
    return {"postgres": version, "pg_trgm_available": trgm, "psycopg2": psycopg2.__version__}


if __name__ == "__main__":
    sys.exit(main())

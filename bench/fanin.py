"""Fan-in: what many containers at once cost PostgreSQL, directly and through PgBouncer.

N worker processes stand in for N warm Lambda containers. Each imports the handler, waits for a
start signal, then serves its share of reads (`GET /cities/{id}`, a list page every fifth) in
process; the parent measures the server's CPU (the postmaster, its live children, and the
children it has reaped) and the server sessions the run created (the server log's
`connection authorized` lines), for three deployments: a connection per request straight to
PostgreSQL, a connection per request through a transaction-mode PgBouncer (Neon's `-pooler`
endpoint), and `DB_CONNECTION_REUSE=1` through the same pooler. PgBouncer restarts before each
run, so each pays for filling its pool; like Neon's pooler it keeps the role's SCRAM verifier,
not its password (which would cost it a PBKDF2 derivation per login).

`python -m bench.fanin worker URL REUSE COUNT SEED` is one worker.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DATABASE = "cities_fanin"
POOL_SIZE = 10
MODES = {
    "connection per request, direct": ("direct", False),
    "connection per request, through PgBouncer": ("pooler", False),
    "reuse, through PgBouncer": ("pooler", True),
}


def _proc_cpu(pid: int, *, with_reaped: bool = False) -> float:
    """CPU seconds of a process (utime + stime), plus its reaped children's when asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
    return found


def server_cpu(postmaster: int) -> float:
    """PostgreSQL's CPU seconds so far: postmaster, live backends, and every exited backend."""
    return _proc_cpu(postmaster, with_reaped=True) + sum(
        _proc_cpu(child) for child in _children(postmaster)
    )


def _postmaster(cluster: Any) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split()[0])


def _sessions(cluster: Any, offset: int) -> tuple[int, int]:
    """(server sessions opened on the fan-in database since `offset`, the log's new end)."""
    text = (cluster.data / "log").read_bytes()
    new = text[offset:].decode(errors="replace")
    return new.count(f"connection authorized: user=postgres database={DATABASE}"), len(text)


def _start_workers(url: str, reuse: bool, processes: int, requests: int, env: dict[str, str],
                   seed: int) -> list[subprocess.Popen]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.fanin", "worker", url, "1" if reuse else "0",
             str(requests), str(seed + i)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for i in range(processes)
    ]
    for worker in workers:  # every container is warm (handler imported) before the clock starts
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("a fan-in worker failed to start")
    return workers


def run_mode(cluster: Any, pooler_factory: Any, mode: str, processes: int, requests: int,
             env: dict[str, str], seed: int) -> dict[str, Any]:
    """One run of one mode: its server CPU, sessions, pooler CPU, wall time and errors."""
    target, reuse = MODES[mode]
    bouncer = pooler_factory()
    bouncer.start()
    try:
        url = cluster.url(DATABASE) if target == "direct" else bouncer.url(DATABASE)
        workers = _start_workers(url, reuse, processes, requests, env, seed)
        postmaster = _postmaster(cluster)
        time.sleep(0.2)
        _, offset = _sessions(cluster, 0)
        cpu_before, bouncer_before = server_cpu(postmaster), _proc_cpu(bouncer.process.pid)
        started = time.perf_counter()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = [json.loads(worker.communicate()[0]) for worker in workers]
        wall = time.perf_counter() - started
        time.sleep(0.3)  # let the postmaster reap the backends that just exited
        cpu = server_cpu(postmaster) - cpu_before
        pooler_cpu = _proc_cpu(bouncer.process.pid) - bouncer_before
        sessions, _ = _sessions(cluster, offset)
    finally:
        bouncer.stop()
    return {
        "requests": processes * requests,
        "errors": sum(r["errors"] for r in reports),
        "server_cpu_s": cpu,
        "pooler_cpu_s": pooler_cpu if target == "pooler" else 0.0,
        "sessions": sessions,
        "wall_s": wall,
    }


def bench_fanin(cluster: Any, processes: int, requests: int, rounds: int,
                env: dict[str, str], *, verifier: bool = True) -> dict[str, Any]:
    """Every mode `rounds` times, in a new random order each round; totals per mode."""
    from cities.db.migrate import migrate
    from tests.support.pgbouncer import PgBouncer, pgbouncer_binary

    if pgbouncer_binary() is None:
        return {"skipped": "pgbouncer is not installed (Debian: apt-get install pgbouncer)"}
    url = cluster.create_database(DATABASE)
    migrate(url)
    _seed(url)
    root = Path(tempfile.mkdtemp(prefix="cities-fanin-"))
    root.chmod(0o755)  # PgBouncer runs as the cluster's user
    made = [0]

    def pooler() -> PgBouncer:
        made[0] += 1
        return PgBouncer(cluster, root / f"bouncer{made[0]}", pool_size=POOL_SIZE,
                         verifier=verifier)

    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    names = list(MODES)
    rng = random.Random(11)
    try:
        for r in range(rounds):
            rng.shuffle(names)
            for name in names:
                run = run_mode(cluster, pooler, name, processes, requests, env, seed=1000 * r)
                for key, value in run.items():
                    totals[name][key] += value
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out: dict[str, Any] = {"processes": processes, "requests_per_process": requests,
                           "rounds": rounds, "pool_size": POOL_SIZE, "verifier": verifier,
                           "modes": {}}
    for name, t in totals.items():
        n = t["requests"]
        out["modes"][name] = {
            "requests": int(n),
            "errors": int(t["errors"]),
            "server_cpu_ms_per_1000": round(t["server_cpu_s"] * 1000 / n * 1000, 1),
            "pooler_cpu_ms_per_1000": round(t["pooler_cpu_s"] * 1000 / n * 1000, 1),
            "sessions_per_run": round(t["sessions"] / rounds, 1),
            "requests_per_second": round(n / t["wall_s"], 1),
        }
    m = out["modes"]
    per_request = m["connection per request, through PgBouncer"]["server_cpu_ms_per_1000"]
    reuse = m["reuse, through PgBouncer"]["server_cpu_ms_per_1000"]
    out["targets"] = {
        "fan-in: server CPU, per request through PgBouncer vs reuse through it (<= 2x)": {
            "value": round(per_request / reuse, 3), "limit": 2.0,
            "met": per_request / reuse <= 2.0,
        },
    }
    return out


def run_fanin(processes: int, requests: int, rounds: int) -> dict[str, Any]:
    """The section, on a cluster of its own, which logs each connection (to count sessions)."""
    from bench.common import cold_env, log
    from tests.support.pg_cluster import throwaway_cluster

    log(f"fan-in: {processes} processes x {requests} reads, 3 modes, {rounds} rounds")
    with throwaway_cluster({"max_connections": "100", "log_connections": "on"}) as cluster:
        return bench_fanin(cluster, processes, requests, rounds, cold_env())


def _seed(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO city (name, state) "
            "SELECT 'Fan ' || i, 'In' FROM generate_series(1, 1000) i"
        )
    conn.close()


def worker(url: str, reuse: bool, count: int, seed: int) -> None:
    os.environ.update(DATABASE_URL=url, DB_CONNECTION_REUSE="1" if reuse else "0")
    sys.path.insert(0, str(ROOT))
    import handler
    from tests.support.lambda_events import http_api_event

    rng = random.Random(seed)
    events = [
        http_api_event("GET", "/cities", query={"limit": "20"}) if i % 5 == 4
        else http_api_event("GET", f"/cities/{rng.randint(1, 1000)}")
        for i in range(count)
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    errors = sum(handler.api(event, None)["statusCode"] != 200 for event in events)
    print(json.dumps({"errors": errors}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5]))

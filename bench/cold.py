"""Cold init: a fresh interpreter importing `handler`, against the floor and a FastAPI peer.

Cold start is paid on every new Lambda container, so it is timed (CPU and wall), profiled per
package (`-X importtime`) and counted in instructions (callgrind), which the load cannot move.
"""

from __future__ import annotations

import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

from bench import callgrind
from bench.common import cold_env, log, summary, target

COLD_TARGETS = {
    "cities (import handler)": "handler",
    "floor: one-route Flask + serverless-wsgi + psycopg2": "bench.floor_app",
    "FastAPI + Mangum peer": "bench.fastapi_peer",
}
# The measured snippet: it times the import alone and prints (wall, CPU) seconds for `timings`.
IMPORT = (
    "import sys, time; t, c = time.perf_counter(), time.process_time(); import {module}; "
    "sys.stdout.write(repr((time.perf_counter() - t, time.process_time() - c)))"
)


def cold_import(module: str, workdir: str) -> tuple[float, float, float]:
    """(import wall seconds, import CPU seconds, whole process wall seconds), fresh interpreter.

    CPU time is what the import itself consumed; wall time also counts waiting for a core the
    other tenants of this machine hold, so the targets are judged on CPU time, with wall shown.
    """
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", IMPORT.format(module=module)],
        capture_output=True, text=True, cwd=workdir, env=cold_env(), check=True,
    )  # fmt: skip
    wall, cpu = timings(out.stdout)
    return wall, cpu, time.perf_counter() - start


def timings(stdout: str) -> tuple[float, float]:
    """(wall, CPU) seconds, as `IMPORT` prints them."""
    wall, cpu = (float(x) for x in stdout.strip("()").split(","))
    return wall, cpu


def import_profile(module: str, workdir: str, runs: int = 5) -> dict[str, Any]:
    """`-X importtime`, self time summed per top-level package, median over a few runs."""
    per_package: dict[str, list[float]] = defaultdict(list)
    per_module: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True, text=True, cwd=workdir, env=cold_env(), check=True,
        )  # fmt: skip
        totals: dict[str, float] = defaultdict(float)
        for line in out.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if match:
                name = match[4]
                totals[name.split(".")[0]] += int(match[1]) / 1000
                per_module[name].append(int(match[1]) / 1000)
        for name, ms in totals.items():
            per_package[name].append(ms)
    packages = sorted(
        ((name, statistics.median(v)) for name, v in per_package.items()), key=lambda x: -x[1]
    )
    modules = sorted(
        ((name, statistics.median(v)) for name, v in per_module.items()), key=lambda x: -x[1]
    )
    project = sum(ms for n, ms in packages if n in ("cities", "handler"))
    return {
        "project_ms": round(project, 2),
        "packages": [[n, round(ms, 2)] for n, ms in packages[:12]],
        "modules": [[n, round(ms, 2)] for n, ms in modules[:12]],
    }


def import_instructions(module: str, workdir: str) -> int | None:
    """Instructions `import module` executes (callgrind), beyond a bare interpreter start.

    Unlike time, this does not move with the machine's load: the same count run after run, so it
    checks the time ratios on this shared machine. None where valgrind is not installed.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None

    def collected(code: str) -> int:
        # The same hashes, so the same count run after run (the timed runs keep random ones).
        env = {**cold_env(), "PYTHONHASHSEED": "0"}
        return callgrind.collected(valgrind, [sys.executable, "-c", code], workdir, env)

    return collected(f"import {module}") - collected("pass")


def bench_cold(runs: int) -> dict[str, Any]:
    """Our import against the floor's and the peer's, `runs` fresh interpreters each."""
    log(f"cold init: {runs} fresh interpreters per contender, interleaved")
    workdir = tempfile.mkdtemp(prefix="cities-cold-")  # no .env here, as on Lambda
    try:
        for module in COLD_TARGETS.values():
            cold_import(module, workdir)  # compile bytecode once, as a deployed zip would have it
        imports: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        processes: dict[str, list[float]] = defaultdict(list)
        names = list(COLD_TARGETS)
        rng = random.Random(1)
        for _ in range(runs):
            rng.shuffle(names)
            for name in names:
                inside, used, whole = cold_import(COLD_TARGETS[name], workdir)
                imports[name].append(inside)
                cpu[name].append(used)
                processes[name].append(whole)
        profile = import_profile("handler", workdir)
        floor_profile = import_profile("bench.floor_app", workdir)
        peer_profile = import_profile("bench.fastapi_peer", workdir, runs=3)
        log("cold init: instruction counts under callgrind")
        instructions = {n: import_instructions(m, workdir) for n, m in COLD_TARGETS.items()}
        from bench.cold_parts import bench_cold_parts

        log("cold init: the subpackages, and bearer tokens (callgrind)")
        parts = bench_cold_parts(cold_env(), workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "import": {n: summary(imports[n]) for n in COLD_TARGETS},
        "cpu": {n: summary(cpu[n]) for n in COLD_TARGETS},
        "process": {n: summary(processes[n]) for n in COLD_TARGETS},
        "importtime": profile,
        "importtime_floor": floor_profile,
        "importtime_peer": peer_profile,
    }
    if parts:
        result["parts"] = parts
    ours, floor, peer = (result["cpu"][n]["median"] for n in COLD_TARGETS)
    result["targets"] = {
        "cold init (CPU) vs floor (<= 1.15x)": target(ours / floor, 1.15),
        "cold init (CPU) vs FastAPI peer (< 0.5x)": target(ours / peer, 0.5, below=True),
    }
    ours, floor, peer = (result["import"][n]["median"] for n in COLD_TARGETS)
    result["wall_ratios"] = {"vs floor": round(ours / floor, 3), "vs peer": round(ours / peer, 3)}
    if None not in instructions.values():
        ours, floor, peer = (instructions[n] for n in COLD_TARGETS)
        result["instructions"] = instructions
        result["instruction_ratios"] = {
            "vs floor": round(ours / floor, 3), "vs peer": round(ours / peer, 3)
        }
    return result

"""RSS of one warm process after N requests: run in a fresh interpreter by the benchmark.

`python -m bench.memory MODE STEPS` with DATABASE_URL set; MODE is `per-request` or `reuse`,
STEPS like `100,5000`. Prints one JSON object: the RSS (MiB) after importing the handler and
after each step, and the peak. Requests alternate `GET /cities/{id}` with a list every tenth.
`bench_memory` is the section that runs it, once per connection mode.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from typing import Any


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB, from /proc (what Lambda's memory limit counts)."""
    values: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main(mode: str, steps: list[int]) -> dict[str, Any]:
    os.environ["DB_CONNECTION_REUSE"] = "1" if mode == "reuse" else "0"
    import handler
    from tests.support.lambda_events import http_api_event

    events = [http_api_event("GET", f"/cities/{1 + i % 500}") for i in range(500)]
    events[::10] = [http_api_event("GET", "/cities", query={"limit": "50"})] * len(events[::10])
    gc.collect()
    result: dict[str, Any] = {"mode": mode, "after_import": rss_mib()[0], "steps": {}}
    done = 0
    for target in sorted(steps):
        while done < target:
            reply = handler.api(events[done % len(events)], None)
            if reply["statusCode"] != 200:
                raise SystemExit(f"request {done} answered {reply['statusCode']}")
            done += 1
        gc.collect()
        result["steps"][str(target)] = rss_mib()[0]
    result["peak"] = rss_mib()[1]
    return result


def bench_memory(url: str, warm_counts: str) -> dict[str, Any]:
    """The section: `main` in a fresh interpreter per connection mode, and the RSS targets.

    Its imports stay in here, so the measured process (this module run as `__main__`) loads
    nothing of the bench's but `main`.
    """
    import subprocess

    from bench.common import ROOT, cold_env, log, target

    log(f"memory: RSS after {warm_counts} warm requests, both connection modes")
    env = {**cold_env(), "DATABASE_URL": url}
    results = {}
    for mode in ("per-request", "reuse"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory", mode, warm_counts],
            capture_output=True, text=True, cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        results[mode] = json.loads(out.stdout)
    steps = sorted(int(s) for s in results["per-request"]["steps"])
    targets = {}
    for mode, r in results.items():
        growth = r["steps"][str(steps[-1])] - r["steps"][str(steps[0])]
        targets[f"RSS growth {steps[0]} -> {steps[-1]} requests, {mode} (<= 2 MiB)"] = target(
            growth, 2.0
        )
        targets[f"peak RSS, {mode} (<= 64 MiB: half a 128 MB Lambda)"] = target(r["peak"], 64.0)
    return {"modes": results, "targets": targets}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], [int(n) for n in sys.argv[2].split(",")])))

"""`make bench`, section `quota`: what per-writer write quotas cost a write (issue 23).

The same writes through `handler.api`-style apps with quotas off (named keys only) and on
(`WRITE_QUOTA` high enough never to refuse), interleaved on a throwaway cluster of their own
(bench/pg_cluster.py: TCP, SCRAM, fsync on, so a commit is a real one): POST /cities and
PUT /cities/{id}, with a kept connection (`DB_CONNECTION_REUSE`: the strict view, the write
alone) and with a connection per invocation (the default deployment). With quotas on, the
count rides in the COMMIT's message (cities/db/quota.py): no round trip more, two statements
more on the server. Under callgrind, the client's instructions per write, on vs off (the
server's share is in the times, not in these counts).

    python -m bench.quota     # this section alone: prints its JSON and markdown
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from bench.common import ROOT, expect, interleaved

KEYS = ("bench:bench-key",)
AUTH = {"authorization": "Bearer bench-key"}
MODES = {"off": {}, "on": {"WRITE_QUOTA": 1_000_000_000, "WRITE_QUOTA_WINDOW": 3600}}
ROUNDS = int(os.environ.get("BENCH_QUOTA_ROUNDS") or 300)
CALLGRIND_WRITES = 40


def _apps(url: str, reuse: bool) -> dict[str, Callable[[dict], dict]]:
    from cities import create_app
    from cities.http.lambda_entry import serve

    def api(app: Any) -> Callable[[dict], dict]:
        return lambda event: serve(app, event, None)

    return {mode: api(create_app({"DATABASE_URL": url, "API_KEYS": KEYS,
                                  "DB_CONNECTION_REUSE": reuse, **settings}))
            for mode, settings in MODES.items()}


def _writes(apis: dict[str, Callable[[dict], dict]], label: str) -> dict[str, Callable[[int], Any]]:
    """POST and PUT per mode; PUT rewrites a city of its own, created first."""
    from tests.support.lambda_events import http_api_event

    contenders: dict[str, Callable[[int], Any]] = {}
    for mode, api in apis.items():
        tag = f"{label}-{mode}"
        first = api(http_api_event("POST", "/cities", {"name": f"Put {tag}", "state": "B"},
                                   headers=AUTH))
        city = json.loads(first["body"])["id"]

        def post(r: int, api: Any = api, tag: str = tag) -> None:
            expect(api(http_api_event("POST", "/cities", {"name": f"Post {tag} {r}",
                                                           "state": "Bench"}, headers=AUTH)), 201)

        def put(r: int, api: Any = api, tag: str = tag, city: int = city) -> None:
            expect(api(http_api_event("PUT", f"/cities/{city}", {"name": f"Put {tag} {r}",
                                                                  "state": "B"}, headers=AUTH)),
                    200)

        contenders[f"POST {label}, quotas {mode}"] = post
        contenders[f"PUT {label}, quotas {mode}"] = put
    return contenders


def _callgrind(url: str) -> dict[str, int] | None:
    """Client instructions per POST, quotas on and off: K writes minus none, in processes of
    their own under callgrind (`python -m bench.quota --writes MODE K`)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    from bench import callgrind

    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING",
           "PYTHONHASHSEED": "0"}  # the same hashes, so the same count run after run

    def count(mode: str, writes: int) -> int:
        argv = [sys.executable, "-m", "bench.quota", "--writes", mode, str(writes)]
        return callgrind.collected(valgrind, argv, ROOT, env)

    return {mode: (count(mode, CALLGRIND_WRITES) - count(mode, 0)) // CALLGRIND_WRITES
            for mode in MODES}


def _write_many(mode: str, writes: int) -> None:
    """The callgrind subject: an app (reuse on), one warm-up write, then `writes` POSTs."""
    from tests.support.lambda_events import http_api_event

    (api,) = [a for m, a in _apps(os.environ["DATABASE_URL"], True).items() if m == mode]
    tag = f"cg-{mode}-{writes}-{os.getpid()}"
    expect(api(http_api_event("POST", "/cities", {"name": f"{tag} warm", "state": "B"},
                               headers=AUTH)), 201)
    for n in range(writes):
        expect(api(http_api_event("POST", "/cities", {"name": f"{tag} {n}", "state": "B"},
                                   headers=AUTH)), 201)


def bench_quota() -> dict[str, Any]:
    """Write latency with quotas on vs off, both connection modes, and callgrind counts."""
    from cities.db.migrate import migrate
    from tests.support.pg_cluster import throwaway_cluster

    print(f"[bench] quota: {ROUNDS} interleaved rounds of POST and PUT, quotas on vs off",
          flush=True)
    with throwaway_cluster({"max_connections": "50"}) as cluster:
        url = cluster.create_database("cities_quota")
        migrate(url)
        contenders = {**_writes(_apps(url, True), "reuse"),
                      **_writes(_apps(url, False), "per invocation")}
        # Its own warm-up and order (its published figures came from them), rounded for the JSON.
        timings = {name: {k: round(v, 3) for k, v in t.items()}
                   for name, t in interleaved(contenders, ROUNDS, warmup=10, seed=23).items()}
        instructions = _callgrind(url)
    ratios = {name.replace(", quotas on", ""): round(
        t["median"] / timings[name.replace("quotas on", "quotas off")]["median"], 3)
        for name, t in timings.items() if name.endswith("quotas on")}
    result: dict[str, Any] = {"rounds": ROUNDS, "timings": timings, "ratios": ratios}
    if instructions is not None:
        result["instructions_per_post"] = instructions
    result["markdown"] = render(result)
    return result


def render(result: dict[str, Any]) -> list[str]:
    """The docs/benchmarks.md subsection."""
    out = ["", "## Write quotas: a write with quotas on vs off", "",
           f"Median (IQR) of {result['rounds']} interleaved rounds per write, same cluster "
           "(TCP, SCRAM, fsync on); quotas on counts each write in its COMMIT's message "
           "(`python -m bench.quota`).", "",
           "| write | quotas off | quotas on | on / off |", "|---|---|---|---|"]
    timings = result["timings"]
    for name, ratio in result["ratios"].items():
        off, on = timings[f"{name}, quotas off"], timings[f"{name}, quotas on"]
        out.append(f"| {name} | {off['median']:.2f} ms ({off['q1']:.2f}-{off['q3']:.2f}) | "
                   f"{on['median']:.2f} ms ({on['q1']:.2f}-{on['q3']:.2f}) | {ratio:.3f}x |")
    counts = result.get("instructions_per_post")
    if counts:
        extra = counts["on"] - counts["off"]
        out += ["", f"Client instructions per POST (callgrind, reuse on, mean of "
                f"{CALLGRIND_WRITES}): {counts['off'] / 1e6:.3f}M off, {counts['on'] / 1e6:.3f}M "
                f"on ({extra / 1e3:+.0f}k, {extra / counts['off']:+.1%})."]
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writes"]:
        _write_many(sys.argv[2], int(sys.argv[3]))
    else:
        sys.path.insert(0, str(ROOT))
        measured = bench_quota()
        print(json.dumps({k: v for k, v in measured.items() if k != "markdown"}, indent=1))
        print("\n".join(measured["markdown"]))

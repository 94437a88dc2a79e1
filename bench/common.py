"""What every bench section shares: the log line, medians of interleaved runs, targets as ratios.

One place, so every section times, summarizes and judges the same way (see bench/__main__.py).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DUMMY_URL = "postgresql://bench:unused@127.0.0.1:9/bench"  # init never connects


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def summary(samples: list[float]) -> dict[str, float]:
    """Median and quartiles in milliseconds (samples are in seconds)."""
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {"median": statistics.median(ms), "q1": q[0], "q3": q[2], "n": len(ms)}


def interleaved(
    contenders: dict[Any, Callable[[int], Any]], rounds: int, warmup: int = 5, seed: int = 5
) -> dict[Any, dict[str, float]]:
    """Time each contender once per round, in a new random order every round (from `seed`)."""
    samples: dict[Any, list[float]] = defaultdict(list)
    names = list(contenders)
    rng = random.Random(seed)
    for r in range(warmup + rounds):
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            contenders[name](r)
            elapsed = time.perf_counter() - start
            if r >= warmup:
                samples[name].append(elapsed)
    return {name: summary(samples[name]) for name in contenders}


def target(value: float, limit: float, *, below: bool = False) -> dict[str, Any]:
    """A measured value against its limit, rounded to three decimals, or to as many more as it
    takes to show which side of the limit it is on (1.1001 is no 1.1 "MISSED")."""
    met = value < limit if below else value <= limit
    digits = 3
    while digits < 6 and value != limit and round(value, digits) == limit:
        digits += 1
    return {"value": round(value, digits), "limit": limit, "met": met}


def expect(reply: dict[str, Any], status: int) -> None:
    """Fail the run on a wrong status: a timed error page would be a figure of nothing."""
    if reply["statusCode"] != status:
        raise RuntimeError(f"expected {status}, got {reply['statusCode']}: {reply.get('body')}")


def cold_env() -> dict[str, str]:
    """A measured interpreter's environment: no DB_ or PYTHON setting of this shell leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "PYTHON"))}
    env.update(DATABASE_URL=DUMMY_URL, LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    return env


def one_route_app(name: str, read_row: Callable[[int], Any]) -> Callable[[dict], dict]:
    """`GET /cities/{id}` by one Flask route behind serverless-wsgi, nothing of the project's but
    the row as the API's JSON: what the framework alone costs. `read_row(id)` does the SELECT
    (on a new connection or a kept one); the result serves a Lambda event."""
    import serverless_wsgi
    from flask import Flask, jsonify

    from cities.db.store import as_json
    from cities.resources.city import CITY

    app = Flask(name)

    @app.get("/cities/<int:city_id>")
    def get_city(city_id: int) -> Any:
        return jsonify(as_json(CITY, read_row(city_id)))

    return lambda event: serverless_wsgi.handle_request(app, event, None)

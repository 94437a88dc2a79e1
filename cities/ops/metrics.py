"""One CloudWatch Embedded Metric Format (EMF) record per request, printed to stdout.

Printed, not logged: Lambda's runtime prefixes every logged line with a timestamp and request id,
and CloudWatch extracts metrics only from log events that are a bare JSON object. No dependency
(aws-embedded-metrics or Powertools would cost imports at every cold start): the record is a dict.

Metrics carry one dimension, the function's name (so one stage's), and stay under CloudWatch's
ten free custom metrics: a route or status dimension would multiply them (each combination is a
billed metric). The route, status, cold start and 503 cause ride along as properties, which
Logs Insights can filter and group on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

NAMESPACE = "cities"
DIMENSION = "FunctionName"
# Name and unit of each metric, in the order of `record`'s values.
METRICS = (
    ("Requests", "Count"),
    ("Latency", "Milliseconds"),
    ("DatabaseTime", "Milliseconds"),
    ("ColdStart", "Count"),
    ("Status4xx", "Count"),
    ("Status5xx", "Count"),
    # 503s whose cause is the database (unreachable, no answer in time, pooler refusing): the
    # alarm's numerator; a 503 from configuration is a deploy mistake, not an outage.
    ("DatabaseUnavailable", "Count"),
)
# A 503's cause (`ServiceUnavailable.cause`) counted as the database's.
DATABASE_CAUSES = frozenset({"database"})

_ENCODER = json.JSONEncoder(separators=(",", ":"))
# The directive is the same for every record: encoded once, spliced into each line.
_DIRECTIVE = [{
    "Namespace": NAMESPACE,
    "Dimensions": [[DIMENSION]],
    "Metrics": [{"Name": name, "Unit": unit} for name, unit in METRICS],
}]
_DIRECTIVE_JSON = _ENCODER.encode(_DIRECTIVE)
_cold = True


def record(route: str | None, status: int, latency_ms: float, db_ms: float,
           cause: str | None) -> dict[str, Any]:
    """The EMF record of one request, without its `_aws` member (`emit` adds it); the first
    one a process builds is its cold start."""
    global _cold
    cold, _cold = _cold, False
    return {
        DIMENSION: os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        "Requests": 1,
        "Latency": latency_ms,
        "DatabaseTime": db_ms,
        "ColdStart": int(cold),
        "Status4xx": int(400 <= status < 500),
        "Status5xx": int(status >= 500),
        "DatabaseUnavailable": int(cause in DATABASE_CAUSES),
        "route": route,
        "status": status,
        "statusClass": f"{status // 100}xx",
        "cause": cause,
    }


def emit(entry: dict[str, Any]) -> None:
    """Print the record as one line of its own (Lambda sends each stdout line to CloudWatch),
    with the `_aws` member first and its constant directive pre-encoded."""
    sys.stdout.write(
        f'{{"_aws":{{"Timestamp":{int(time.time() * 1000)},"CloudWatchMetrics":'
        f"{_DIRECTIVE_JSON}}},{_ENCODER.encode(entry)[1:]}\n"
    )

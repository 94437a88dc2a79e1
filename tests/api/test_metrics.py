"""One CloudWatch Embedded Metric Format record per request, printed (not logged) to stdout.

The records are parsed as CloudWatch parses them: a log event that is a bare JSON object with an
`_aws` member (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from cities import create_app
from tests.support.lambda_events import Client

ROOT = Path(__file__).resolve().parents[2]
# The units CloudWatch accepts (MetricDatum.Unit).
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}


def emf_records(stdout: str) -> list[dict]:
    """Every stdout line CloudWatch would turn into metrics, checked against the EMF schema."""
    records = []
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if "_aws" not in entry:
            continue
        meta = entry["_aws"]
        assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
        for directive in meta["CloudWatchMetrics"]:
            assert isinstance(directive["Namespace"], str) and directive["Namespace"]
            for dimension_set in directive["Dimensions"]:
                assert 1 <= len(dimension_set) <= 30
                assert all(isinstance(entry[name], str) for name in dimension_set)
            assert len(directive["Metrics"]) <= 100
            for metric in directive["Metrics"]:
                assert metric["Unit"] in UNITS
                value = entry[metric["Name"]]
                assert isinstance(value, int | float) and not isinstance(value, bool)
        records.append(entry)
    return records


def metrics_client(database_url: str | None, **config) -> Client:
    app = create_app({"DATABASE_URL": database_url, "METRICS": True, **config})
    return Client.serving(app)


def test_each_request_prints_one_emf_record(database_url, sql, capsys, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    client = metrics_client(database_url)
    created = client.post("/cities", {"name": "Graz", "state": "Styria"})
    client.get(f"/cities/{created.json['id']}")
    client.get("/cities/abc")

    records = emf_records(capsys.readouterr().out)
    assert [(r["route"], r["status"], r["statusClass"]) for r in records] == [
        ("/cities", 201, "2xx"),
        ("/cities/<city_id>", 200, "2xx"),
        ("/cities/<city_id>", 404, "4xx"),
    ]
    assert [r["Status4xx"] for r in records] == [0, 0, 1]
    assert all(r["Requests"] == 1 and r["Latency"] > 0 for r in records)
    # Connecting and the statements took time; a 404 for a malformed id never asked the database.
    assert records[0]["DatabaseTime"] > 0 and records[1]["DatabaseTime"] > 0
    assert records[2]["DatabaseTime"] == 0
    assert all(r["DatabaseTime"] <= r["Latency"] for r in records)
    # Printed, not logged: a logged line gets the runtime's prefix and is not parsed.
    assert not any("_aws" in r.getMessage() for r in caplog.records)


def test_the_log_line_and_the_record_report_one_duration(database_url, sql, capsys, caplog):
    """Measured once per request: an operator joining both sees the same latency."""
    caplog.set_level(logging.INFO, logger="cities")
    client = metrics_client(database_url)
    client.post("/cities", {"name": "Linz", "state": "Upper Austria"})
    client.get("/cities")

    records = emf_records(capsys.readouterr().out)
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.getMessage().startswith('{"event":"request"')]
    assert [line["duration_ms"] for line in lines] == [r["Latency"] for r in records]
    assert len(records) == 2


def test_the_dimension_names_this_function(database_url, sql, capsys, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cities-prod-api")
    metrics_client(database_url).get("/cities")
    (entry,) = emf_records(capsys.readouterr().out)
    assert entry["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["FunctionName"]]
    assert entry["FunctionName"] == "cities-prod-api"


def test_an_unreachable_database_is_counted_as_its_503(sql, capsys):
    reply = metrics_client("postgresql://u:p@127.0.0.1:9/x").get("/cities")
    (entry,) = emf_records(capsys.readouterr().out)
    assert reply.status == 503
    assert (entry["cause"], entry["DatabaseUnavailable"], entry["Status5xx"]) == ("database", 1, 1)
    assert "u:p" not in json.dumps(entry)


def test_a_configuration_503_is_not_a_database_outage(sql, capsys):
    reply = metrics_client(None).get("/cities")
    (entry,) = emf_records(capsys.readouterr().out)
    assert reply.status == 503
    assert (entry["cause"], entry["DatabaseUnavailable"], entry["Status5xx"]) == (
        "configuration", 0, 1)


def test_a_missing_schema_is_its_own_cause(empty_database_url, capsys):
    reply = metrics_client(empty_database_url).get("/cities")
    (entry,) = emf_records(capsys.readouterr().out)
    assert reply.status == 503
    assert (entry["cause"], entry["DatabaseUnavailable"]) == ("schema", 0)


def test_no_record_unless_metrics_are_on(database_url, sql, capsys):
    metrics_client(database_url, METRICS=False).get("/cities")
    assert emf_records(capsys.readouterr().out) == []


def test_only_a_process_first_request_is_its_cold_start(database_url, sql):
    """A fresh interpreter imports the handler as Lambda does (METRICS=on as serverless.yml
    sets it) and serves two HTTP API events."""
    script = (
        "import handler\n"
        "from tests.support.lambda_events import http_api_event\n"
        "for _ in range(2):\n"
        "    handler.api(http_api_event('GET', '/cities'), None)\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "METRICS": "on", "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    assert [r["ColdStart"] for r in emf_records(done.stdout)] == [1, 0]

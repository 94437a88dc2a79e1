"""Per-request JSON log lines, security headers, and secrets that never reach a log."""

from __future__ import annotations

import json
import logging

import pytest

from cities.ops.secrets_mask import mask_secrets


def request_lines(caplog) -> list[dict]:
    return [
        json.loads(r.getMessage()) for r in caplog.records
        if r.name == "cities" and r.getMessage().startswith('{"event":"request"')
    ]


def test_one_json_line_per_request(client, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    created = client.post("/cities", {"name": "Graz", "state": "Styria"})
    client.get("/openapi.json")
    client.get("/cities/abc")

    lines = request_lines(caplog)
    assert [(x["method"], x["route"], x["status"], x["db_connection"]) for x in lines] == [
        ("POST", "/cities", 201, "opened"),
        ("GET", "/openapi.json", 200, "none"),
        ("GET", "/cities/<city_id>", 404, "none"),
    ]
    assert all(isinstance(x["duration_ms"], float) and x["duration_ms"] >= 0 for x in lines)
    assert created.status == 201
    assert "abc" not in json.dumps(lines)  # route templates, never the path a client sent


def test_the_lambda_request_id_is_logged(handler_module, sql, caplog):
    from tests.support.lambda_events import http_api_event

    class Context:
        aws_request_id = "8f5c7c58-5f7e-4b5b-9a5e-1f2e3d4c5b6a"

    caplog.set_level(logging.INFO, logger="cities")
    event = http_api_event("GET", "/cities")
    handler_module.api(event, Context())
    line = request_lines(caplog)[-1]
    assert line["request_id"] == Context.aws_request_id
    # API Gateway's id, as in its access log ($context.requestId): the two lines join on it.
    assert line["gateway_request_id"] == event["requestContext"]["requestId"]


def test_a_failed_connection_is_logged_as_such(client_for, caplog):
    caplog.set_level(logging.INFO, logger="cities")
    client_for(DATABASE_URL="postgresql://u:p@127.0.0.1:9/x").get("/cities")
    assert request_lines(caplog)[-1]["db_connection"] == "failed"


def test_log_level_warning_silences_request_lines(client, app, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="cities")
    client.get("/cities")
    assert request_lines(caplog) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "no_store"),
    [
        ("GET", "/cities", None, 200, False),
        ("GET", "/openapi.json", None, 200, False),
        ("POST", "/cities", {"name": "Graz", "state": "Styria"}, 201, True),
        ("POST", "/cities", "{", 400, True),
        ("GET", "/cities/999", None, 404, True),
        ("GET", "/nowhere", None, 404, True),
        ("DELETE", "/cities", None, 405, True),
    ],
)
def test_security_headers_on_every_response(client, method, path, body, status, no_store):
    reply = client.request(method, path, body)
    assert reply.status == status
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert (reply.header("Cache-Control") == "no-store") is no_store


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:s3cr%40t@db.example.com:5432/cities?sslmode=require",
         "postgresql://***@db.example.com:5432/cities?sslmode=require"),
        ("postgres://only_user@host/db", "postgres://***@host/db"),
        ("host=h user=u password=hunter2 dbname=d", "host=h user=u password=*** dbname=d"),
        ("password = 'with space' port=5", "password = *** port=5"),
        ("HOST=h PASSWORD=Hunter2", "HOST=h PASSWORD=***"),
        ("postgresql://h/db?sslmode=require&password=hunter2&user=u",
         "postgresql://h/db?sslmode=require&password=***&user=u"),
        ("host=h password='it\\'s quoted' port=5", "host=h password=*** port=5"),
        ("host=h sslpassword=keypass oauth_client_secret=oc", "host=h sslpassword=*** "
         "oauth_client_secret=***"),
        ("see user@example.com, Password: none", "see user@example.com, Password: none"),
        ("no secrets here", "no secrets here"),
        ('after "postgresql://app:S3c@ret/Pw@db.example.com/x" in',
         'after "postgresql://***@db.example.com/x" in'),
    ],
)
def test_mask_secrets(text, masked):
    assert mask_secrets(text) == masked


def test_pieces_of_a_given_password_are_masked_wherever_libpq_quotes_them():
    url = "postgresql://app:S3c@ret/Pw9@db.example.com/cities"
    assert mask_secrets('could not translate host name "ret/Pw9@db.example.com"', url) == (
        'could not translate host name "***/***@db.example.com"'
    )
    assert mask_secrets('invalid integer value "S3c" for port', url) == (
        'invalid integer value "***" for port'
    )


def test_no_log_line_of_a_full_run_contains_a_secret(client_for, client, caplog):
    """Every logging path, failures included, with a recognizable password in the URL."""
    caplog.set_level(logging.DEBUG)
    secret = "Sup3rS3cretPassw0rd"
    bad = client_for(DATABASE_URL=f"postgresql://app:{secret}@127.0.0.1:9/cities")
    bad.get("/cities")
    bad.get("/health")
    logging.getLogger("cities").error("configured with postgresql://app:%s@h/db", secret)
    try:
        raise RuntimeError(f"boom host=h password={secret}")
    except RuntimeError:
        logging.getLogger("cities").exception("unexpected")
    client.post("/cities", {"name": "Graz", "state": "Styria"})
    client.post("/cities", {"name": "Graz", "state": "Styria"})

    handler = logging.StreamHandler()
    rendered = "\n".join(handler.format(r) for r in caplog.records)
    assert "Traceback" in rendered  # the exception was logged...
    assert secret not in rendered and secret not in caplog.text  # ...without the secret

"""The error module: every failure, expected or not, leaves as the one JSON error shape."""

from __future__ import annotations

import pytest
from werkzeug import exceptions

from cities.db import store
from cities.http.errors import CODES, handle_http_exception
from tests.conftest import open_connections


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (exceptions.ImATeapot(), 418, "bad_request"),
        (exceptions.RequestURITooLarge(), 414, "bad_request"),
        (exceptions.NotImplemented(), 501, "internal_error"),
        (exceptions.BadRequest(), 400, "bad_request"),
    ],
)
def test_any_werkzeug_error_becomes_the_json_shape(app, error, status, code):
    with app.test_request_context():
        response = handle_http_exception(error)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["details"] == []


def test_every_code_in_the_contract_is_mapped():
    assert set(CODES.values()) == {
        "bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict",
        "payload_too_large", "unsupported_media_type", "validation_failed",
        "service_unavailable", "internal_error", "precondition_failed", "precondition_required",
        "too_many_requests",
    }


def test_a_connection_lost_mid_request_is_503_and_closed(client, database_url, monkeypatch):
    """The server ends the backend while the request runs (as a restart or failover would)."""

    def terminated(conn, *_):
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    monkeypatch.setattr(store, "get", terminated)
    reply = client.get("/cities/1")
    assert reply.status == 503
    assert reply.error_code == "service_unavailable"
    assert reply.header("Retry-After") == "5"
    assert open_connections(database_url) == 0

"""`handler.migrate` as CloudFormation's `Custom::Migrations`: it answers every request on the
ResponseURL (here a local HTTP server), so a deploy waits for the migrations and fails, with the
old API code still serving, when they fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from cities import custom_resource
from cities.migrate import load_migrations
from tests.conftest import run_sql
from tests.response_url import ResponseURL, request

SHIPPED = [m.name for m in load_migrations()]
SECRET = "pw-Never-In-A-Reason"


class LambdaContext:
    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


@pytest.fixture
def response_url() -> Iterator[ResponseURL]:
    server = ResponseURL()
    yield server
    server.close()


@pytest.fixture
def migrate_to(handler_module: Any, monkeypatch: pytest.MonkeyPatch):
    def point(url: str) -> Any:
        monkeypatch.setitem(handler_module.app.config, "MIGRATIONS_DATABASE_URL", url)
        return handler_module.migrate

    return point


def test_create_applies_the_migrations_then_answers_success(
    migrate_to, empty_database_url: str, response_url: ResponseURL
) -> None:
    migrate = migrate_to(empty_database_url)
    migrate(request(response_url.url), LambdaContext())
    (answer,) = response_url.received
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == "cities-schema-migrations"
    event = request(response_url.url)
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert answer[key] == event[key]
    assert answer["Data"] == {"Version": str(len(SHIPPED)), "Applied": str(len(SHIPPED))}
    # S3 checks a pre-signed PUT's signature, which covers no content type: none is sent.
    assert response_url.headers[0].get("Content-Type", "") == ""
    rows = run_sql(empty_database_url, "SELECT name FROM schema_migrations ORDER BY version")
    assert [name for (name,) in rows] == SHIPPED


def test_update_keeps_the_physical_id_and_applies_nothing_twice(
    migrate_to, database_url: str, response_url: ResponseURL
) -> None:
    migrate_to(database_url)(request(response_url.url, "Update"), LambdaContext())
    (answer,) = response_url.received
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == "cities-schema-migrations"  # not a replacement
    assert answer["Data"]["Applied"] == "0"


def test_delete_succeeds_without_touching_any_database(migrate_to, response_url) -> None:
    migrate = migrate_to(f"postgresql://owner:{SECRET}@127.0.0.1:9/nowhere")
    migrate(request(response_url.url, "Delete"), LambdaContext())
    (answer,) = response_url.received
    assert answer["Status"] == "SUCCESS"


def test_a_failing_migration_answers_failed_and_leaves_the_schema_as_it_was(
    migrate_to, empty_database_url: str, response_url: ResponseURL
) -> None:
    run_sql(empty_database_url, "CREATE TABLE city (not_what_0001_expects int)")
    migrate_to(empty_database_url)(request(response_url.url), LambdaContext())
    (answer,) = response_url.received
    assert answer["Status"] == "FAILED"
    assert "0001_create_city.sql failed and was rolled back" in answer["Reason"]
    assert run_sql(empty_database_url, "SELECT count(*) FROM schema_migrations") == [(0,)]


def test_an_unreachable_database_answers_failed_with_a_masked_reason(
    migrate_to, response_url: ResponseURL
) -> None:
    url = f"postgresql://owner:{SECRET}@127.0.0.1:9/nowhere?connect_timeout=1"
    migrate_to(url)(request(response_url.url), LambdaContext())
    (answer,) = response_url.received
    assert answer["Status"] == "FAILED"
    assert "cannot connect to the database" in answer["Reason"]
    assert SECRET not in answer["Reason"] and "postgresql://" not in answer["Reason"]
    assert len(answer["Reason"]) <= 600


def test_reasons_mask_credentials_and_keep_one_line() -> None:
    error = RuntimeError(f"bad postgresql://u:{SECRET}@h/db and host=h password={SECRET} x\nmore")
    reason = custom_resource.masked_reason(error)
    assert SECRET not in reason
    assert reason == "RuntimeError: bad postgresql://***@h/db and host=h password=*** x"


def test_a_run_about_to_time_out_answers_failed_once_before_the_function_dies(
    response_url: ResponseURL,
) -> None:
    def slow() -> dict:
        time.sleep(0.6)
        return {"version": 4, "applied": []}

    margin = custom_resource.TIMEOUT_MARGIN_S
    context = LambdaContext(remaining_ms=int((margin + 0.2) * 1000))
    custom_resource.handle(request(response_url.url), context, slow)
    (answer,) = response_url.received  # the late success is not sent as a second answer
    assert answer["Status"] == "FAILED"
    assert "timeout" in answer["Reason"]


def test_a_direct_invocation_still_returns_the_result(migrate_to, database_url: str) -> None:
    assert migrate_to(database_url)({}, None)["version"] == len(SHIPPED)

"""`handler.migrate` as CloudFormation's `Custom::Migrations`: it answers every request on the
ResponseURL (here a local HTTP server), so a deploy waits for the migrations and fails, with the
old API code still serving, when they fail."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from cities.db.migrate import LOCK_TIMEOUT_S, load_migrations, migrate
from cities.ops import custom_resource
from tests.conftest import open_connections, run_sql
from tests.support.response_url import ResponseURL, request

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


def test_a_run_that_does_not_stop_at_its_deadline_still_gets_one_failed_answer_in_time(
    response_url: ResponseURL,
) -> None:
    """A run stuck where no cancel reaches (a database that stopped answering) is not waited
    for past ANSWER_MARGIN_S before the timeout, and its late end sends no second answer."""
    release = threading.Event()
    deadlines: list[float | None] = []

    def stuck(deadline: float | None) -> dict:
        deadlines.append(deadline)
        release.wait(60)
        return {"version": 4, "applied": []}

    remaining_s = custom_resource.ANSWER_MARGIN_S + 1
    context = LambdaContext(remaining_ms=int(remaining_s * 1000))
    started = time.monotonic()
    custom_resource.handle(request(response_url.url), context, stuck)
    took = time.monotonic() - started
    release.set()

    assert took < remaining_s  # answered while the function was still alive
    (runner,) = [t for t in threading.enumerate() if t.name == "migrations"]
    runner.join(10)
    (answer,) = response_url.received  # the late success is not sent as a second answer
    assert answer["Status"] == "FAILED"
    assert "had not ended" in answer["Reason"] and "schema_migrations" in answer["Reason"]
    # The run was told to stop TIMEOUT_MARGIN_S before the function's end (already past here).
    assert deadlines[0] <= context.deadline - custom_resource.TIMEOUT_MARGIN_S + 0.001


# --- the deadline on a real run: a FAILED answer hides no commit ---------------------------


def migrations_in(tmp_path: Path, files: dict[str, str]) -> Path:
    """A migrations directory holding exactly `files` (name: SQL)."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def answer_to(url: str, directory: Path, response_url: ResponseURL,
              context: LambdaContext) -> tuple[dict, float]:
    """Run `directory`'s migrations on `url` as the migrate function would; its one answer and
    how long the function took to give it."""
    started = time.monotonic()
    custom_resource.handle(request(response_url.url), context,
                           lambda deadline: migrate(url, directory=directory, deadline=deadline))
    took = time.monotonic() - started
    (answer,) = response_url.received
    return answer, took


def ledger(url: str) -> list[str]:
    """The files schema_migrations records as applied (none when it does not exist yet)."""
    if run_sql(url, "SELECT to_regclass('schema_migrations') IS NULL") == [(True,)]:
        return []
    return [name for (name,) in run_sql(url, "SELECT name FROM schema_migrations ORDER BY 1")]


def tables(url: str, *names: str) -> list[str]:
    """Which of `names` exist."""
    return [name for name in names
            if run_sql(url, "SELECT to_regclass(%s) IS NOT NULL", (name,)) == [(True,)]]


def no_migrate_session_left(url: str) -> bool:
    """The run's connection is gone: nothing of it can commit any more."""
    return open_connections(url, "cities-migrate") == 0


def test_a_migration_running_at_the_deadline_is_cancelled_and_nothing_of_it_commits(
    empty_database_url: str, response_url: ResponseURL, tmp_path: Path
) -> None:
    remaining_s = custom_resource.TIMEOUT_MARGIN_S + 3
    directory = migrations_in(tmp_path, {
        "0001_first.sql": "CREATE TABLE first_done (id int);\n",
        # Runs far past the function's timeout unless cancelled.
        "0002_slow.sql": f"CREATE TABLE slow_done (id int);\nSELECT pg_sleep({2 * remaining_s});\n",
        "0003_after.sql": "CREATE TABLE after_slow (id int);\n",
    })
    answer, took = answer_to(empty_database_url, directory, response_url,
                             LambdaContext(remaining_ms=remaining_s * 1000))

    assert answer["Status"] == "FAILED"
    assert tables(empty_database_url, "slow_done", "after_slow") == []
    applied = ledger(empty_database_url)
    assert applied in ([], ["0001_first.sql"])  # the deadline falls in 0002 (or, slower, before)
    # The reason says what the database holds.
    assert "stopped before the migrate function's timeout" in answer["Reason"]
    assert f"this run applied {', '.join(applied) or 'nothing'}" in answer["Reason"]
    assert took < remaining_s  # answered while the function was alive, not after the sleep
    # ...and nothing commits later either: the run's session is gone, the ledger unchanged.
    assert no_migrate_session_left(empty_database_url)
    assert ledger(empty_database_url) == applied
    assert tables(empty_database_url, "slow_done", "after_slow") == []


def test_a_table_another_session_holds_fails_the_migration_as_a_lock_timeout_in_time(
    empty_database_url: str, response_url: ResponseURL, tmp_path: Path
) -> None:
    run_sql(empty_database_url, "CREATE TABLE held (id int)")
    holder = psycopg2.connect(empty_database_url)  # a session idle in its transaction
    with holder.cursor() as cur:
        cur.execute("SELECT count(*) FROM held")
    # So that a run which ignores its lock timeout cannot hang the test: the holder lets go.
    safety = threading.Timer(60, holder.rollback)
    safety.start()
    remaining_s = custom_resource.TIMEOUT_MARGIN_S + 6
    run_budget_s = remaining_s - custom_resource.TIMEOUT_MARGIN_S
    directory = migrations_in(tmp_path, {"0001_extend_held.sql": "ALTER TABLE held ADD extra int;"})
    try:
        answer, took = answer_to(empty_database_url, directory, response_url,
                                 LambdaContext(remaining_ms=remaining_s * 1000))
        holder_pid = holder.get_backend_pid()
    finally:
        safety.cancel()
        holder.rollback()
        holder.close()

    assert answer["Status"] == "FAILED"
    reason = answer["Reason"]
    waited = re.search(r"waited ([\d.]+) s for a lock held by another session on held \(pid (\d+)",
                       reason)
    assert waited, reason
    # At most LOCK_TIMEOUT_S and half the run's time: the lock timeout, not the deadline's
    # cancel, ended it, well before the function's end.
    assert float(waited[1]) <= min(LOCK_TIMEOUT_S, run_budget_s / 2)
    assert int(waited[2]) == holder_pid
    assert "ALTER" not in reason and "stopped before" not in reason
    assert took < remaining_s
    assert ledger(empty_database_url) == []
    # Once the holder has gone, nothing of the run commits later.
    assert no_migrate_session_left(empty_database_url)
    assert ledger(empty_database_url) == []
    columns = run_sql(empty_database_url, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'held'")
    assert columns == [("id",)]


def test_a_run_that_ends_before_its_deadline_answers_success(
    empty_database_url: str, response_url: ResponseURL, tmp_path: Path
) -> None:
    directory = migrations_in(tmp_path, {
        "0001_first.sql": "CREATE TABLE first_done (id int);\n",
        "0002_second.sql": "SELECT pg_sleep(0.2);\nCREATE TABLE second_done (id int);\n",
    })
    answer, _ = answer_to(empty_database_url, directory, response_url, LambdaContext())
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"] == {"Version": "2", "Applied": "2"}
    assert ledger(empty_database_url) == ["0001_first.sql", "0002_second.sql"]


def test_a_direct_invocation_also_stops_before_the_timeout(migrate_to, empty_database_url) -> None:
    """`osls invoke -f migrate` with no time left: a clear error, and nothing was started."""
    migrate = migrate_to(empty_database_url)
    context = LambdaContext(remaining_ms=int(custom_resource.TIMEOUT_MARGIN_S * 1000) - 1000)
    with pytest.raises(RuntimeError, match="did not start: no time was left"):
        migrate({}, context)
    assert ledger(empty_database_url) == []


def test_a_direct_invocation_still_returns_the_result(migrate_to, database_url: str) -> None:
    assert migrate_to(database_url)({}, None)["version"] == len(SHIPPED)

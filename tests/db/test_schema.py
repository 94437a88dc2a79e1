"""cities/db/schema.sql is the schema the shipped migrations build, exactly as pg_dump prints it."""

from __future__ import annotations

import difflib
import subprocess

import pytest

from cities.db.migrate import migrate
from tests.support.pg_cluster import BIN
from tests.support.schema import SCHEMA_FILE, dump


def same_major_as_pg_dump(url: str) -> None:
    """schema.sql is written by the embedded server's pg_dump; another major version (a
    TEST_DATABASE_URL server) prints the same schema in other words."""
    from tests.conftest import run_sql

    server = run_sql(url, "SHOW server_version_num")[0][0][:-4]
    tool = subprocess.run([str(BIN / "pg_dump"), "--version"], capture_output=True, text=True)
    major = tool.stdout.split()[-1].split(".")[0]
    if server != major:
        pytest.skip(f"the test server is PostgreSQL {server}; schema.sql is pg_dump {major}'s")


def test_schema_sql_is_what_the_migrations_build(empty_database_url: str) -> None:
    same_major_as_pg_dump(empty_database_url)
    migrate(empty_database_url)
    built = dump(empty_database_url)
    written = SCHEMA_FILE.read_text()
    diff = "".join(difflib.unified_diff(
        written.splitlines(keepends=True), built.splitlines(keepends=True),
        "cities/db/schema.sql", "what the migrations build"))
    assert not diff, f"schema.sql is out of date: run `make schema`\n{diff}"


def test_the_check_sees_a_schema_that_drifted(empty_database_url: str) -> None:
    """The comparison is not vacuous: one more index is a difference it reports."""
    from tests.conftest import run_sql

    same_major_as_pg_dump(empty_database_url)
    migrate(empty_database_url)
    run_sql(empty_database_url, "CREATE INDEX drifted ON city (state)")
    assert dump(empty_database_url) != SCHEMA_FILE.read_text()

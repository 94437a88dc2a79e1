"""The migration gate: the release before a migration change still serves on the new schema.

A deploy commits the migrations before the new code serves, and a rollback runs the old code on
the new schema for good: so the previous release (tests/support/migration_gate.py says which)
is driven through every route it documents against a database migrated by this checkout. The
gate itself is proved on history: the code before migration 0006 (which replaced the
idempotency key's primary key in one step) answers 500 on an idempotent create at schema 6,
and the same code passes on an additive migration.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cities.db.migrate import migrate
from tests.support import migration_gate as gate

# Migration 0006 (per-collection idempotency keys) was added by this commit.
CONTRACTING_0006 = "01e9f2c075e3736d8383da132d31198a84cf2837"


def previous_release_or_skip(**env: str) -> str:
    """The release to protect; in CI a gate that cannot run fails instead of skipping."""
    try:
        return gate.previous_release({**os.environ, **env})
    except gate.GateUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the migration gate cannot run in CI: {exc}")
        pytest.skip(f"migration gate NOT RUN: {exc}")


def commit_or_skip(rev: str) -> str:
    """A commit of this project's history; a clone without it skips (fails in CI)."""
    if not gate.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False):
        reason = f"commit {rev[:7]} is not in this clone's history (shallow clone?)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return rev


def test_the_release_before_the_newest_migration_serves_on_this_schema(
        databases, tmp_path: Path) -> None:
    release = gate.export(previous_release_or_skip(), tmp_path / "release")
    url = databases.create()
    migrate(url)

    result = gate.smoke(release, url)

    assert result.returncode == 0, result.summary()
    assert result.report["requests"], "the smoke sent no request"


def test_a_one_step_primary_key_change_fails_the_gate(databases, tmp_path: Path) -> None:
    """The code before 0006, at schema 6: every create with Idempotency-Key answered 500."""
    new = commit_or_skip(CONTRACTING_0006)
    release = gate.export(f"{new}^", tmp_path / "release")
    migrations = gate.export(new, tmp_path / "new", ("cities/migrations",)) / "cities/migrations"
    url = databases.create()
    migrate(url, directory=migrations)

    result = gate.smoke(release, url)

    assert result.returncode == 1
    failed = {(r["method"], r["idempotency_key"], r["status"]) for r in result.report["failed"]}
    assert ("POST", True, 500) in failed, result.summary()


def test_an_additive_migration_passes_the_gate(databases, tmp_path: Path) -> None:
    """The same release on an expanding migration: a nullable column and a new index."""
    new = commit_or_skip(CONTRACTING_0006)
    release = gate.export(f"{new}^", tmp_path / "release")
    migrations = gate.export(f"{new}^", tmp_path / "old", ("cities/migrations",))
    folder = migrations / "cities/migrations"
    (folder / "0006_idempotency_collection.sql").write_text(
        "ALTER TABLE idempotency_key ADD COLUMN collection text;\n"
        "CREATE UNIQUE INDEX idempotency_key_collection ON idempotency_key (collection, key);\n")
    url = databases.create()
    migrate(url, directory=folder)

    result = gate.smoke(release, url)

    assert result.returncode == 0, result.summary()


def scratch_repo(path: Path) -> Path:
    """An empty git repository with an identity, for history the tests write themselves."""
    path.mkdir()
    for args in (("init", "--quiet"), ("config", "user.email", "t@example.invalid"),
                 ("config", "user.name", "t"), ("config", "commit.gpgsign", "false")):
        gate.git(*args, repo=path)
    return path


def commit(repo: Path, message: str, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        target = repo / name
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    gate.git("add", "--all", repo=repo)
    gate.git("commit", "--quiet", "-m", message, repo=repo)
    return gate.git("rev-parse", "HEAD", repo=repo)


def test_the_previous_release_is_the_commit_before_the_newest_migration_change(
        tmp_path: Path) -> None:
    """Moving the folder changes no migration; code-only commits after a change are not it."""
    repo = scratch_repo(tmp_path / "repo")
    commit(repo, "first", {"cities/migrations/0001_a.sql": "CREATE TABLE a ();\n"})
    release = commit(repo, "code", {"cities/app.py": "1\n"})
    commit(repo, "0002", {"cities/migrations/0002_b.sql": "CREATE TABLE b ();\n"})
    commit(repo, "more code", {"cities/app.py": "2\n"})
    moved = {f"cities/db/migrations/{n}": (repo / "cities/migrations" / n).read_text()
             for n in ("0001_a.sql", "0002_b.sql")}
    commit(repo, "move", {**moved, "cities/migrations/0001_a.sql": None,
                          "cities/migrations/0002_b.sql": None})

    assert gate.previous_release({}, repo) == release


def test_an_uncommitted_migration_protects_head(tmp_path: Path) -> None:
    repo = scratch_repo(tmp_path / "repo")
    commit(repo, "first", {"cities/db/migrations/0001_a.sql": "CREATE TABLE a ();\n"})
    head = commit(repo, "code", {"cities/app.py": "1\n"})
    (repo / "cities/db/migrations/0002_b.sql").write_text("CREATE TABLE b ();\n")

    assert gate.previous_release({}, repo) == head


def test_a_pull_request_protects_the_merge_base_with_its_target(tmp_path: Path) -> None:
    repo = scratch_repo(tmp_path / "repo")
    base = commit(repo, "first", {"cities/db/migrations/0001_a.sql": "CREATE TABLE a ();\n"})
    gate.git("branch", "-M", "main", repo=repo)
    gate.git("checkout", "--quiet", "-b", "feature", repo=repo)
    commit(repo, "0002", {"cities/db/migrations/0002_b.sql": "CREATE TABLE b ();\n"})
    gate.git("checkout", "--quiet", "main", repo=repo)
    commit(repo, "main moves on", {"cities/app.py": "1\n"})
    gate.git("checkout", "--quiet", "feature", repo=repo)

    assert gate.previous_release({"GITHUB_BASE_REF": "main"}, repo) == base


def test_a_shallow_clone_without_the_history_says_why(tmp_path: Path) -> None:
    """Deepening is tried; a clone whose origin is gone cannot, and the reason names the fix."""
    origin = scratch_repo(tmp_path / "origin")
    commit(origin, "first", {"cities/db/migrations/0001_a.sql": "CREATE TABLE a ();\n"})
    commit(origin, "0002", {"cities/db/migrations/0002_b.sql": "CREATE TABLE b ();\n"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth=1", f"file://{origin}", str(clone)],
                   check=True)
    gate.git("remote", "set-url", "origin", str(tmp_path / "gone"), repo=clone)

    with pytest.raises(gate.GateUnavailable, match="fetch-depth: 0"):
        gate.previous_release({}, clone)


def test_a_shallow_clone_is_deepened_when_its_origin_answers(tmp_path: Path) -> None:
    origin = scratch_repo(tmp_path / "origin")
    first = commit(origin, "first", {"cities/db/migrations/0001_a.sql": "CREATE TABLE a ();\n"})
    commit(origin, "0002", {"cities/db/migrations/0002_b.sql": "CREATE TABLE b ();\n"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth=1", f"file://{origin}", str(clone)],
                   check=True)

    assert gate.previous_release({}, clone) == first

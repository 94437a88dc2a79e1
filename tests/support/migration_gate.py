"""The migration gate: the release before a migration change must keep serving on the new schema.

During a deploy the migrations commit first and the previous code serves until the new code is
live (and again after a rollback), so every migration must be one that code survives: expand,
then contract (docs/extending.md: Adding a field). The gate finds that previous release in git
history, exports its `cities/` package into a scratch directory, and drives it (tests/support/
old_code_smoke.py, in a subprocess with that package on PYTHONPATH) against a database migrated
by this checkout's migrations.

Which release: with `MIGRATION_GATE_BASE` (any revision) that one; with `GITHUB_BASE_REF` (set on
pull requests) the merge base with that branch; otherwise the commit before the newest change to
the set of migration files (contents by file name, so moving the folder is no change; an
uncommitted change makes HEAD the previous release). A shallow clone is deepened with
`git fetch --unshallow`; when history still lacks the commit, `GateUnavailable` says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("old_code_smoke.py")
# Where migrations have lived: the package was reorganised into folders (cities/db/ since then).
MIGRATION_PATHS = ("cities/db/migrations", "cities/migrations")
# The variables a release reads at start; all pinned so the caller's own cannot leak in.
_RELEASE_ENV = ("API_KEYS", "MIGRATIONS_DATABASE_URL", "API_GATEWAY_BASE_PATH", "STRIP_STAGE_PATH",
                "DATABASE_URL_SSM_PARAMETER", "MIGRATIONS_DATABASE_URL_SSM_PARAMETER",
                "API_KEYS_SSM_PARAMETER", "PUBLIC_HOSTS")


class GateUnavailable(Exception):
    """The gate cannot run here (no git, or history too shallow); the message says why."""


def git(*args: str, repo: Path = ROOT, check: bool = True) -> str:
    """One git command's standard output, stripped; raises CalledProcessError when `check`."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise subprocess.CalledProcessError(done.returncode, ["git", *args], done.stdout,
                                            done.stderr)
    return done.stdout.strip()


def migration_files(rev: str, repo: Path = ROOT) -> dict[str, str]:
    """File name -> blob id of every migration at `rev`, wherever the folder was then."""
    listing = git("ls-tree", "-r", rev, "--", *MIGRATION_PATHS, repo=repo)
    return {Path(path).name: line.split()[2]
            for line, _, path in (row.partition("\t") for row in listing.splitlines())
            if path.endswith(".sql")}


def working_migration_files(repo: Path = ROOT) -> dict[str, str]:
    """File name -> blob id of the migrations in the working tree (committed or not)."""
    paths = sorted(p for folder in MIGRATION_PATHS for p in (repo / folder).glob("*.sql"))
    if not paths:
        return {}
    ids = git("hash-object", "--", *map(str, paths), repo=repo).split()
    return {path.name: blob for path, blob in zip(paths, ids, strict=True)}


def _parent(rev: str, repo: Path) -> str | None:
    return git("rev-parse", "--verify", "--quiet", f"{rev}^1", repo=repo, check=False) or None


def _deepen(repo: Path, why: str) -> None:
    """Fetch the rest of history in a shallow clone, or say why the gate cannot run."""
    if git("rev-parse", "--is-shallow-repository", repo=repo) != "true":
        raise GateUnavailable(why)
    try:
        git("fetch", "--quiet", "--unshallow", repo=repo)
    except subprocess.CalledProcessError as exc:
        raise GateUnavailable(f"{why}: this clone is shallow and `git fetch --unshallow` "
                              f"failed ({exc.stderr.strip()[:200]}); check out with full "
                              "history (actions/checkout: fetch-depth: 0)") from None


def newest_migration_change(repo: Path = ROOT) -> str:
    """The commit before the newest change to the migration files: the release to protect."""
    if working_migration_files(repo) != migration_files("HEAD", repo):
        return git("rev-parse", "HEAD", repo=repo)
    for attempt in range(2):
        commits = git("rev-list", "--first-parent", "HEAD", "--", *MIGRATION_PATHS,
                      repo=repo).split()
        for commit in commits:
            parent = _parent(commit, repo)
            if parent is None:
                break  # the root, or the edge of a shallow clone
            if migration_files(commit, repo) != migration_files(parent, repo):
                return parent
        else:
            raise GateUnavailable("no commit in history changes a migration")
        if attempt == 0:
            _deepen(repo, "the history before the first migration is not here")
    raise GateUnavailable("the first migration has no release before it")


def previous_release(env: dict[str, str] | None = None, repo: Path = ROOT) -> str:
    """The commit whose code must keep serving on this checkout's schema (module docstring)."""
    env = os.environ if env is None else env
    try:
        git("rev-parse", "--git-dir", repo=repo)
    except (subprocess.CalledProcessError, FileNotFoundError):
        raise GateUnavailable("not a git checkout: the gate needs history") from None
    if env.get("MIGRATION_GATE_BASE"):
        return git("rev-parse", "--verify", f"{env['MIGRATION_GATE_BASE']}^{{commit}}", repo=repo)
    target = env.get("GITHUB_BASE_REF")
    if target:
        for attempt in range(2):
            for ref in (f"origin/{target}", target):
                base = git("merge-base", "HEAD", ref, repo=repo, check=False)
                if base:
                    return base
            if attempt == 0:
                _deepen(repo, f"no merge base with {target}")
    return newest_migration_change(repo)


def export(rev: str, dest: Path, paths: tuple[str, ...] = ("cities",), repo: Path = ROOT) -> Path:
    """The files under `paths` at `rev`, written into `dest` (no worktree left registered)."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "--", *paths], cwd=repo,
                             capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as tar:
        tar.write(archive)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as files:
            files.extractall(dest, filter="data")
    return dest


@dataclass
class SmokeResult:
    returncode: int
    report: dict
    stderr: str

    def summary(self) -> str:
        """The failed requests and missed routes, for an assertion message."""
        lines = [f"{r['method']} {r['path']}{' (Idempotency-Key)' if r['idempotency_key'] else ''}"
                 f" answered {r['status']}, expected {r['expected']} {r.get('problem', '')}"
                 for r in self.report.get("failed", [])]
        lines += [f"not exercised: {route}" for route in self.report.get("missed", [])]
        return "\n".join(lines) or self.stderr[-2000:]


def smoke(release: Path, database_url: str, timeout: float = 300) -> SmokeResult:
    """Drive the `cities` package under `release` through its routes against `database_url`."""
    env = {**os.environ, **dict.fromkeys(_RELEASE_ENV, ""), "PYTHONPATH": str(release),
           "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-P", str(SMOKE)], cwd=release, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = {}
    return SmokeResult(done.returncode, report, done.stderr)

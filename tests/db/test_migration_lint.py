"""squawk, a PostgreSQL migration linter, passes over every migration, each warning accepted.

Shipped migration files never change (their checksums are recorded in deployed databases), so
accepted warnings live in cities/db/migrations/squawk.toml with their reasons. A warning that
file does not accept fails, and so does an acceptance squawk no longer raises.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

from cities.db.migrate import MIGRATIONS_DIR
from tests.support.tools import tool

CONFIG = MIGRATIONS_DIR / "squawk.toml"


def squawk() -> str:
    return tool("squawk", "squawk-cli, requirements-dev.txt: `make test` installs it")


def warnings(folder: Path, config: dict) -> dict[str, set[str]]:
    """File name -> the rules squawk raises on it, past the ones the runner answers for all."""
    every = sorted(config["every_migration"])
    args = [squawk(), "--reporter", "json", f"--pg-version={config['pg_version']}",
            f"--exclude={','.join(every)}"]
    if config["assume_in_transaction"]:
        args.append("--assume-in-transaction")
    done = subprocess.run([*args, *sorted(map(str, folder.glob("*.sql")))],
                          capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: it found something
    raised: dict[str, set[str]] = {}
    for item in json.loads(done.stdout or "[]"):
        raised.setdefault(Path(item["file"]).name, set()).add(item["rule_name"])
    return raised


def accepted(config: dict) -> dict[str, set[str]]:
    return {name: set(rules) for name, rules in config.get("migration", {}).items()}


def test_every_warning_is_accepted_with_a_reason_beside_its_migration() -> None:
    config = tomllib.loads(CONFIG.read_text())
    assert all(reason.strip() for rules in config["migration"].values()
               for reason in rules.values())

    assert warnings(MIGRATIONS_DIR, config) == accepted(config)


def test_every_accepted_migration_exists() -> None:
    config = tomllib.loads(CONFIG.read_text())

    assert set(config["migration"]) <= {p.name for p in MIGRATIONS_DIR.glob("*.sql")}


def test_a_new_migration_that_drops_a_column_is_refused(tmp_path: Path) -> None:
    """Contracting (DROP COLUMN) is a later release's step, never accepted by default."""
    config = tomllib.loads(CONFIG.read_text())
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "0099_drop_state.sql").write_text("ALTER TABLE city DROP COLUMN state;\n")

    raised = warnings(tmp_path, config)

    assert "ban-drop-column" in raised["0099_drop_state.sql"]
    assert raised != accepted(config)

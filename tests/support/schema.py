"""The schema the migrations build, as `pg_dump --schema-only` prints it, for cities/db/schema.sql.

`python -m tests.support.schema` rewrites that file from a fresh database migrated by every shipped
migration; tests/db/test_schema.py fails when the two differ. The file is for reading: the one
place that shows the current tables, indexes and constraints without replaying the migrations in
one's head. Migrations stay the only way the schema changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cities.db.migrate import MIGRATIONS_DIR
from tests.support.pg_cluster import BIN

SCHEMA_FILE = MIGRATIONS_DIR.parent / "schema.sql"
HEADER = (
    "-- The schema that cities/db/migrations/ builds, as pg_dump --schema-only prints it\n"
    "-- (without its settings and its own -- comments). Generated: `make schema`; checked by\n"
    "-- tests/db/test_schema.py. Never edit it by hand, and never apply it: add a migration.\n"
)
# Lines that say how pg_dump ran, not what the schema is (and change between its versions).
_NOISE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config|\\restrict|\\unrestrict)")


def dump(url: str, bindir: Path = BIN) -> str:
    """The database's schema as pg_dump prints it, without its noise and with one blank line
    between statements."""
    out = subprocess.run(
        [str(bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", url],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    lines = [line for line in out.splitlines() if not _NOISE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return HEADER + "\n" + text + "\n"


def main() -> int:
    """Write SCHEMA_FILE from a throwaway server migrated by every shipped migration."""
    from cities.db.migrate import migrate
    from cities.ops import embedded

    # The server and its folder go when this process exits (cleanup_mode="delete").
    url = embedded.start(Path(tempfile.mkdtemp(prefix="cities-schema-")) / "data", "delete")
    migrate(url)
    SCHEMA_FILE.write_text(dump(url))
    print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Local commands: `python -m cities migrate` and `python -m cities serve`.

Both use DATABASE_URL (or MIGRATIONS_DATABASE_URL for migrate) when set, from the environment
or `.env`; otherwise they start the embedded PostgreSQL kept in `.data/pgdata`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from . import config
from .migrate import migrate
from .request_log import masked_error, remember_secrets


def _configure(command: str) -> tuple[dict, str]:
    """Settings plus a description for humans: the configured database, else the embedded one."""
    config.load_dotenv_if_present()
    settings = config.from_env()
    remember_secrets(settings["DATABASE_URL"], settings["MIGRATIONS_DATABASE_URL"])
    if settings["DATABASE_URL"] or (command == "migrate" and config.migrations_url(settings)):
        return settings, "the database from DATABASE_URL / MIGRATIONS_DATABASE_URL"
    from . import embedded

    settings["DATABASE_URL"] = embedded.start()
    return settings, f"embedded PostgreSQL 16 (data in {embedded.DEFAULT_DATA_DIR}/)"


def _migrate(settings: dict) -> dict:
    try:
        return migrate(
            config.migrations_url(settings),
            connect_timeout=settings["DB_CONNECT_TIMEOUT"],
            connect_budget=settings["DB_CONNECT_BUDGET"],
        )
    except Exception as exc:  # libpq repeats a malformed URL: never print it unmasked
        sys.exit(f"migration failed: {masked_error(exc, config.migrations_url(settings))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cities")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending schema migrations")
    serve = commands.add_parser("serve", help="migrate, then serve the API locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    settings, described = _configure(args.command)
    print(f"database: {described}", flush=True)
    result = _migrate(settings)
    print(f"migrations: applied {result['applied'] or 'nothing new'}, "
          f"schema version {result['version']}", flush=True)
    if args.command == "serve":
        from . import create_app

        # Stop cleanly on SIGTERM too, so the embedded PostgreSQL is shut down with us.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        app = create_app({"DATABASE_URL": settings["DATABASE_URL"]})
        print(f"serving the API at http://{args.host}:{args.port}  (Ctrl-C stops)", flush=True)
        app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()

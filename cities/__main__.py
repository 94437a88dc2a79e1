"""Local commands: `python -m cities migrate` and `python -m cities serve`.

Both use DATABASE_URL (or MIGRATIONS_DATABASE_URL for migrate) when set, from the environment
or `.env`; otherwise they start the embedded PostgreSQL kept in `.data/pgdata`. With `--reload`
(as `make run` does) this process keeps the database and restarts a child serving the code
whenever a source file changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys

from cities.db.migrate import migrate
from cities.ops import config
from cities.ops.secrets_mask import masked_error, remember_connection_strings


def _configure(command: str) -> tuple[dict, str]:
    """Settings plus a description for humans: the configured database, else the embedded one."""
    config.load_dotenv_if_present()
    settings = config.from_env()
    remember_connection_strings(settings["DATABASE_URL"], settings["MIGRATIONS_DATABASE_URL"])
    if settings["DATABASE_URL"] or (command == "migrate" and config.migrations_url(settings)):
        return settings, "the database from DATABASE_URL / MIGRATIONS_DATABASE_URL"
    from cities.ops import embedded

    settings["DATABASE_URL"] = embedded.start()
    return settings, (f"embedded PostgreSQL {embedded.server_major()} "
                      f"(data in {embedded.DEFAULT_DATA_DIR}/)")


def _check_port_free(host: str, port: int) -> None:
    """Exit with a clear message when host:port cannot be bound, before anything is started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        sys.exit(f"cannot serve on {host}: {exc.strerror}")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as exc:
            sys.exit(f"cannot serve on {host}:{port}: {exc.strerror}. Is another server "
                     f"running there? Pick another port, e.g. `make run PORT={port + 1}`.")


def _migrate(settings: dict) -> dict:
    url = config.migrations_url(settings)
    try:
        return migrate(
            url,
            connect_timeout=settings["DB_CONNECT_TIMEOUT"],
            connect_budget=settings["DB_CONNECT_BUDGET"],
        )
    except Exception as exc:  # libpq repeats a malformed URL: never print it unmasked
        sys.exit(f"migration failed: {masked_error(exc, url)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cities")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending schema migrations")
    serve = commands.add_parser("serve", help="migrate, then serve the API locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--reload", action="store_true",
                       help="restart the server when a source file changes (the database stays)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Stop cleanly on SIGTERM too (exit handlers run), so the embedded PostgreSQL stops with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    if os.environ.get("WERKZEUG_RUN_MAIN") == "true":  # the reloader's child: the parent did
        _serve(args, config.from_env()["DATABASE_URL"])  # the database and the migrations
        return
    if args.command == "serve":
        _check_port_free(args.host, args.port)
    settings, described = _configure(args.command)
    print(f"database: {described}", flush=True)
    result = _migrate(settings)
    print(f"migrations: applied {result['applied'] or 'nothing new'}, "
          f"schema version {result['version']}", flush=True)
    if args.command == "serve":
        # The reloader's children find the (possibly embedded) database here.
        os.environ["DATABASE_URL"] = settings["DATABASE_URL"]
        reloading = "; reloads on code changes" if args.reload else ""
        print(f"serving the API at http://{args.host}:{args.port}  (Ctrl-C stops{reloading})",
              flush=True)
        _serve(args, settings["DATABASE_URL"])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Werkzeug's access line: `127.0.0.1 - - [date] "GET /cities HTTP/1.1" 200 -`.
_ACCESS_LINE = re.compile(r'\] "[^"]*" \d{3} ')


class _ServerLog(logging.Filter):
    """Werkzeug's lines under `make run`: its access line is dropped (the app already logs each
    request as one JSON line), and its colour codes are kept for a terminal only."""

    def __init__(self, colours: bool) -> None:
        super().__init__()
        self.colours = colours

    def filter(self, record: logging.LogRecord) -> bool:
        plain = _ANSI.sub("", record.getMessage())
        if _ACCESS_LINE.search(plain):
            return False
        if not self.colours:
            record.msg, record.args = plain, ()
        return True


def _serve(args: argparse.Namespace, database_url: str) -> None:
    from cities import create_app

    logging.getLogger("werkzeug").addFilter(_ServerLog(colours=sys.stderr.isatty()))

    app = create_app({"DATABASE_URL": database_url})
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=args.reload)


if __name__ == "__main__":
    main()

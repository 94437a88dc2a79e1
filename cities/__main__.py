"""Local commands: `python -m cities migrate` and `python -m cities serve`.

Both use DATABASE_URL (or MIGRATIONS_DATABASE_URL for migrate) when set, from the environment
or `.env`; otherwise they start the embedded PostgreSQL kept in `.data/pgdata`. With `--reload`
(as `make run` does) this process keeps the database and the listening socket, and restarts a
child serving the code whenever a source file changes. A child whose code fails to load (a typo
saved) leaves this process answering a 500 JSON error until the next save, then it tries again.

The app's own modules are imported lazily, inside functions, so that a broken one is reported in
one line by the child rather than as a traceback from this module's imports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path


def _configure(command: str) -> tuple[dict, str]:
    """Settings plus a description for humans: the configured database, else the embedded one."""
    from cities.ops import config
    from cities.ops.secrets_mask import remember_connection_strings

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
    from cities.db.migrate import migrate
    from cities.ops import config
    from cities.ops.secrets_mask import masked_error

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
        # The parent stops it with one SIGINT, which a run started in the background (SIGINT
        # ignored, inherited) would otherwise never see.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _serve(args, os.environ["DATABASE_URL"])  # the database and the migrations
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
        if args.reload:
            sys.exit(_reload_forever(args.host, args.port, _package_sources))
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
    logging.getLogger("werkzeug").addFilter(_ServerLog(colours=sys.stderr.isatty()))
    try:
        from cities import create_app

        app = create_app({"DATABASE_URL": database_url})
    except Exception as exc:  # any error of the edited code: say where, in one line
        print(f"the code failed to load: {_where(exc)}", file=sys.stderr, flush=True)
        sys.exit(FAILED_TO_LOAD)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=args.reload)


# --- --reload: this process keeps the socket and the database; children serve the code -----

RELOAD = 3  # werkzeug's reloader exits its child with 3 when a watched file changed
FAILED_TO_LOAD = 4


def _where(exc: BaseException) -> str:
    """`file:line: Type: message` of an error in the app's code, without the stack above it."""
    if isinstance(exc, SyntaxError):
        return f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{frame.filename}:{frame.lineno}: {type(exc).__name__}: {exc}"


def _package_sources() -> dict[str, int]:
    """Modification times of the package's Python files: what a save changes."""
    package = Path(__file__).resolve().parent
    return {str(path): path.stat().st_mtime_ns for path in package.rglob("*.py")}


_CODE_FAILED = json.dumps({"error": {  # the shape of cities/http/errors.py, which may be broken
    "code": "internal_error",
    "message": "The server's code failed to load after an edit; the terminal running it says "
               "where. It serves again after the next save that loads.",
}}).encode()


def _code_failed_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    start_response("500 INTERNAL SERVER ERROR", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(_CODE_FAILED))),
        ("Cache-Control", "no-store"),
    ])
    return [_CODE_FAILED]


def _reload_forever(host: str, port: int, sources: Callable[[], dict[str, int]]) -> int:
    """Serve through children until one stops for good; its exit code.

    werkzeug's own loop exits as soon as a child fails, taking the database with it. Here the
    socket is bound once and handed to each child (werkzeug's WERKZEUG_SERVER_FD), so requests
    made during a restart wait rather than fail, and a child that cannot load is followed by
    this process answering a 500 JSON error until a source file changes.
    """
    from werkzeug.serving import make_server

    server = make_server(host, port, _code_failed_app, threaded=True)
    server.socket.set_inheritable(True)
    env = {**os.environ, "WERKZEUG_RUN_MAIN": "true", "WERKZEUG_SERVER_FD": str(server.fileno())}
    while True:
        loaded = sources()
        try:
            code = _run_child(env)
        except KeyboardInterrupt:  # Ctrl-C: the child stopped too
            return 0
        if code == RELOAD:
            continue
        if code <= 0:  # a clean stop, or killed by a signal
            return 0 if code == 0 else 128 - code
        print("answering 500 until the next save (the database keeps running)",
              file=sys.stderr, flush=True)
        _answer_until_changed(host, port, server.fileno(), loaded, sources)


def _run_child(env: dict[str, str]) -> int:
    """One `python -m cities serve ...` child on the shared socket; stopped with this process.

    The child has its own process group, so a Ctrl-C in the terminal reaches this process only
    and the child gets exactly one SIGINT from here (werkzeug stops quietly on one; a SIGTERM,
    or a second signal during its shutdown, prints a traceback).
    """
    child = subprocess.Popen([sys.executable, "-m", "cities", *sys.argv[1:]],  # noqa: S603
                             env=env, close_fds=False, process_group=0)
    try:
        return child.wait()
    finally:
        if child.poll() is None:  # SIGTERM or Ctrl-C reached this process
            # A second signal must not cut this wait short (make sends its children a SIGTERM
            # of its own): this process would exit, the database with it, and leave the child.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def _answer_until_changed(host: str, port: int, fd: int, loaded: dict[str, int],
                          sources: Callable[[], dict[str, int]]) -> None:
    """Answer the 500 on the shared socket until a source file changes. The server is made on
    a duplicate of the socket: werkzeug closes a server's socket when it stops serving."""
    from werkzeug.serving import make_server

    server = make_server(host, port, _code_failed_app, threaded=True, fd=fd)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True)
    thread.start()
    try:
        while sources() == loaded:
            threading.Event().wait(0.5)
    except KeyboardInterrupt:
        sys.exit(0)
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    main()

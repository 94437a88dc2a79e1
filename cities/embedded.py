"""A real PostgreSQL 16 for local runs, from the `pgserver` wheel: no server to install.

Used only when no DATABASE_URL is given (a development dependency; never in the Lambda zip).
The data lives in a git-ignored folder and survives restarts; the server stops with the process.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(".data") / "pgdata"

_servers: list[Any] = []  # keep handles alive: the server stops when its last handle goes


def start(data_dir: Path = DEFAULT_DATA_DIR, cleanup_mode: str | None = "stop") -> str:
    """Start (or reuse) the embedded server for `data_dir`; returns its connection URL."""
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it narrates every pg_ctl call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir.resolve(), cleanup_mode=cleanup_mode)
    _servers.append(server)
    return server.get_uri()

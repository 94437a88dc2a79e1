"""Test servers run in a thread that stops as soon as it is asked to.

`serve_forever` looks at its shutdown flag every `poll_interval`, half a second by default, so each
stop of a stand-in server (an issuer, a ResponseURL, a local API) waited up to that long: about
30 s of `make test` over the tests that start one. Polling every 10 ms costs nothing measurable.
"""

from __future__ import annotations

import threading
from socketserver import BaseServer

POLL_S = 0.01


def serve_in_thread(server: BaseServer) -> threading.Thread:
    """Start `server` on a daemon thread; `server.shutdown()` then returns within POLL_S."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_S},
                              daemon=True)
    thread.start()
    return thread

"""A userspace TCP proxy that adds a round-trip time, and counts the round trips it carries.

The latency section (bench/latency.py) puts it between the API and a local PostgreSQL or
PgBouncer to stand for the network between Lambda and Neon: every chunk waits half the RTT in
each direction (in order), and a connection's first bytes wait one RTT more, the TCP handshake
they could not have been sent before. A round trip is the handshake plus each client flight the
server answers: counted when server bytes follow client bytes on a connection while the client
is still connected, so the server's answer to a closing client (TLS close_notify after libpq's
Terminate) is not one: nobody waits for it.

The proxy cannot deliver exactly on time (thread wake-ups, the machine's load): it records how
late each delivery went out, so the latency section can state the RTT it really emulated.

Run in a process of its own (`python -m bench.delay_proxy`) so the API's own CPU never holds up
a delivery. It reads commands on stdin, one a line, and answers one line on stdout:

    listen UPSTREAM_PORT RTT_MS  ->  the new listening port on 127.0.0.1
    counts                       ->  JSON: per listening port, connections, round trips, and
                                     the median lateness of its deliveries (microseconds)
"""

from __future__ import annotations

import ctypes
import json
import queue
import socket
import statistics
import sys
import threading
import time
from typing import Any

CHUNK = 65536


class Listener:
    """One port: everything accepted there goes to `upstream` with `rtt` seconds added."""

    def __init__(self, upstream: int, rtt: float) -> None:
        self.upstream, self.rtt = upstream, rtt
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = self.round_trips = 0
        self.lateness: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                self.round_trips += 1  # the TCP handshake
            Link(self, client, server, time.monotonic())

    def counts(self) -> dict[str, Any]:
        with self.lock:
            late = self.lateness[-5000:]
            return {"connections": self.connections, "round_trips": self.round_trips,
                    "late_us": round(statistics.median(late) * 1e6, 1) if late else 0.0}


class Link:
    """One proxied connection: a reader and a delayed writer per direction."""

    def __init__(self, listener: Listener, client: socket.socket, server: socket.socket,
                 accepted: float) -> None:
        self.listener = listener
        self.sockets, self.open_writers = (client, server), 2
        self.last = "server"  # a connection starts with the client's first flight
        self.client_closed = False
        # The client's first bytes go out once its handshake would have completed (one RTT).
        self.not_before = accepted + listener.rtt
        for source, sink, side in ((client, server, "client"), (server, client, "server")):
            pending: queue.Queue = queue.Queue()
            threading.Thread(target=self._read, args=(source, pending, side), daemon=True).start()
            threading.Thread(target=self._write, args=(sink, pending), daemon=True).start()

    def _read(self, source: socket.socket, pending: queue.Queue, side: str) -> None:
        half = self.listener.rtt / 2
        while True:
            try:
                data = source.recv(CHUNK)
            except OSError:
                data = b""
            now = time.monotonic()
            with self.listener.lock:
                if not data:
                    self.client_closed |= side == "client"
                elif side == "server" and self.last == "client" and not self.client_closed:
                    self.listener.round_trips += 1
                if data:
                    self.last = side
            due = (max(now, self.not_before) if side == "client" else now) + half
            pending.put((due, data))
            if not data:
                return

    def _write(self, sink: socket.socket, pending: queue.Queue) -> None:
        while True:
            due, data = pending.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if self.listener.rtt:
                with self.listener.lock:
                    self.listener.lateness.append(time.monotonic() - due)
            try:
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    break
                sink.sendall(data)
            except OSError:
                break
        with self.listener.lock:
            self.open_writers -= 1
            done = not self.open_writers
        if done:
            for s in self.sockets:
                s.close()


def main() -> None:
    # Sleeps end within microseconds, not Linux's default 50 us timer slack (threads inherit it).
    ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns
    listeners: dict[int, Listener] = {}
    for line in sys.stdin:
        command, *args = line.split()
        if command == "listen":
            listener = Listener(int(args[0]), float(args[1]) / 1000)
            listeners[listener.port] = listener
            print(listener.port, flush=True)
        elif command == "counts":
            print(json.dumps({port: lst.counts() for port, lst in listeners.items()}), flush=True)


if __name__ == "__main__":
    main()

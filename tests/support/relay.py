"""A loopback TCP relay that keeps what each client sent first: how a connection was opened.

A PostgreSQL client opens TLS one of two ways, and only the wire tells them apart: the classic
negotiation sends the 8-byte SSLRequest and waits for the server's `S` (a round trip), direct
negotiation (`sslnegotiation=direct`, PostgreSQL 17+) sends its TLS ClientHello at once. The
relay forwards both directions unchanged and records each connection's first chunk.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

# The SSLRequest: length 8, then the request code 1234.5679 (PostgreSQL's protocol docs).
SSL_REQUEST = struct.pack("!II", 8, 80877103)
TLS_HANDSHAKE_RECORD = 0x16
CLIENT_HELLO = 0x01


def is_client_hello(opening: bytes) -> bool:
    """A TLS record of type handshake whose first message is a ClientHello."""
    return len(opening) > 5 and opening[0] == TLS_HANDSHAKE_RECORD and opening[5] == CLIENT_HELLO


class Relay:
    """Listens on 127.0.0.1 (a free port) and relays every connection to `upstream` there."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.openings: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:  # closed: the relay is done
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._link, args=(client, server), daemon=True).start()

    def _link(self, client: socket.socket, server: socket.socket) -> None:
        back = threading.Thread(target=self._pipe, args=(server, client, False), daemon=True)
        back.start()
        self._pipe(client, server, True)
        back.join()
        client.close()
        server.close()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        first = from_client
        try:
            while chunk := source.recv(65536):
                if first:
                    with self._lock:
                        self.openings.append(chunk)
                    first = False
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):  # either side hanging up ends the connection
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

"""Client instructions per verified TLS connect, by the size of the CA file libpq parses.

libpq builds a new TLS context on every connect and loads its whole `sslrootcert` each time, so
the CA file's size is paid per request. A throwaway SCRAM + TLS cluster (an SSL-capable
PostgreSQL, a CA made for the run) is reached with `sslmode=verify-full&channel_binding=require`
through `cities.db.connection.connect`, once trusting the shipped roots and once the system
bundle (each with the run's CA appended, so both verify the same server). Instructions are
counted by callgrind: the count of N connects minus that of none, divided by N. Unlike time, it
does not move with the machine's load.

`python -m bench.tls_connect worker URL N` is the measured process.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench import callgrind

ROOT = Path(__file__).resolve().parent.parent
CONNECTS = 10


def worker(url: str, count: int) -> None:
    from cities.db.connection import connect

    for _ in range(count):
        connect(url, 5).close()


def instructions(url: str, count: int, valgrind: str) -> int:
    return callgrind.collected(
        valgrind, [sys.executable, "-m", "bench.tls_connect", "worker", url, str(count)], ROOT)


def per_connect(url: str, valgrind: str) -> int:
    return (instructions(url, CONNECTS, valgrind) - instructions(url, 0, valgrind)) // CONNECTS


def bench_tls_connect() -> dict[str, object] | None:
    """Millions of client instructions per connect for each CA file; None without valgrind or an
    SSL-capable PostgreSQL."""
    import trustme

    from cities.db.connection import ROOT_CERTS, system_ca_bundle
    from tests.support.pg_cluster import Cluster, ssl_capable_bindir

    valgrind, bindir, bundle = shutil.which("valgrind"), ssl_capable_bindir(), system_ca_bundle()
    if not (valgrind and bindir and bundle):
        return None
    root = Path(tempfile.mkdtemp(prefix="cities-tls-"))
    try:
        ca = trustme.CA()
        cluster = Cluster(root, bindir=bindir, password="bench-tls")  # noqa: S106 - throwaway
        cluster.serve_tls(ca)
        cluster.hba("local all all trust", "hostssl all all 127.0.0.1/32 scram-sha-256")
        cluster.start()
        try:
            files = {"shipped roots": ROOT_CERTS, "system bundle": bundle}
            result: dict[str, object] = {"connects": CONNECTS, "bundle": bundle}
            for name, path in files.items():
                ca_file = root / f"{name.replace(' ', '-')}.pem"
                ca_file.write_bytes(Path(path).read_bytes() + b"\n" + ca.cert_pem.bytes())
                certificates = ca_file.read_text().count("BEGIN CERTIFICATE")
                url = cluster.url(sslmode="verify-full", channel_binding="require",
                                  sslrootcert=str(ca_file)).replace("127.0.0.1", "localhost")
                result[name] = {"certificates": certificates,
                                "instructions_m": round(per_connect(url, valgrind) / 1e6, 1)}
            return result
        finally:
            cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    worker(sys.argv[2], int(sys.argv[3]))

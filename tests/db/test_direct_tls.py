"""Direct TLS negotiation (`sslnegotiation=direct`) working, against a real PostgreSQL 17 with TLS.

Its failures (PostgreSQL 15, PgBouncer 1.18: a 503 at once, saying what to change) are in
test_faults.py. Here the server is Debian trixie's PostgreSQL 17 (tests/support/pg17.py), with
the settings docs/deploy.md recommends for Neon: `sslmode=verify-full` against the test's own CA,
SCRAM bound to the channel, and the ClientHello sent at once. A relay in front of the server
shows how each connection opened, since only the wire tells the two negotiations apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from cities.db import store
from cities.db.migrate import migrate
from tests.support import pg17
from tests.support.pg_cluster import Cluster
from tests.support.relay import SSL_REQUEST, Relay, is_client_hello
from tests.support.rie import Unavailable

TLS_ONLY_SCRAM = ("local all all trust", "hostssl all all 127.0.0.1/32 scram-sha-256",
                  "host all all 127.0.0.1/32 reject")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[Cluster, Path]]:
    """PostgreSQL 17 taking only TLS with SCRAM passwords, migrated; and its CA's file."""
    try:
        bindir = pg17.bindir()
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL 17 with TLS here (Debian trixie's, fetched): {exc}")
    root = tmp_path_factory.mktemp("pg17")
    ca = trustme.CA()
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cluster = Cluster(root, bindir=bindir, password="direct-tls")
    cluster.serve_tls(ca)
    cluster.hba(*TLS_ONLY_SCRAM)
    cluster.start()
    try:
        migrate(cluster.url(sslmode="require"))
        assert int(cluster.admin("SHOW server_version_num")[0][0]) >= 170000
        yield cluster, ca_file
    finally:
        cluster.stop("immediate")


def url_through(relay: Relay, cluster: Cluster, ca_file: Path, negotiation: str) -> str:
    """The recommended URL (docs/deploy.md), to the relay; the certificate names 127.0.0.1.
    No GSSAPI encryption: with a Kerberos ticket at hand libpq would ask for it first."""
    return cluster.url(sslmode="verify-full", sslrootcert=str(ca_file),
                       channel_binding="require", sslnegotiation=negotiation,
                       gssencmode="disable").replace(f":{cluster.port}/", f":{relay.port}/")


def test_direct_negotiation_serves_health_and_a_get_over_tls_from_the_first_byte(
    server, client_for, monkeypatch
):
    """Every connection the API opens starts with its TLS ClientHello, not the SSLRequest whose
    answer costs a round trip, and the API's own session is TLS 1.3 as the server sees it."""
    cluster, ca_file = server
    with Relay(cluster.port) as relay:
        client = client_for(DATABASE_URL=url_through(relay, cluster, ca_file, "direct"))
        assert client.get("/health").status == 200
        created = client.post("/cities", {"name": "Directville", "state": "Hello"})
        assert created.status == 201

        sessions = []
        real_get = store.get

        def get_seen_by_the_server(conn, resource, item_id):
            with conn.cursor() as cur:
                cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                sessions.append(cur.fetchone())
            return real_get(conn, resource, item_id)

        monkeypatch.setattr(store, "get", get_seen_by_the_server)
        reply = client.get(f"/cities/{created.json['id']}")
    assert reply.status == 200
    assert (reply.json["name"], reply.json["state"]) == ("Directville", "Hello")
    assert sessions == [(True, "TLSv1.3")]
    assert len(relay.openings) == 3, "a connection per request: health, the write, the read"
    for opening in relay.openings:
        assert is_client_hello(opening), opening[:8]
        assert not opening.startswith(SSL_REQUEST)


def test_the_classic_negotiation_to_the_same_server_opens_with_an_sslrequest(
    server, client_for
):
    """What the relay sees without `sslnegotiation=direct`: the 8-byte SSLRequest alone, then
    a wait for the server's answer; so the test above can tell the two apart."""
    cluster, ca_file = server
    with Relay(cluster.port) as relay:
        client = client_for(DATABASE_URL=url_through(relay, cluster, ca_file, "postgres"))
        assert client.get("/health").status == 200
    assert relay.openings == [SSL_REQUEST]

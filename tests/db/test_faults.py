"""Database faults a scale-to-zero host produces daily, reproduced on a real PostgreSQL:
a server that goes away and comes back, one that is still waking up, a backend killed
mid-request, a runaway statement, and TLS in both `require` and `verify-full` modes."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

import psycopg2
import pytest
import trustme

from cities.db import connection as db
from cities.db import store
from cities.db.migrate import migrate
from tests.conftest import open_connections
from tests.support.pg_cluster import Cluster, migrated_cluster, ssl_capable_bindir
from tests.support.pgbouncer import PgBouncer, pgbouncer_binary


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A migrated cluster this module may stop and start at will."""
    with migrated_cluster(tmp_path_factory.mktemp("faults")) as cluster:
        yield cluster


@pytest.fixture
def running(cluster):
    """The cluster, guaranteed up when the test starts (and restarted if a test left it down)."""
    try:
        psycopg2.connect(cluster.url(), connect_timeout=2).close()
    except psycopg2.OperationalError:
        cluster.start()
    return cluster


def test_database_down_is_a_quick_503_and_the_next_request_after_it_returns_succeeds(
    running, client_for
):
    client = client_for(DATABASE_URL=running.url(), DB_CONNECT_BUDGET=1)
    assert client.get("/cities").status == 200

    running.stop()
    started = time.monotonic()
    reply = client.get("/cities")
    elapsed = time.monotonic() - started
    assert reply.status == 503
    assert reply.error_code == "service_unavailable"
    assert reply.header("Retry-After")
    assert elapsed < 3, "a down database must not hold the request past the connect budget"

    running.start()
    assert client.get("/cities").status == 200  # same app object: no restart needed


def test_connecting_retries_while_the_database_wakes_up(running, client_for, caplog):
    client = client_for(DATABASE_URL=running.url(), DB_CONNECT_BUDGET=20)
    running.stop()
    waker = threading.Timer(1.0, running.start)
    waker.start()
    try:
        started = time.monotonic()
        reply = client.post("/cities", {"name": "Sleepy", "state": "Hollow"})
        elapsed = time.monotonic() - started
    finally:
        waker.join()
    assert reply.status == 201, reply
    assert elapsed >= 0.5
    assert "retrying" in caplog.text


def test_unknown_database_fails_at_once_without_retrying(running, client_for):
    client = client_for(DATABASE_URL=running.url("no_such_db"), DB_CONNECT_BUDGET=30)
    started = time.monotonic()
    assert client.get("/cities").status == 503
    assert time.monotonic() - started < 30 / 2, "retried for the connect budget"


def test_a_backend_killed_mid_request_is_a_503_and_nothing_is_left_open(
    running, client_for, monkeypatch
):
    url = running.url()
    client = client_for(DATABASE_URL=url)

    def slow_get(conn, *_):
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(30)")

    def kill_soon() -> None:
        time.sleep(0.5)
        admin = psycopg2.connect(url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'cities'")
        admin.close()

    monkeypatch.setattr(store, "get", slow_get)
    killer = threading.Thread(target=kill_soon)
    killer.start()
    reply = client.get("/cities/1")
    killer.join()
    assert reply.status == 503
    assert open_connections(url) == 0
    monkeypatch.undo()
    assert client.get("/cities").status == 200


def test_a_statement_past_the_timeout_is_cancelled_as_503(running, client_for, monkeypatch):
    client = client_for(DATABASE_URL=running.url(), DB_STATEMENT_TIMEOUT_MS=200)

    def runaway(conn, *_):
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(10)")

    monkeypatch.setattr(store, "get", runaway)
    started = time.monotonic()
    reply = client.get("/cities/1")
    assert reply.status == 503
    assert time.monotonic() - started < 10 / 2, "the statement ran on past its timeout"


def test_the_statement_timeout_is_set_for_the_request_only(running, client_for, monkeypatch):
    seen = {}

    def show(conn, *_):
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            seen["inside"] = cur.fetchone()[0]

    monkeypatch.setattr(store, "get", show)
    client_for(DATABASE_URL=running.url(), DB_STATEMENT_TIMEOUT_MS=1234).get("/cities/1")
    assert seen["inside"] == "1234ms"


# --- TLS --------------------------------------------------------------------------------------


def tls_cluster(root: Path, *hba: str, password: str | None = None) -> tuple[Cluster, Path]:
    """A started cluster serving TLS with a certificate from a CA made for the test, migrated;
    skips where no SSL-capable PostgreSQL is installed."""
    bindir = ssl_capable_bindir()
    if bindir is None:
        pytest.skip("no SSL-capable PostgreSQL binaries here (the embedded ones are built without)")
    ca = trustme.CA()
    cluster = Cluster(root, bindir=bindir, password=password)
    cluster.serve_tls(ca)
    cluster.hba("local all all trust", *hba)
    cluster.start()
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    migrate(cluster.url(sslmode="require"))
    return cluster, ca_file


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A cluster that only accepts TLS."""
    cluster, ca_file = tls_cluster(
        tmp_path_factory.mktemp("tls"),
        "hostssl all all 127.0.0.1/32 trust", "host all all 127.0.0.1/32 reject",
    )
    yield cluster, ca_file
    cluster.stop("immediate")


def tls_url(cluster: Cluster, **params: str) -> str:
    return cluster.url(**params).replace("127.0.0.1", "localhost")


def test_tls_sslmode_require(tls, client_for):
    cluster, _ = tls
    client = client_for(DATABASE_URL=tls_url(cluster, sslmode="require"))
    assert client.post("/cities", {"name": "Secure", "state": "TLS"}).status == 201


def test_tls_verify_full_with_an_explicit_root_certificate(tls, client_for):
    cluster, ca_file = tls
    url = tls_url(cluster, sslmode="verify-full", sslrootcert=str(ca_file))
    assert client_for(DATABASE_URL=url).get("/health").status == 200


def test_tls_verify_full_trusts_only_the_shipped_roots_by_default(tls, client_for, monkeypatch,
                                                                  caplog):
    """With no `sslrootcert`, the documented hosts' roots are the only ones trusted: a server
    whose certificate comes from any other CA is refused, at once (no retry can fix it)."""
    cluster, _ = tls
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    url = tls_url(cluster, sslmode="verify-full")
    assert db.ssl_root_cert(url) == db.ROOT_CERTS
    started = time.monotonic()
    assert client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=30).get("/health").status == 503
    assert time.monotonic() - started < 30 / 2, "a certificate failure is not worth retrying"
    assert "certificate verify failed" in caplog.text


def test_tls_verify_full_accepts_a_server_of_the_shipped_roots(tls, client_for, monkeypatch):
    cluster, ca_file = tls
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    monkeypatch.setattr(db, "ROOT_CERTS", str(ca_file))  # as the ISRG roots trust Neon
    url = tls_url(cluster, sslmode="verify-full")
    assert client_for(DATABASE_URL=url).get("/health").status == 200


def test_tls_verify_full_trusts_the_ca_pgsslrootcert_names(tls, client_for, monkeypatch):
    cluster, ca_file = tls
    monkeypatch.setenv("PGSSLROOTCERT", str(ca_file))
    url = tls_url(cluster, sslmode="verify-full")
    assert db.ssl_root_cert(url) is None  # libpq reads the variable itself
    assert client_for(DATABASE_URL=url).get("/health").status == 200


def test_sslrootcert_system_trusts_the_system_bundle_that_exists(tls, client_for, monkeypatch,
                                                                 tmp_path):
    """The explicit fallback: `sslrootcert=system` is the first system bundle found (the wheel's
    OpenSSL would look under its build host's paths). Here the "system" holds the test's CA."""
    cluster, ca_file = tls
    monkeypatch.setattr(db, "CA_BUNDLES", (str(tmp_path / "missing.pem"), str(ca_file)))
    url = tls_url(cluster, sslmode="verify-full", sslrootcert="system")
    assert db.ssl_root_cert(url) == str(ca_file)
    assert client_for(DATABASE_URL=url).get("/health").status == 200


def test_tls_verify_full_refuses_an_untrusted_server_at_once(tls, client_for, monkeypatch,
                                                             tmp_path):
    cluster, _ = tls
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    url = tls_url(cluster, sslmode="verify-full", sslrootcert=str(other_ca))
    started = time.monotonic()
    reply = client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=30).get("/health")
    assert reply.status == 503
    assert time.monotonic() - started < 30 / 2, "a certificate failure is not worth retrying"


def test_tls_is_required_by_the_server(tls, client_for):
    cluster, _ = tls
    reply = client_for(DATABASE_URL=tls_url(cluster, sslmode="disable")).get("/health")
    assert reply.status == 503


def test_a_full_run_on_a_password_protected_server_logs_no_secret(tmp_path, client_for, caplog):
    """CRUD, a wrong password, and the server going away, over TCP with SCRAM authentication;
    then every captured log record, tracebacks included, is searched for the password."""
    secret = "S3cret-Passw0rd-For-Logs"
    cluster = Cluster(tmp_path, password=secret)
    cluster.start()
    try:
        migrate(cluster.url())
        caplog.set_level(logging.DEBUG)
        client = client_for(DATABASE_URL=cluster.url())
        created = client.post("/cities", {"name": "Vault", "state": "Secure"})
        assert created.status == 201
        assert client.patch(f"/cities/{created.json['id']}", {"state": "Safe"}).status == 200
        assert client.get("/cities").status == 200
        wrong = client_for(DATABASE_URL=cluster.url().replace(secret, secret[::-1]))
        assert wrong.get("/cities").status == 503
        cluster.stop()
        assert client.get("/health").status == 503
    finally:
        with contextlib.suppress(RuntimeError):
            cluster.stop("immediate")
    rendered = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert "cannot connect to the database" in rendered
    assert secret not in rendered and secret[::-1] not in rendered


# --- TLS with SCRAM, as Neon wants it -------------------------------------------------------


@pytest.fixture(scope="module")
def tls_scram(tmp_path_factory):
    """A TLS cluster with SCRAM passwords: what Neon's endpoints look like to a client. Plain TCP
    is allowed here, so that refusing it is the client's doing (channel_binding)."""
    cluster, ca_file = tls_cluster(
        tmp_path_factory.mktemp("tls-scram"),
        "hostssl all all 127.0.0.1/32 scram-sha-256",
        "hostnossl all all 127.0.0.1/32 scram-sha-256",
        password="scram-over-tls",
    )
    yield cluster, ca_file
    cluster.stop("immediate")


def test_the_recommended_tls_settings_verify_the_server_and_bind_scram_to_the_channel(
    tls_scram, client_for, monkeypatch
):
    """`sslmode=verify-full&channel_binding=require` (docs/deploy.md): SCRAM-SHA-256-PLUS,
    so a man in the middle holding some other valid certificate cannot relay the login."""
    cluster, ca_file = tls_scram
    monkeypatch.setattr(db, "ROOT_CERTS", str(ca_file))  # as the shipped roots trust Neon
    url = tls_url(cluster, sslmode="verify-full", channel_binding="require")
    client = client_for(DATABASE_URL=url)
    assert client.post("/cities", {"name": "Bound", "state": "Channel"}).status == 201
    conn = db.connect(url, 3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone()[0] is True
        assert conn.info.ssl_in_use
    finally:
        conn.close()


@pytest.mark.parametrize("why", ["no TLS", "no SCRAM"])
def test_channel_binding_refuses_at_once_a_login_it_cannot_bind(tls_scram, tls, client_for, why):
    """Without TLS there is no channel to bind; a server (or a man in the middle) that lets the
    client in without SCRAM proves nothing. Either way: refused, and not worth a retry."""
    if why == "no TLS":
        url = tls_url(tls_scram[0], sslmode="disable", channel_binding="require")
    else:  # the `tls` cluster trusts every login
        url = tls_url(tls[0], sslmode="require", channel_binding="require")
    started = time.monotonic()
    assert client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=30).get("/health").status == 503
    assert time.monotonic() - started < 30 / 2, "retried for the connect budget"


def assert_refused_at_once_as_unsupported(client, caplog) -> None:
    """A 503, one attempt (no retry was logged), and a log line that says what to change."""
    caplog.set_level(logging.INFO, logger="cities")
    reply = client.get("/health")
    assert reply.status == 503
    assert reply.error_code == "service_unavailable"
    assert "retrying" not in caplog.text, "a server without direct TLS will not grow it"
    refusals = [r for r in caplog.records if "does not support direct TLS" in r.getMessage()]
    assert refusals and refusals[0].levelno == logging.ERROR
    assert "remove sslnegotiation=direct" in refusals[0].getMessage()


def test_direct_tls_negotiation_against_postgresql_before_17_fails_at_once_saying_why(
    tls_scram, client_for, caplog
):
    """This PostgreSQL 15 hangs up on a ClientHello sent before its SSLRequest; that is a
    setting to change, not a database waking up, so the connect budget is not spent on it."""
    cluster, ca_file = tls_scram
    version = int(cluster.admin("SHOW server_version_num")[0][0])
    if version >= 170000:  # the machine's PostgreSQL is the TLS one; 17+ takes direct TLS
        pytest.skip(f"the system PostgreSQL ({version}) is 17 or later: it accepts direct TLS "
                    "(tests/db/test_direct_tls.py)")
    url = tls_url(cluster, sslmode="verify-full", sslrootcert=str(ca_file),
                  sslnegotiation="direct")
    assert_refused_at_once_as_unsupported(client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=10),
                                          caplog)
    negotiated = tls_url(cluster, sslmode="verify-full", sslrootcert=str(ca_file),
                         sslnegotiation="postgres")
    assert client_for(DATABASE_URL=negotiated).get("/health").status == 200


@pytest.fixture
def tls_pooler(tls_scram, tmp_path):
    """PgBouncer 1.18 (Debian's) serving TLS to clients in front of the TLS cluster."""
    if pgbouncer_binary() is None:
        pytest.skip("pgbouncer is not installed")
    cluster, _ = tls_scram
    cert = trustme.CA().issue_cert("localhost")  # files where the pooler's system user may read
    cert_file = cluster.add_file("pooler.crt", cert.cert_chain_pems[0].bytes())
    key_file = cluster.add_file("pooler.key", cert.private_key_pem.bytes())
    pooler = PgBouncer(cluster, cluster.data.parent / tmp_path.name, client_tls_sslmode="require",
                       client_tls_cert_file=cert_file, client_tls_key_file=key_file)
    pooler.start()
    yield pooler
    pooler.stop()


def test_direct_tls_negotiation_against_pgbouncer_1_18_fails_at_once_saying_why(
    tls_pooler, client_for, caplog
):
    url = tls_pooler.url(sslmode="require", sslnegotiation="direct").replace(
        "127.0.0.1", "localhost")
    assert_refused_at_once_as_unsupported(client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=10),
                                          caplog)
    negotiated = url.replace("sslnegotiation=direct", "sslnegotiation=postgres")
    assert client_for(DATABASE_URL=negotiated).get("/health").status == 200


def test_a_hang_up_without_direct_negotiation_is_still_worth_a_retry():
    """The same EOF without `sslnegotiation=direct` can be a server restarting: transient."""
    eof = psycopg2.OperationalError("SSL SYSCALL error: EOF detected")
    assert not db.refused_direct_tls(eof, direct=False)
    assert not db.is_permanent(eof)
    assert db.refused_direct_tls(eof, direct=True)


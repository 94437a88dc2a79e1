"""The CA roots `verify-full` trusts by default: the documented hosts' roots, few, current, and
exactly those the file's header names (so an update cannot slip in an unreviewed root)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from cities.db import connection as db

ROOTS = Path(db.ROOT_CERTS)


def shipped() -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(ROOTS.read_bytes())


def test_the_shipped_roots_are_the_isrg_roots_neon_chains_to():
    names = [cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
             for cert in shipped()]
    assert names == ["ISRG Root X1", "ISRG Root X2"]


def test_the_header_names_each_shipped_root_by_its_fingerprint():
    header = ROOTS.read_text().split("-----BEGIN", 1)[0]
    stated = re.findall(r"SHA-256 ([0-9A-F:]{95})", header)
    actual = [cert.fingerprint(hashes.SHA256()).hex(":").upper() for cert in shipped()]
    assert stated == actual


def test_no_shipped_root_has_expired():
    now = datetime.datetime.now(datetime.UTC)
    for cert in shipped():
        assert cert.not_valid_after_utc > now, f"{cert.subject.rfc4514_string()} has expired"


@pytest.mark.parametrize("mode", ["verify-full", "verify-ca"])
def test_a_verifying_url_without_sslrootcert_trusts_the_shipped_roots(mode, monkeypatch):
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert db.ssl_root_cert(f"postgresql://u@db.example.com/d?sslmode={mode}") == db.ROOT_CERTS


def test_a_ca_the_user_names_is_left_to_libpq(monkeypatch):
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    url = "postgresql://u@db.example.com/d?sslmode=verify-full&sslrootcert=/etc/my-ca.pem"
    assert db.ssl_root_cert(url) is None
    monkeypatch.setenv("PGSSLROOTCERT", "/etc/my-ca.pem")
    assert db.ssl_root_cert("postgresql://u@db.example.com/d?sslmode=verify-full") is None


def test_sslrootcert_system_is_the_first_system_bundle_that_exists(tmp_path, monkeypatch):
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    url = "postgresql://u@db.example.com/d?sslmode=verify-full&sslrootcert=system"
    assert db.ssl_root_cert(url, (str(tmp_path / "missing.pem"), str(bundle))) == str(bundle)


def test_a_connection_that_does_not_verify_gets_no_ca_file(monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert db.ssl_root_cert("postgresql://u@db.example.com/d?sslmode=require") is None

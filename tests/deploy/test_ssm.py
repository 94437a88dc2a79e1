"""Secrets read from SSM Parameter Store at runtime (moto stands in for AWS; Postgres is real).

What matters on Lambda: the SecureString is decrypted, read once per container (not per
request), a missing parameter answers the first request with a JSON 503 and a log line naming
it (never an import crash, never open writes), and boto3 is not even imported unless used.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cities import create_app
from cities.ops import config, ssm
from tests.support.lambda_events import Client

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/cities/test"
SSM_ENV = {
    "DATABASE_URL_SSM_PARAMETER": f"{PREFIX}/database-url",
    "MIGRATIONS_DATABASE_URL_SSM_PARAMETER": f"{PREFIX}/migrations-database-url",
    "API_KEYS_SSM_PARAMETER": f"{PREFIX}/api-keys",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An in-process fake AWS account; counts the SSM reads the app makes."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ssm.clear_cache()
    calls: list[list[str]] = []
    real_client = ssm._client

    def counting_client() -> Any:
        client = real_client()

        def count(params: dict, **_: Any) -> None:
            calls.append(list(params["Names"]))

        client.meta.events.register("provide-client-params.ssm.GetParameters", count)
        return client

    monkeypatch.setattr(ssm, "_client", counting_client)
    with mock_aws():
        yield calls
    ssm.clear_cache()


class Clock:
    """ssm's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ssm, "_now", fake)
    return fake


def put_secure(name: str, value: str) -> None:
    boto3.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString")


def app_from_env(env: dict[str, str]) -> Any:
    """The app as Lambda builds it: configuration from the environment only."""
    settings = config.from_env(env)
    return create_app(settings)


def client_for(app: Any) -> Client:
    return Client.serving(app)


def test_secure_strings_are_decrypted_and_read_once_per_container(
    aws: list, database_url: str, sql: Any
) -> None:
    put_secure(f"{PREFIX}/database-url", database_url)
    put_secure(f"{PREFIX}/api-keys", "old-key, new-key")
    env = {k: v for k, v in SSM_ENV.items() if not k.startswith("MIGRATIONS")}
    app = app_from_env(env)
    assert app.config["DATABASE_URL"] is None and aws == []  # nothing read at import
    client = client_for(app)

    assert client.get("/health").status == 200  # the decrypted URL reaches the real database
    assert client.post("/cities", {"name": "Reno", "state": "Nevada"}).status == 401
    for key in ("old-key", "new-key"):
        reply = client.post("/cities", {"name": f"Reno {key}", "state": "Nevada"},
                            headers={"Authorization": f"Bearer {key}"})
        assert reply.status == 201, reply.text
    assert client.get("/cities").status == 200

    assert app.config["DATABASE_URL"] == database_url
    assert app.config["API_KEYS"] == ("old-key", "new-key")
    assert aws == [[f"{PREFIX}/api-keys", f"{PREFIX}/database-url"]]  # one call for both
    # A second app in the same container (same process) reuses the values: still one call.
    assert client_for(app_from_env(env)).get("/health").status == 200
    assert len(aws) == 1


def test_missing_parameter_answers_503_and_logs_it_then_heals(
    aws: list, database_url: str, sql: Any, caplog: pytest.LogCaptureFixture, clock: Any
) -> None:
    put_secure(f"{PREFIX}/database-url", database_url)  # api-keys is missing
    env = {k: v for k, v in SSM_ENV.items() if not k.startswith("MIGRATIONS")}
    app = app_from_env(env)  # building the app (the handler's import) does not fail
    client = client_for(app)

    with caplog.at_level(logging.ERROR, logger="cities"):
        reply = client.get("/health")
        write = client.post("/cities", {"name": "Reno", "state": "Nevada"})
    assert reply.status == 503 and reply.error_code == "service_unavailable"
    assert "SSM" in reply.json["error"]["message"]
    assert reply.header("Retry-After")
    assert database_url not in reply.text and "postgres" not in reply.text
    assert write.status == 503  # fails closed: no API keys read means no writes at all
    assert any(f"{PREFIX}/api-keys" in r.getMessage() for r in caplog.records), caplog.text
    assert not any(database_url in r.getMessage() for r in caplog.records)
    assert sql("SELECT count(*) FROM city") == [(0,)]

    put_secure(f"{PREFIX}/api-keys", "k")  # a fix heals the warm container, after the backoff
    assert client.get("/health").status == 503
    clock.advance(ssm.FAILURE_BACKOFF)
    assert client.get("/health").status == 200
    assert client.post("/cities", {"name": "Reno", "state": "Nevada"},
                       headers={"Authorization": "Bearer k"}).status == 201


def test_a_failed_read_is_not_retried_by_every_request_of_a_burst(
    aws: list, database_url: str, sql: Any, clock: Clock
) -> None:
    """A scale-out burst against a missing parameter makes one SSM call per backoff period,
    and every write of the burst is refused (no keys were read)."""
    put_secure(f"{PREFIX}/database-url", database_url)  # api-keys is missing
    client = client_for(app_from_env({k: v for k, v in SSM_ENV.items()
                                      if not k.startswith("MIGRATIONS")}))
    replies = [client.post("/cities", {"name": f"Reno {n}", "state": "NV"}) for n in range(20)]
    assert {reply.status for reply in replies} == {503}
    assert len(aws) == 1
    clock.advance(ssm.FAILURE_BACKOFF - 0.1)
    assert client.get("/cities").status == 503 and len(aws) == 1
    clock.advance(0.2)  # the backoff is over: the next request asks SSM again
    assert client.get("/cities").status == 503 and len(aws) == 2
    assert sql("SELECT count(*) FROM city") == [(0,)]


@pytest.mark.parametrize("value", [",", " , ", "\n"])
def test_a_key_parameter_holding_no_key_refuses_writes(
    aws: list, database_url: str, sql: Any, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    put_secure(f"{PREFIX}/database-url", database_url)
    put_secure(f"{PREFIX}/api-keys", value)
    client = client_for(app_from_env({k: v for k, v in SSM_ENV.items()
                                      if not k.startswith("MIGRATIONS")}))
    with caplog.at_level(logging.INFO, logger="cities"):
        write = client.post("/cities", {"name": "Reno", "state": "Nevada"})
        read = client.get("/cities")
    assert write.status == 503 and read.status == 200
    assert "API keys: API_KEYS_SSM_PARAMETER (/cities/test/api-keys) holds no key" in caplog.text
    assert any(r.levelno == logging.ERROR and f"{PREFIX}/api-keys" in r.getMessage()
               for r in caplog.records)
    assert sql("SELECT count(*) FROM city") == [(0,)]


def test_unreadable_parameters_answer_503_not_500(
    aws: list, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS errors (here: no credentials at all) are a configuration problem, reported as such."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    app = app_from_env({"DATABASE_URL_SSM_PARAMETER": f"{PREFIX}/database-url"})
    with caplog.at_level(logging.ERROR, logger="cities"):
        reply = client_for(app).get("/cities")
    assert reply.status == 503 and reply.error_code == "service_unavailable"
    assert "NoCredentialsError" in caplog.text


def test_migrate_function_reads_its_url_from_ssm(
    aws: list, empty_database_url: str, monkeypatch: pytest.MonkeyPatch, handler_module: Any
) -> None:
    put_secure(f"{PREFIX}/migrations-database-url", empty_database_url)
    app = app_from_env({k: v for k, v in SSM_ENV.items() if k.startswith("MIGRATIONS")})
    monkeypatch.setattr(handler_module, "app", app)
    result = handler_module.migrate({}, None)
    assert result["applied"]
    assert aws == [[f"{PREFIX}/migrations-database-url"]]


def test_migrate_function_fails_loudly_on_a_missing_parameter(
    aws: list, monkeypatch: pytest.MonkeyPatch, handler_module: Any
) -> None:
    """An exception fails the invocation, so `make deploy` fails with this message."""
    app = app_from_env({k: v for k, v in SSM_ENV.items() if k.startswith("MIGRATIONS")})
    monkeypatch.setattr(handler_module, "app", app)
    with pytest.raises(handler_module.MigrationFailed,
                       match=r"SsmConfigError: .*migrations-database-url"):
        handler_module.migrate({}, None)


def test_boto3_is_imported_only_when_a_parameter_is_read(tmp_path: Path) -> None:
    """Importing the handler, even with parameters named, costs no boto3 import and no call."""
    env = {**SSM_ENV, "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    code = "import sys, handler; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert "DATABASE_URL is not set" not in result.stderr  # it is named, to be read from SSM


@pytest.mark.parametrize("debug_logger", ["root", "botocore", "botocore.parsers"])
def test_debug_logging_never_records_a_decrypted_value(
    aws: list, database_url: str, sql: Any, caplog: pytest.LogCaptureFixture, debug_logger: str
) -> None:
    """Lambda's application log level DEBUG puts the root logger at DEBUG, where botocore logs
    every response body; an operator may also have turned botocore's own loggers up."""
    secret_key = "k3y-Decrypted-From-SSM"
    put_secure(f"{PREFIX}/database-url", database_url)
    put_secure(f"{PREFIX}/api-keys", secret_key)
    name = None if debug_logger == "root" else debug_logger
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=name)
    app = app_from_env({k: v for k, v in SSM_ENV.items() if not k.startswith("MIGRATIONS")})
    assert client_for(app).get("/health").status == 200  # the values were read and used
    assert aws  # through a real GetParameters call
    for record in caplog.records:
        message = record.getMessage()
        assert secret_key not in message and database_url not in message, record.name
    assert logging.getLogger(name).level == logging.DEBUG  # restored after the read


def test_keys_read_from_ssm_are_masked_whatever_their_characters(
    aws: list, database_url: str, sql: Any, caplog: pytest.LogCaptureFixture
) -> None:
    keys = ("ssm@k3y=", "U1NNLWtleS10d28==")  # base64 padding, an @: never taken for a URL
    put_secure(f"{PREFIX}/database-url", database_url)
    put_secure(f"{PREFIX}/api-keys", ",".join(keys))
    app = app_from_env({k: v for k, v in SSM_ENV.items() if not k.startswith("MIGRATIONS")})
    assert client_for(app).get("/health").status == 200
    with caplog.at_level(logging.INFO, logger="cities"):
        logging.getLogger("cities").error("keys %s and %s", *keys)
    assert caplog.records[-1].getMessage() == "keys *** and ***"

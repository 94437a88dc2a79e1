"""The Lambda module: importing it is cheap and safe; missing settings give JSON errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter with no configuration at all and every socket connect refused:
# importing the handler must work, and a request must come back as a JSON 503.
PROBE = r"""
import json, logging, socket, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)

def refuse(*args, **kwargs):
    raise AssertionError("network touched during import")

socket.socket.connect = refuse
socket.create_connection = refuse
import handler  # noqa: E402

from tests.lambda_events import http_api_event  # noqa: E402
reply = handler.api(http_api_event("GET", "/cities"), None)
print(json.dumps(reply))
"""


def test_import_needs_no_configuration_and_touches_no_network(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "API_KEYS"))}
    env.pop("MIGRATIONS_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,  # no .env here
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["statusCode"] == 503
    assert json.loads(reply["body"])["error"]["code"] == "service_unavailable"
    assert "DATABASE_URL is not set" in result.stderr


def test_handler_serves_through_serverless_wsgi(client, handler_module):
    reply = client.get("/health")
    assert reply.status == 200
    assert handler_module.app.name == "cities"


SECRET = "S3cretPw"
# URLs as they get pasted: libpq repeats each (or pieces of its password) in its error.
MALFORMED_URLS = {
    "leading-space": f" postgresql://app:{SECRET}@127.0.0.1:9/cities",
    "scheme-typo": f"postgresq://app:{SECRET}@127.0.0.1:9/cities",
    "unencoded-at": f"postgresql://app:S3c@retPw{SECRET}@127.0.0.1:9/cities",
    "unencoded-slash": f"postgresql://app:{SECRET}/x9@127.0.0.1:9/cities",
    "no-scheme": f"app:{SECRET}@127.0.0.1:9/cities",
}


def test_a_failing_migrate_function_never_shows_the_password(handler_module, monkeypatch):
    import pytest

    from cities import config, create_app

    for name, url in MALFORMED_URLS.items():
        app = create_app(config.from_env({"MIGRATIONS_DATABASE_URL": url,
                                          "DB_CONNECT_BUDGET": "0.1"}))
        monkeypatch.setattr(handler_module, "app", app)
        with pytest.raises(handler_module.MigrationFailed) as raised:
            handler_module.migrate({}, None)
        shown = "".join(__import__("traceback").format_exception(raised.value))
        assert SECRET not in shown and "retPw" not in shown, (name, shown)
        assert "Error: " in shown.splitlines()[-1], (name, shown)  # still says what failed


def test_a_malformed_database_url_is_a_503_with_a_clear_log_line(client_for, caplog):
    import logging

    for name, url in MALFORMED_URLS.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cities"):
            reply = client_for(DATABASE_URL=url, DB_CONNECT_BUDGET=0.1).get("/cities")
        assert reply.status == 503 and reply.error_code == "service_unavailable", (name, reply)
        assert "127.0.0.1" not in reply.text and SECRET not in reply.text
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors and all("database" in m.lower() for m in errors), (name, caplog.text)
        assert SECRET not in caplog.text and "retPw" not in caplog.text, (name, caplog.text)

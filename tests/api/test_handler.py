"""The Lambda module: importing it is cheap and safe; missing settings give JSON errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

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

from tests.support.lambda_events import http_api_event  # noqa: E402
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

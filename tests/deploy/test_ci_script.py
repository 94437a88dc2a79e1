"""deploy/ci.py, the workflows' own steps, run here against real servers (moto for AWS only).

Neon's and GitHub's APIs are stood in for by a local HTTP server that records each request and
answers as the real API documents; what is asserted is what the step sends and what it does.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.conftest import local_server
from tests.support.serving import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ci", ROOT / "deploy" / "ci.py")
ci = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ci)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@contextmanager
def api(answer: Any) -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP API: `answer(method, path, body)` gives (status, JSON); requests recorded."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen.append({"method": method, "path": self.path, "body": body,
                         "authorization": self.headers.get("Authorization")})
            status, reply = answer(method, self.path, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.handle_one("GET")

        def do_POST(self) -> None:
            self.handle_one("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        thread.join()


PASSWORD = "p@ss/w:rd+1"
DIRECT = "postgresql://app:p%40ss%2Fw%3Ard%2B1@ep-x.neon.example/neondb?sslmode=require"
POOLED = DIRECT.replace("ep-x.", "ep-x-pooler.")


def neon(method: str, path: str, body: Any) -> tuple[int, dict]:
    return 200, {"uri": POOLED if "pooled=true" in path else DIRECT}


def test_preview_database_masks_every_form_of_the_password_before_storing_the_urls(
        aws: None, capsys: pytest.CaptureFixture) -> None:
    with api(neon) as (url, seen):
        env = {"NEON_API_HOST": url, "NEON_API_KEY": "k", "NEON_PROJECT_ID": "proj",
               "NEON_BRANCH_ID": "br-1", "NEON_DATABASE": "neondb", "NEON_ROLE": "app"}
        ci.preview_database("pr7", env)

    masked = [line.removeprefix("::add-mask::") for line in capsys.readouterr().out.splitlines()]
    assert {PASSWORD, "p%40ss%2Fw%3Ard%2B1", DIRECT, POOLED} <= set(masked)
    assert all(r["authorization"] == "Bearer k" and "branch_id=br-1" in r["path"] for r in seen)
    ssm = boto3.client("ssm")
    stored = {p["Name"]: p for p in ssm.get_parameters_by_path(
        Path="/cities/pr7", WithDecryption=True)["Parameters"]}
    assert stored["/cities/pr7/database-url"]["Value"] == POOLED
    assert stored["/cities/pr7/migrations-database-url"]["Value"] == DIRECT
    assert stored["/cities/pr7/api-keys"]["Value"] in masked
    assert {p["Type"] for p in stored.values()} == {"SecureString"}

    ci.forget_preview_database("pr7")
    assert ssm.get_parameters_by_path(Path="/cities/pr7")["Parameters"] == []


def test_endpoint_reads_the_stacks_http_api_url(aws: None) -> None:
    template = {"Resources": {"P": {"Type": "AWS::SSM::Parameter",
                                    "Properties": {"Name": "/x", "Type": "String", "Value": "x"}}},
                "Outputs": {"HttpApiUrl": {"Value": "https://abc.execute-api.example"}}}
    boto3.client("cloudformation").create_stack(StackName="cities-pr7",
                                                TemplateBody=json.dumps(template))

    assert ci.endpoint("pr7") == "https://abc.execute-api.example"


def test_smoke_passes_on_a_serving_api_and_names_what_fails(app: Any) -> None:
    with local_server(app, "") as url:
        assert ci.smoke(url) == []
    with api(lambda method, path, body: (503, {"error": "x"})) as (url, _):
        assert ci.smoke(url, attempts=2, wait=0) == [
            "GET /health answered 503", "GET /cities answered 503"]


def test_comment_posts_the_url_on_the_pull_request() -> None:
    with api(lambda method, path, body: (201, {"id": 1})) as (url, seen):
        env = {"GITHUB_API_URL": url, "GITHUB_REPOSITORY": "o/r", "PULL_REQUEST": "7",
               "GITHUB_TOKEN": "t", "STAGE": "pr7"}
        assert ci.comment("https://abc.example", env) == 201

    (request,) = seen
    assert request["method"] == "POST" and request["path"] == "/repos/o/r/issues/7/comments"
    assert request["authorization"] == "Bearer t"
    assert "https://abc.example" in request["body"]["body"]

"""A local HTTP server standing in for CloudFormation's pre-signed ResponseURL (an S3 PUT)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.serving import serve_in_thread


class ResponseURL:
    """Records every PUT it receives: the JSON body and the headers, as S3 would store them."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                catcher.headers.append(dict(self.headers))
                catcher.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/cfn-response?signature=x"
        self._thread = serve_in_thread(self._server)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def request(response_url: str, request_type: str = "Create", **extra: Any) -> dict[str, Any]:
    """A custom-resource request as CloudFormation sends it for `Custom::Migrations`."""
    event = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:cities-dev-migrate",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/cities-dev/1a2b3c",
        "RequestId": "5d478e16-5e24-4b61-9d06-e1c1a0a7f2b0",
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::Migrations",
        "ResourceProperties": {"ServiceToken": "arn:...", "MigrationsChecksum": "c3530f69"},
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = "cities-schema-migrations"
    return {**event, **extra}

"""Real Lambda event payloads for each front door, and a tiny client that sends them.

The shapes follow AWS's documented examples: API Gateway HTTP API (payload 2.0), REST API
(payload 1.0 with `multiValueHeaders`), Lambda Function URLs (2.0) and ALB target groups.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

HTTP_API_HOST = "abc123defg.execute-api.eu-west-1.amazonaws.com"
REST_API_HOST = "r3st4p1xyz.execute-api.eu-west-1.amazonaws.com"
FUNCTION_URL_HOST = "q4w5e6r7t8y9u0.lambda-url.eu-west-1.on.aws"
ALB_HOST = "cities-alb-1234567890.eu-west-1.elb.amazonaws.com"
CUSTOM_DOMAIN = "api.example.com"


def _split(target: str, query: Mapping[str, str] | None) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(target)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    pairs += list((query or {}).items())
    return parts.path, pairs


def _body(body: Any, base64_body: bool) -> tuple[str | None, bool]:
    if body is None:
        return None, False
    if isinstance(body, dict | list):
        body = json.dumps(body)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if base64_body or isinstance(body, bytes):
        return base64.b64encode(raw).decode("ascii"), True
    return body, False


def _headers(host: str, headers: Mapping[str, str] | None, has_body: bool) -> dict[str, str]:
    merged = {
        "accept": "application/json",
        "host": host,
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678",
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if has_body:
        merged["content-type"] = "application/json"
    for name, value in (headers or {}).items():
        merged = {k: v for k, v in merged.items() if k != name.lower()}
        if value is not None:
            merged[name.lower()] = value
    return merged


def http_api_event(
    method: str,
    target: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    *,
    stage: str = "$default",
    host: str = HTTP_API_HOST,
    base64_body: bool = False,
) -> dict[str, Any]:
    """API Gateway HTTP API, payload format 2.0 (also the Function URL format)."""
    path, pairs = _split(target, query)
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    encoded_body, is_b64 = _body(body, base64_body)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": urlencode(pairs, quote_via=quote),
        "headers": _headers(host, headers, body is not None),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": host.split(".")[0],
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": stage,
            "time": "24/Nov/2026:16:18:11 +0000",
            "timeEpoch": 1795537091000,
        },
        "isBase64Encoded": is_b64,
    }
    if pairs:
        event["queryStringParameters"] = {k: v for k, v in pairs}
    if encoded_body is not None:
        event["body"] = encoded_body
    return event


def function_url_event(method: str, target: str, body: Any = None, **kwargs: Any) -> dict:
    """Lambda Function URL: payload 2.0 on a `*.lambda-url.*.on.aws` host, `$default` stage."""
    return http_api_event(method, target, body, host=FUNCTION_URL_HOST, **kwargs)


def rest_api_event(
    method: str,
    target: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    *,
    stage: str = "dev",
    host: str = REST_API_HOST,
    base64_body: bool = False,
) -> dict[str, Any]:
    """API Gateway REST API proxy integration, payload format 1.0. `path` excludes the stage."""
    path, pairs = _split(target, query)
    encoded_body, is_b64 = _body(body, base64_body)
    hdrs = {k.title(): v for k, v in _headers(host, headers, body is not None).items()}
    multi_query: dict[str, list[str]] = {}
    for key, value in pairs:
        multi_query.setdefault(key, []).append(value)
    stage_path = f"/{stage}{path}" if host == REST_API_HOST else path
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": host.split(".")[0],
            "domainName": host,
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "curl/8.5.0"},
            "path": stage_path,
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "resourcePath": "/{proxy+}",
            "stage": stage,
        },
        "body": encoded_body,
        "isBase64Encoded": is_b64,
    }


def alb_event(
    method: str,
    target: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    *,
    base64_body: bool = False,
) -> dict[str, Any]:
    """ALB target group (multi-value headers off): query values arrive still URL-encoded."""
    path, pairs = _split(target, query)
    encoded_body, is_b64 = _body(body, base64_body)
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                "targetgroup/cities/6d0ecf831eec9f09"
            }
        },
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {quote(k): quote(v, safe="") for k, v in pairs},
        "headers": _headers(ALB_HOST, headers, body is not None),
        "body": encoded_body or "",
        "isBase64Encoded": is_b64,
    }


@dataclass
class Reply:
    """What the front door would send back to the client."""

    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def error_code(self) -> str:
        return self.json["error"]["code"]

    @property
    def detail_fields(self) -> list[str]:
        return [d["field"] for d in self.json["error"]["details"]]


def to_reply(result: dict[str, Any]) -> Reply:
    headers: dict[str, str] = {}
    for name, value in (result.get("headers") or {}).items():
        headers[name.lower()] = value
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(values)
    body = result.get("body") or ""
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    return Reply(result["statusCode"], headers, body)


class Client:
    """Calls a Lambda handler with events made by `make_event`, like a front door would."""

    def __init__(
        self, handler: Callable[[dict, Any], dict], make_event: Callable[..., dict] = http_api_event
    ) -> None:
        self.handler = handler
        self.make_event = make_event

    @classmethod
    def serving(cls, app: Any, make_event: Callable[..., dict] = http_api_event) -> Client:
        """A client of `app`, its events served as `handler.api` serves them."""
        from cities.http import lambda_entry

        return cls(functools.partial(lambda_entry.serve, app), make_event)

    def request(self, method: str, target: str, body: Any = None, **kwargs: Any) -> Reply:
        return to_reply(self.handler(self.make_event(method, target, body, **kwargs), None))

    def get(self, target: str, **kwargs: Any) -> Reply:
        return self.request("GET", target, **kwargs)

    def post(self, target: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", target, body, **kwargs)

    def put(self, target: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("PUT", target, body, **kwargs)

    def patch(self, target: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("PATCH", target, body, **kwargs)

    def delete(self, target: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", target, **kwargs)

    def follow(self, url: str) -> Reply:
        """GET an absolute URL the API generated (a Location or Link target)."""
        parts = urlsplit(url)
        return self.get(parts.path + (f"?{parts.query}" if parts.query else ""))

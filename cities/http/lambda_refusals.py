"""What a Lambda request gets when the app cannot serve it: a JSON 400 for an event
serverless-wsgi cannot translate (handler.api), and a 503 for every request that came through
Lambda while API_GATEWAY_BASE_PATH is unusable. Both in the API's one error shape. Imported
only when needed: a healthy cold start never loads it.
"""

from __future__ import annotations

import json
from typing import Any

from cities.http.errors import ServiceUnavailable, error_document


def bad_event_response(message: str) -> dict[str, Any]:
    """A JSON 400 for an event serverless-wsgi cannot translate, valid for every front door."""
    body = json.dumps(error_document(400, message))
    return {
        "statusCode": 400,
        "statusDescription": "400 Bad Request",
        "headers": {
            "Content-Type": "application/json",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _refuse_lambda_events() -> None:
    """With API_GATEWAY_BASE_PATH out of range serverless-wsgi cannot tell the base path from the
    route: a request that came through Lambda answers 503 rather than a misleading 404."""
    from flask import request

    if "serverless.event" in request.environ:
        raise ServiceUnavailable(
            "The service is not configured: its API Gateway base path setting is invalid."
        )


def refuse_lambda_requests(app: Any) -> None:
    """Refuse Lambda requests: create_app calls it while API_GATEWAY_BASE_PATH is unusable."""
    app.before_request(_refuse_lambda_events)

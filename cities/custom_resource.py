"""The CloudFormation custom-resource protocol, for the migrate function (`Custom::Migrations`).

CloudFormation invokes the function with a Create, Update or Delete request and then waits, up to
an hour, for a JSON answer PUT to the request's pre-signed `ResponseURL`; the API function depends
on the resource, so its new code goes live only after SUCCESS, and FAILED rolls the stack back
with the old code still serving. Every path answers: an error becomes FAILED with a reason that
names no URL or credential, and a run about to hit the function's timeout answers FAILED first.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cities")

PHYSICAL_RESOURCE_ID = "cities-schema-migrations"
# Answer FAILED this long before the function's own timeout, while it still can.
TIMEOUT_MARGIN_S = 5.0
_REASON_LIMIT = 600  # the whole response must stay under 4096 bytes


def is_request(event: Any) -> bool:
    """True for a CloudFormation custom-resource request (rather than a direct invocation)."""
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def masked_reason(exc: BaseException) -> str:
    """A FAILED reason: the error's first line, every credential masked (request_log)."""
    from .request_log import masked_error

    return masked_error(exc).splitlines()[0][:_REASON_LIMIT]


class _Responder:
    """Sends exactly one answer per request, whoever (the run or the timeout guard) is first."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self._lock = threading.Lock()
        self.sent: dict[str, Any] | None = None

    def send(self, status: str, reason: str = "", data: dict[str, Any] | None = None) -> bool:
        with self._lock:
            if self.sent is not None:
                return False
            event = self.event
            self.sent = {
                "Status": status,
                "Reason": reason or f"{status} (see the function's logs)",
                "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_RESOURCE_ID,
                "StackId": event["StackId"],
                "RequestId": event["RequestId"],
                "LogicalResourceId": event["LogicalResourceId"],
                "NoEcho": False,
                "Data": data or {},
            }
            body = json.dumps(self.sent).encode("utf-8")
            # A pre-signed S3 URL: the signature covers no content type, so send none.
            request = urllib.request.Request(  # noqa: S310 - the URL CloudFormation gave us
                event["ResponseURL"], data=body, method="PUT",
                headers={"Content-Type": "", "Content-Length": str(len(body))},
            )
            with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
                reply.read()
            log.info("custom resource: answered %s to CloudFormation", status)
            return True


def handle(event: dict[str, Any], context: Any, run: Callable[[], dict[str, Any]]) -> dict:
    """Answer one custom-resource request: Create/Update run `run`, Delete does nothing."""
    responder = _Responder(event)
    request_type = event.get("RequestType")
    if request_type == "Delete":  # the schema outlives the stack: nothing to undo
        responder.send("SUCCESS", "nothing to do on delete")
        return responder.sent or {}
    guard = None
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is not None:
        seconds = remaining() / 1000 - TIMEOUT_MARGIN_S
        guard = threading.Timer(max(seconds, 0.0), responder.send, (
            "FAILED", "migrations did not finish before the migrate function's timeout"))
        guard.daemon = True
        guard.start()
    try:
        result = run()
    except Exception as exc:
        log.error("migrations failed: %s", masked_reason(exc))
        responder.send("FAILED", masked_reason(exc))
    else:
        responder.send("SUCCESS", f"schema version {result.get('version')}", {
            "Version": str(result.get("version")),
            "Applied": str(len(result.get("applied", []))),
        })
    finally:
        if guard is not None:
            guard.cancel()
    return responder.sent or {}

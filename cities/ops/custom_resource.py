"""The CloudFormation custom-resource protocol, for the migrate function (`Custom::Migrations`).

CloudFormation invokes the function with a Create, Update or Delete request and then waits, up to
an hour, for a JSON answer PUT to the request's pre-signed `ResponseURL`; the API function depends
on the resource, so its new code goes live only after SUCCESS, and FAILED rolls the stack back
with the old code still serving. Every path answers once: an error becomes FAILED with a reason
that names no URL or credential. A FAILED answer must not hide a commit: the run gets a deadline
before the function's timeout, where it cancels its statement and rolls back, and the answer
waits for the run to end, so it says what the database holds. Only a run that has not ended
shortly before the timeout (a database that stopped answering) gets a FAILED saying so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cities")

PHYSICAL_RESOURCE_ID = "cities-schema-migrations"
# The run stops this long before the function's timeout: its cancel, rollback and answer need
# well under a second; the rest covers a slow network.
TIMEOUT_MARGIN_S = 5.0
# A run still going this long before the timeout is not waited for: the answer must go out.
ANSWER_MARGIN_S = 2.0
_PUT_TIMEOUT_S = 10.0
STILL_RUNNING = (
    "migrations were told to stop before the migrate function's timeout but had not ended when "
    "it had to answer (is the database answering?): the migration in progress may still "
    "commit; schema_migrations shows what was applied"
)
_REASON_LIMIT = 600  # the whole response must stay under 4096 bytes


def is_request(event: Any) -> bool:
    """True for a CloudFormation custom-resource request (rather than a direct invocation)."""
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def masked_reason(exc: BaseException) -> str:
    """A FAILED reason: the error's first line, every credential masked (request_log)."""
    from cities.ops.secrets_mask import masked_error

    return masked_error(exc).splitlines()[0][:_REASON_LIMIT]


class _Responder:
    """Sends exactly one answer per request, within the function's remaining time."""

    def __init__(self, event: dict[str, Any], dies_at: float | None) -> None:
        self.event = event
        self.dies_at = dies_at
        self.sent: dict[str, Any] | None = None

    def send(self, status: str, reason: str = "", data: dict[str, Any] | None = None) -> None:
        if self.sent is not None:
            return
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
        with urllib.request.urlopen(request, timeout=self._put_timeout()) as reply:  # noqa: S310
            reply.read()
        log.info("custom resource: answered %s to CloudFormation", status)

    def _put_timeout(self) -> float:
        if self.dies_at is None:
            return _PUT_TIMEOUT_S
        return max(0.5, min(_PUT_TIMEOUT_S, self.dies_at - time.monotonic() - 0.25))


class _Outcome:
    """The run, in a thread of its own, so the answer still goes out if it never returns."""

    def __init__(self, run: Callable[[float | None], dict[str, Any]], stop_at: float | None):
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(run, stop_at), name="migrations", daemon=True)
        self._thread.start()

    def _run(self, run: Callable[[float | None], dict[str, Any]], stop_at: float | None) -> None:
        try:
            self.result = run(stop_at)
        except BaseException as exc:  # whatever it is, it becomes the answer
            self.error = exc

    def wait(self, until: float | None) -> bool:
        """True once the run has ended; False if it is still going at `until`."""
        self._thread.join(None if until is None else max(0.0, until - time.monotonic()))
        return not self._thread.is_alive()


def dies_at(context: Any) -> float | None:
    """When Lambda kills this invocation (a `time.monotonic()` value); None outside Lambda."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else time.monotonic() + remaining() / 1000


def run_deadline(context: Any) -> float | None:
    """When a run must have stopped so that its answer still goes out: TIMEOUT_MARGIN_S early."""
    end = dies_at(context)
    return None if end is None else end - TIMEOUT_MARGIN_S


def handle(
    event: dict[str, Any], context: Any, run: Callable[[float | None], dict[str, Any]]
) -> dict:
    """Answer one custom-resource request: Create/Update run `run(deadline)`, Delete does nothing.

    The answer is decided once the run has ended, so FAILED means it committed nothing beyond
    what its reason says; only a run still going ANSWER_MARGIN_S before the timeout is not
    waited for.
    """
    end = dies_at(context)
    responder = _Responder(event, end)
    if event.get("RequestType") == "Delete":  # the schema outlives the stack: nothing to undo
        responder.send("SUCCESS", "nothing to do on delete")
        return responder.sent or {}
    outcome = _Outcome(run, None if end is None else end - TIMEOUT_MARGIN_S)
    if not outcome.wait(None if end is None else end - ANSWER_MARGIN_S):
        log.error("migrations: %s", STILL_RUNNING)
        responder.send("FAILED", STILL_RUNNING)
    elif outcome.error is not None or outcome.result is None:
        reason = masked_reason(outcome.error or RuntimeError("the run returned nothing"))
        log.error("migrations failed: %s", reason)
        responder.send("FAILED", reason)
    else:
        result = outcome.result
        responder.send("SUCCESS", f"schema version {result.get('version')}", {
            "Version": str(result.get("version")),
            "Applied": str(len(result.get("applied", []))),
        })
    return responder.sent or {}

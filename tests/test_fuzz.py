"""Fuzzing from the API's own OpenAPI document (schemathesis): whatever a client sends, no 5xx,
and every response matches the document. Stateful runs follow the document's links, so ids
created by POST are reused by GET, PUT, PATCH and DELETE.

Bounded here (FUZZ_EXAMPLES, default 25 per operation); `make fuzz` runs far more.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from cities.city import CITY
from tests.resources.country import COUNTRY

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_RANDOM") is None,
)


CONDITIONAL_HEADERS = ("Idempotency-Key", "If-Match", "If-None-Match")
LISTS = {f"GET /{resource.plural}" for resource in (CITY, COUNTRY)}


def excluded_checks(case) -> list:
    """Where "schema-valid input is accepted" cannot hold, by the contract itself: a cursor is
    any string to the schema but valid only as the server issued it, an Idempotency-Key the
    fuzzer happens to reuse with another body must be 422, and an If-Match (If-None-Match) that
    names no current version is 412 (304). It is checked everywhere else."""
    headers = case.headers or {}
    stateful_input = case.operation.label in LISTS or any(
        name in headers for name in CONDITIONAL_HEADERS
    )
    return [positive_data_acceptance] if stateful_input else []


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def served_operations(app) -> int:
    """The app's routes and methods, as its URL map has them (HEAD and OPTIONS are Flask's)."""
    return sum(
        len(rule.methods - {"HEAD", "OPTIONS"}) for rule in app.url_map.iter_rules()
    )


def test_every_operation_conforms_to_its_document(api_schema, app):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    # every served operation but /openapi.json, the schema itself
    assert len(operations) == served_operations(app) - 1

    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def conforms(case):
            case.call_and_validate(excluded_checks=excluded_checks(case))

        conforms()


def test_the_test_only_resource_conforms_to_its_document(resources_client):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", resources_client.app)
    operations = [
        op for op in (result.ok() for result in schema.get_all_operations())
        if op.path.startswith("/countries")
    ]
    assert len(operations) == 6

    for operation in operations:

        @settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 2, 5))
        @given(case=operation.as_strategy())
        def conforms(case):
            case.call_and_validate(excluded_checks=excluded_checks(case))

        conforms()


def test_stateful_sequences_conform_to_the_document(api_schema, sql):
    class Machine(api_schema.as_state_machine()):
        def teardown(self):
            # Each sequence starts on empty tables, so replaying one reproduces it.
            sql("TRUNCATE city, idempotency_key RESTART IDENTITY")

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response, additional_checks=additional_checks,
                excluded_checks=excluded_checks(case), transport_kwargs=kwargs,
            )

    Machine.run(settings=settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 5, 3),
                                  stateful_step_count=8))

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
from hypothesis import strategies as st
from schemathesis.checks import (
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.datastructures import MultiDict

from cities.http.errors import ValidationFailed
from cities.http.listing import cursor_after, parse_list_query
from cities.resources.city import CITY
from tests.conftest import served_operations
from tests.support.resources.region import REGION

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_RANDOM") is None,
)


CONDITIONAL_HEADERS = ("Idempotency-Key", "If-Match", "If-None-Match")
LISTS = {f"GET /{resource.plural}": resource for resource in (CITY, REGION)}


def excluded_checks(case) -> list:
    """Where "schema-valid input is accepted" cannot hold, by the contract itself: an
    Idempotency-Key the fuzzer happens to reuse with another body must be 422, and an If-Match
    (If-None-Match) that names no current version is 412 (304). It is checked everywhere else,
    list requests with a cursor included (see `issue_cursor`)."""
    headers = case.headers or {}
    conditional = any(name in headers for name in CONDITIONAL_HEADERS)
    return [positive_data_acceptance] if conditional else []


def issue_cursor(case) -> None:
    """A generated cursor matches the published pattern but, carrying a checksum, is valid only
    as the server issues it: replace it by the one the server issues for this very query after
    a row derived from it, as a client copying it from a `Link` would send."""
    resource = LISTS.get(case.operation.label)
    if resource is None or "cursor" not in (case.query or {}):
        return
    args = MultiDict({k: str(v) for k, v in case.query.items() if k != "cursor"})
    try:
        query = parse_list_query(resource, args)
    except ValidationFailed:
        return  # the other parameters already make it a 422 (a finding of its own)
    seed = sum(map(ord, str(case.query["cursor"])))
    row = {"id": seed + 1}
    for field in resource.fields:  # a key value its field's schema allows
        if field.schema.get("type") == "string":
            row[field.name] = "m" * min(seed % 3 + 1, field.schema.get("maxLength", 100))
        else:
            row[field.name] = seed
    case.query["cursor"] = cursor_after(resource, query, row)


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_every_operation_conforms_to_its_document(api_schema, app):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    # every served operation but /openapi.json, the schema itself
    assert len(operations) == len(served_operations(app)) - 1

    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def conforms(case):
            issue_cursor(case)
            case.call_and_validate(excluded_checks=excluded_checks(case))

        conforms()


def test_the_test_only_resource_conforms_to_its_document(resources_client):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", resources_client.app)
    operations = [
        op for op in (result.ok() for result in schema.get_all_operations())
        if op.path.startswith("/regions")
    ]
    assert len(operations) == 6

    for operation in operations:

        @settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 2, 5))
        @given(case=operation.as_strategy())
        def conforms(case):
            issue_cursor(case)
            case.call_and_validate(excluded_checks=excluded_checks(case))

        conforms()


# Numbers longer than Python's int() accepts (4300 digits), which no schema-driven generator
# produces on its own: each parameter of each operation in turn gets one.
LONG_DIGITS = st.integers(4250, 6000).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n)
)


def test_very_long_numbers_in_every_parameter_are_refused_cleanly(api_schema):
    for operation in (result.ok() for result in api_schema.get_all_operations()):
        locations = {
            "query": [p.name for p in operation.query],
            "path_parameters": [p.name for p in operation.path_parameters],
            "headers": [p.name for p in operation.headers] + ["Authorization"],
        }
        targets = [(where, name) for where, names in locations.items() for name in names]

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(), target=st.sampled_from(targets), digits=LONG_DIGITS)
        def refused_cleanly(case, target, digits):
            where, name = target
            container = getattr(case, where)
            if container is None:
                setattr(case, where, {})
                container = getattr(case, where)
            container[name] = digits
            response = case.call()
            case.validate_response(response, checks=[
                not_a_server_error, status_code_conformance, response_schema_conformance,
            ])

        refused_cleanly()


def test_stateful_sequences_conform_to_the_document(api_schema, sql):
    class Machine(api_schema.as_state_machine()):
        def before_call(self, case):
            issue_cursor(case)

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

"""AWS Lambda entry points. Kept thin: the app lives in the `cities` package.

`api` serves HTTP through serverless-wsgi (HTTP API, REST API, Function URL and ALB events;
cities.http.lambda_entry);
`migrate` applies schema migrations at deploy time, before the API's new code takes traffic.
Importing this module builds the app but opens no connection, so init stays fast and survives
missing or out-of-range configuration (cities.ops.config: logged, never raised).
"""

from __future__ import annotations

import logging
from typing import Any

from cities import create_app
from cities.http import lambda_entry
from cities.ops import config, ssm
from cities.ops.secrets_mask import masked_error

app = create_app()


def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Serve one HTTP event (cities.http.lambda_entry: serverless-wsgi, and a read sent ahead)."""
    return lambda_entry.serve(app, event, context)


class MigrationFailed(RuntimeError):
    """What leaves `migrate` when it fails: the cause's type and message, secrets masked."""


def migrate(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    """Apply pending migrations, as CloudFormation's `Custom::Migrations` resource or directly.

    Invoked by CloudFormation, it answers on the request's ResponseURL (FAILED on any error, so
    the deploy rolls back before the new API code serves); invoked directly, raising makes the
    invocation fail. Either way what fails is MigrationFailed with its message masked and no
    chained traceback: Lambda prints both to CloudWatch and `make deploy` shows them, and libpq
    repeats a malformed URL, password included, in its errors.
    """
    from cities.ops import custom_resource  # not needed to serve requests

    if custom_resource.is_request(event):
        return custom_resource.handle(event, context, _apply_migrations)
    return _apply_migrations(custom_resource.run_deadline(context))


def _apply_migrations(deadline: float | None = None) -> dict[str, Any]:
    """Run the migrations, stopping cleanly at `deadline` (a `time.monotonic()` value)."""
    from cities.db.migrate import migrate as apply_migrations  # not needed to serve requests

    url = None
    try:
        ssm.load(app.config)  # secrets named by *_SSM_PARAMETER; a missing one fails loudly here
        url = config.migrations_url(app.config)
        if not url:
            raise RuntimeError("Set MIGRATIONS_DATABASE_URL or DATABASE_URL to run migrations.")
        result = apply_migrations(
            url,
            connect_timeout=app.config["DB_CONNECT_TIMEOUT"],
            connect_budget=app.config["DB_CONNECT_BUDGET"],
            deadline=deadline,
        )
    except Exception as exc:
        raise MigrationFailed(masked_error(exc, url)) from None
    logging.getLogger("cities").info("migrations: %s", result)
    return result

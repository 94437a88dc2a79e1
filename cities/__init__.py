"""cities: a Postgres-backed CRUD API for Lambda, built as a Flask app factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from cities.ops import config


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment (`.env` included), then `test_config` on top.

    Nothing here touches the network or the database: this runs during Lambda's init phase.
    """
    config.load_dotenv_if_present()
    from cities.http.errors import MAX_BODY_BYTES
    from cities.http.routing import LazyBuildRule

    app = Flask(__name__, static_folder=None)  # an API: no /static route to build or match
    app.url_rule_class = LazyBuildRule  # URL builders compile on first use, not at cold start
    app.config.from_mapping(config.from_env())
    if test_config is not None:
        app.config.from_mapping(test_config)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.json.compact = True  # in debug too: one layout for every response (resource_api.json_text)
    app.json.ensure_ascii = False  # UTF-8 bodies: "Zürich", not "Z\u00fcrich"
    app.url_map.merge_slashes = False

    log = logging.getLogger("cities")
    log.setLevel(app.config["LOG_LEVEL"])
    from_ssm = "DATABASE_URL" in app.config.get("SSM_PARAMETERS", {})
    if not app.config["DATABASE_URL"] and not from_ssm:
        log.warning(
            "DATABASE_URL is not set: requests that need the database will answer 503 "
            "until it is configured"
        )
    if "API_KEYS" not in app.config.get("SSM_PARAMETERS", {}):
        log.info(config.describe_api_keys(app.config))

    from cities.db import connection as db
    from cities.http import (
        base_path,
        docs_api,
        errors,
        meta_api,
        quota,
        request_log,
        resource_api,
    )
    from cities.ops import secrets_mask, ssm

    secrets_mask.remember_connection_strings(
        app.config["DATABASE_URL"], app.config["MIGRATIONS_DATABASE_URL"]
    )
    secrets_mask.remember_keys(*app.config["API_KEYS"])

    db.init_app(app)
    errors.init_app(app)
    request_log.init_app(app)
    ssm.init_app(app)
    if "API_GATEWAY_BASE_PATH" in app.config.get("UNUSABLE_SETTINGS", ()):
        from cities.http import lambda_refusals  # only a misconfigured deploy pays the import

        lambda_refusals.refuse_lambda_requests(app)
    quota.init_app(app)
    if "RESOURCES" not in app.config:
        from cities.resources.city import CITY

        # The declared resources this API serves (docs/extending.md: Adding a resource).
        app.config["RESOURCES"] = (CITY,)
    for resource in app.config["RESOURCES"]:
        app.register_blueprint(resource_api.blueprint(resource))
    app.register_blueprint(meta_api.bp)
    app.register_blueprint(docs_api.bp)
    if app.config.get("DB_CONNECTION_REUSE"):
        from cities.http import early_read  # only a kept connection reads ahead

        early_read.install(app)
    app.wsgi_app = base_path.GatewayPaths(app.wsgi_app, app.config)
    return app

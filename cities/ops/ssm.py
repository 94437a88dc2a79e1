"""Secrets from SSM Parameter Store, read once per Lambda container.

On Lambda, `DATABASE_URL`, `MIGRATIONS_DATABASE_URL` and `API_KEYS` may be given as parameter
*names* (`DATABASE_URL_SSM_PARAMETER=/cities/prod/database-url`, SecureString) instead of values,
so no secret sits in the function's configuration or the CloudFormation template.

- boto3 is imported only when a parameter is named: it ships with the Lambda runtime (it is kept
  out of the zip) and is slow to import (docs/benchmarks.md, Design measurements), which a
  deploy-time configuration never pays.
- The read happens at the first request, not at import: an import that fails would leave the
  container crash-looping with nothing but a stack trace, whereas a request can be answered with
  a JSON 503 while the log names the missing parameter.
- Values are kept for the container's life (one `GetParameters` call per cold start). A failed
  read is remembered for `FAILURE_BACKOFF` seconds only: during a scale-out burst a container
  answers 503 from that memory instead of calling SSM for every request (its API allows about
  40 calls per second per account), and fixing the parameter still heals warm containers soon.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from flask import Flask, current_app

from cities.http.errors import ServiceUnavailable
from cities.ops import config
from cities.ops.secrets_mask import remember_connection_strings, remember_keys

log = logging.getLogger("cities")

class SsmConfigError(RuntimeError):
    """A named parameter could not be read; the message names it (never its value)."""


# Client timeouts: an in-region GetParameters takes tens of milliseconds; at worst two attempts
# (~6 s) plus the database's connect budget and a statement still fit in the API function's
# timeout (serverless.yml; tests/deploy/test_deploy.py checks the sum).
CONNECT_TIMEOUT = 1
READ_TIMEOUT = 2
MAX_ATTEMPTS = 2
FAILURE_BACKOFF = 5.0  # seconds a failed read is answered from memory before SSM is asked again

_cache: dict[str, str] = {}  # parameter name -> decrypted value, for this container's life
# The names a read failed for -> (when, its error): repeated at once, without a call, until
# FAILURE_BACKOFF has passed.
_failures: dict[tuple[str, ...], tuple[float, SsmConfigError]] = {}
_lock = threading.Lock()
_now = time.monotonic
# botocore logs every response body at DEBUG, decrypted SecureStrings included, and Lambda's
# application log level DEBUG puts the root logger there: these stay at INFO during a read.
AWS_LOGGERS = ("botocore", "boto3", "urllib3")


def clear_cache() -> None:
    """Forget fetched values (tests; a new container starts with an empty cache anyway)."""
    with _lock:
        _cache.clear()
        _failures.clear()


def _client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ssm",
        config=Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        ),
    )


def fetch(names: list[str]) -> dict[str, str]:
    """Decrypted values of `names`, from the cache or one `GetParameters` call for the rest."""
    with _lock:
        missing = tuple(sorted({name for name in names if name not in _cache}))
        if missing:
            failed = _failures.get(missing)
            if failed is not None and _now() - failed[0] < FAILURE_BACKOFF:
                raise failed[1]
            try:
                _read(missing)
            except SsmConfigError as exc:
                _failures[missing] = (_now(), exc)
                raise
            _failures.pop(missing, None)
        return {name: _cache[name] for name in names}


@contextlib.contextmanager
def _aws_debug_logs_off() -> Iterator[None]:
    """Raise AWS_LOGGERS, and any of their children set below INFO, to INFO, then restore them.

    Levels, not a filter: a logger's filter never sees the records of its children
    (`botocore.parsers` logs the bodies), and the handlers are Lambda's, not ours.
    """
    tops = [logging.getLogger(name) for name in AWS_LOGGERS]
    children = [
        logger for name, logger in list(logging.Logger.manager.loggerDict.items())
        if name.startswith(tuple(f"{top}." for top in AWS_LOGGERS))
        and isinstance(logger, logging.Logger) and logging.NOTSET < logger.level < logging.INFO
    ]
    lowered = [(logger, logger.level) for logger in tops
               if logger.getEffectiveLevel() < logging.INFO]
    lowered += [(logger, logger.level) for logger in children]
    for logger, _ in lowered:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in lowered:
            logger.setLevel(level)


def _read(missing: tuple[str, ...]) -> None:
    """One `GetParameters` call for `missing`; the values go to the cache (lock held)."""
    names = list(missing)
    try:
        with _aws_debug_logs_off():
            reply = _client().get_parameters(Names=names, WithDecryption=True)
    except ImportError as exc:
        raise SsmConfigError(
            f"boto3 is needed to read SSM parameters {names} but is not installed"
        ) from exc
    except Exception as exc:  # botocore's errors: credentials, network, access denied
        raise SsmConfigError(
            f"cannot read SSM parameters {names}: {type(exc).__name__}: {exc}"
        ) from exc
    if reply.get("InvalidParameters"):
        raise SsmConfigError(
            f"SSM parameters not found: {sorted(reply['InvalidParameters'])} "
            "(create them as SecureString, see docs/deploy.md)"
        )
    for parameter in reply["Parameters"]:
        _cache[parameter["Name"]] = parameter["Value"]


def load(settings: MutableMapping[str, Any]) -> None:
    """Replace each setting named in `SSM_PARAMETERS` by its parameter's value (once).

    Raises SsmConfigError when a parameter cannot be read; the settings are then unchanged.
    """
    wanted: Mapping[str, str] = settings.get("SSM_PARAMETERS") or {}
    if not wanted or settings.get("SSM_LOADED"):
        return
    unusable = [f"{setting}_SSM_PARAMETER" for setting in wanted
                if f"{setting}_SSM_PARAMETER" in settings.get("UNUSABLE_SETTINGS", ())]
    if unusable:  # its value stays unread: never fall back to the plain setting
        raise SsmConfigError(f"not a valid SSM parameter name: {', '.join(unusable)}")
    values = fetch(list(wanted.values()))
    for setting, name in wanted.items():
        value = values[name]
        if setting == "API_KEYS":
            settings.update(config.api_key_settings(value, f"API_KEYS_SSM_PARAMETER ({name})"))
            remember_keys(*settings["API_KEYS"])
        else:
            settings[setting] = value
            remember_connection_strings(value)
    settings["SSM_LOADED"] = True
    described = f"; {config.describe_api_keys(settings)}" if "API_KEYS" in wanted else ""
    log.info("configuration read from SSM: %s%s", ", ".join(sorted(wanted)), described)


def _before_request() -> None:
    try:
        load(current_app.config)
    except SsmConfigError as exc:
        log.error("configuration unavailable: %s", exc)
        raise ServiceUnavailable(
            "The service is not configured: its settings could not be read from "
            "SSM Parameter Store."
        ) from None


def init_app(app: Flask) -> None:
    """Read the named parameters before the first request that runs (all requests fail closed
    until they can be read: a missing `API_KEYS` must never leave writes open)."""
    if app.config.get("SSM_PARAMETERS"):
        app.before_request(_before_request)

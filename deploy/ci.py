"""The steps of .github/workflows/ that are more than a make target, runnable (and tested) here.

    python deploy/ci.py preview-database STAGE  # the Neon branch's URLs, masked, into SSM
    python deploy/ci.py endpoint STAGE        # the deployed stage's URL (and `url=` for the job)
    python deploy/ci.py smoke URL             # /health answers 200 and the list answers 200
    python deploy/ci.py comment URL           # the preview's URL, posted on the pull request
    python deploy/ci.py forget-preview-database STAGE  # the stage's SSM parameters, deleted

Run with the standard library and boto3 only, so a workflow needs nothing but `make`'s venv.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

NEON_API = "https://console.neon.tech/api/v2"


def http_url(url: str) -> str:
    """`url`, refused unless http(s): a file: or custom scheme is never what a step means."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SystemExit(f"not an http(s) URL: {url[:80]}")
    return url


def secret_forms(value: str) -> list[str]:
    """The value as a log could show it: plain, and percent-encoded as inside a URL."""
    forms = [value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)]
    return list(dict.fromkeys(form for form in forms if form))


def mask(*secrets: str) -> list[str]:
    """One `::add-mask::` workflow command per form of each secret (the runner hides them)."""
    return [f"::add-mask::{form}" for secret in secrets for form in secret_forms(secret)]


def neon_uri(env: dict[str, str], pooled: bool) -> str:
    """The branch's connection URI from Neon's API (`NEON_API_HOST` overrides where it is).

    The Neon action outputs the same URI and password unmasked; reading it here instead keeps
    it out of every step's logged header (a step's env and script are printed before it runs).
    """
    query = urllib.parse.urlencode({
        "branch_id": env["NEON_BRANCH_ID"], "database_name": env.get("NEON_DATABASE", "neondb"),
        "role_name": env.get("NEON_ROLE", "neondb_owner"), "pooled": str(pooled).lower()})
    host = env.get("NEON_API_HOST") or NEON_API
    request = urllib.request.Request(  # noqa: S310 (http_url checks the scheme)
        http_url(f"{host.rstrip('/')}/projects/{env['NEON_PROJECT_ID']}/connection_uri?{query}"),
        headers={"Authorization": f"Bearer {env['NEON_API_KEY']}", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
        return json.load(reply)["uri"]


def preview_database(stage: str, env: dict[str, str], service: str = "cities") -> list[str]:
    """Put the branch's pooled and direct URLs and a fresh API key in the stage's SSM path.

    Returns the mask commands, which are printed before anything else can show a secret.
    """
    import secrets

    import boto3

    pooled, direct = neon_uri(env, pooled=True), neon_uri(env, pooled=False)
    password = urllib.parse.unquote(urllib.parse.urlsplit(direct).password or "")
    api_key = secrets.token_hex(24)
    commands = mask(*(s for s in (password, pooled, direct, api_key) if s))
    print("\n".join(commands), flush=True)
    ssm = boto3.client("ssm")
    for name, value in (("database-url", pooled), ("migrations-database-url", direct),
                        ("api-keys", api_key)):
        ssm.put_parameter(Name=f"/{service}/{stage}/{name}", Value=value, Type="SecureString",
                          Overwrite=True)
    return commands


def forget_preview_database(stage: str, service: str = "cities") -> None:
    """Delete what preview_database put (a removed stage leaves no secret behind)."""
    import boto3

    boto3.client("ssm").delete_parameters(Names=[
        f"/{service}/{stage}/{name}" for name in ("database-url", "migrations-database-url",
                                                  "api-keys")])


def comment(url: str, env: dict[str, str]) -> int:
    """Post the preview's URL on the pull request (GitHub's REST API, the job's token)."""
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    body = json.dumps({"body": f"Preview of this pull request (stage `{env['STAGE']}`): {url}\n\n"
                               "Removed, with its Neon branch, when the pull request closes."})
    request = urllib.request.Request(  # noqa: S310 (http_url checks the scheme)
        http_url(f"{api}/repos/{env['GITHUB_REPOSITORY']}/issues/{env['PULL_REQUEST']}/comments"),
        data=body.encode(), method="POST",
        headers={"Authorization": f"Bearer {env['GITHUB_TOKEN']}",
                 "Accept": "application/vnd.github+json", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
        return reply.status


def endpoint(stage: str, service: str = "cities") -> str:
    """The HTTP API URL of a deployed stage, from its CloudFormation stack's outputs."""
    import boto3  # only this subcommand needs AWS

    stack = boto3.client("cloudformation").describe_stacks(StackName=f"{service}-{stage}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}
    if "HttpApiUrl" not in outputs:
        raise SystemExit(f"stack {service}-{stage} has no HttpApiUrl output")
    return outputs["HttpApiUrl"]


def get(url: str, timeout: float) -> int:
    """The status of one GET (an HTTP error's status too; 0 when nothing answered)."""
    try:
        with urllib.request.urlopen(http_url(url), timeout=timeout) as reply:  # noqa: S310
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def smoke(url: str, attempts: int = 10, wait: float = 3.0) -> list[str]:
    """What is wrong with a fresh deploy at `url` ([] when /health and /cities answer 200).

    A new stage may take a few seconds to answer (a cold start, the first SSM read), so /health
    is retried `attempts` times, `wait` seconds apart.
    """
    base = url.rstrip("/")
    status = 0
    for attempt in range(attempts):
        status = get(f"{base}/health", timeout=30)
        if status == 200:
            break
        if attempt + 1 < attempts:
            time.sleep(wait)
    problems = [] if status == 200 else [f"GET /health answered {status or 'nothing'}"]
    listing = get(f"{base}/cities?limit=1", timeout=30)
    if listing != 200:
        problems.append(f"GET /cities answered {listing or 'nothing'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("preview-database").add_argument("stage")
    commands.add_parser("endpoint").add_argument("stage")
    commands.add_parser("smoke").add_argument("url")
    commands.add_parser("comment").add_argument("url")
    commands.add_parser("forget-preview-database").add_argument("stage")
    args = parser.parse_args(argv)
    if args.command == "preview-database":
        preview_database(args.stage, dict(os.environ))
        return 0
    if args.command == "endpoint":
        url = endpoint(args.stage)
        print(url)
        if os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as out:
                out.write(f"url={url}\n")
        return 0
    if args.command == "comment":
        print(f"posted: {comment(args.url, dict(os.environ))}")
        return 0
    if args.command == "forget-preview-database":
        forget_preview_database(args.stage)
        return 0
    problems = smoke(args.url)
    print(json.dumps({"url": args.url, "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

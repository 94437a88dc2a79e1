"""The deployment, verified offline: the CloudFormation that `osls package` generates is linted,
checked, and deployed to moto, which stands in for an AWS account.

moto's CloudFormation skips `AWS::ApiGatewayV2::*` resources while reporting success, and accepts
a missing code zip or an unknown runtime silently, so the HTTP API is asserted on the template
itself and the functions' code size and runtime are compared with the real zip and the intent.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cities.db import connection as app_db
from cities.ops import config
from cities.ops import ssm as app_ssm
from deploy import package_lambda
from tests.conftest import run_sql
from tests.support.osls import CFN_LINT, REGION, Packaged, cfn_lint, offline_env
from tests.support.response_url import ResponseURL

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
SERVICE = "cities"
# moto names each resource type it cannot create (ApiGatewayV2, the bucket policy): known, and
# covered by the template assertions below.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
ZIP = ROOT / "dist" / "cities.zip"
SECRET_NAMES = {"DATABASE_URL", "MIGRATIONS_DATABASE_URL", "API_KEYS"}
EXPECTED = {
    "api": {"Handler": "handler.api", "MemorySize": 512, "Timeout": 25},
    "migrate": {"Handler": "handler.migrate", "MemorySize": 256, "Timeout": 60},
}
SSM_ARN = f"arn:aws:ssm:{REGION}:123456789012:parameter/{SERVICE}/{STAGE}"


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_template_passes_cfn_lint(dev_package: Path) -> None:
    files = sorted(str(p) for p in dev_package.glob("cloudformation-template-*.json"))
    assert len(files) == 2
    found = subprocess.run(
        [CFN_LINT, "--format", "json", "--", *files], capture_output=True, text=True, check=False,
    )
    assert found.returncode & 0b11 == 0, found.stdout + found.stderr  # no error, no crash
    rules = {finding["Rule"]["Id"] for finding in json.loads(found.stdout)}
    # The framework adds a DependsOn that a Ref/GetAtt already implies (W3005) to every httpApi
    # route and to every function with its own role; that one warning is ignored by name
    # (`make cfn-lint`), and nothing else may appear.
    assert rules <= {"W3005"}, found.stdout
    strict = cfn_lint(dev_package)
    assert strict.returncode == 0, strict.stdout + strict.stderr


def test_http_api_routes_everything_to_api_and_nothing_to_migrate(templates: dict) -> None:
    """Asserted on the template: moto does not create ApiGatewayV2 resources."""
    template = templates["update"]
    (api,) = resources(template, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["ProtocolType"] == "HTTP"
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["*"]  # the dev stage's setting (params in serverless.yml)
    assert {"Authorization", "Content-Type"} <= set(cors["AllowHeaders"])
    assert {"Location", "Link"} <= set(cors["ExposeHeaders"])

    (route,) = resources(template, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "$default"  # catch-all: Flask routes
    (name, integration) = next(iter(resources(template, "AWS::ApiGatewayV2::Integration").items()))
    assert name in json.dumps(route["Properties"]["Target"])
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    uri = json.dumps(integration["Properties"]["IntegrationUri"])
    assert "ApiLambdaFunction" in uri and "Migrate" not in uri

    permissions = [p for p in resources(template, "AWS::Lambda::Permission").values()
                   if "Condition" not in p]  # the kill switch's (off) is SNS's, test_kill_switch
    targets = [json.dumps(p["Properties"]["FunctionName"]) for p in permissions]
    assert targets and all("ApiLambdaFunction" in t for t in targets)
    assert "MigrateLambdaFunction" not in json.dumps(
        {k: v for k, v in template["Resources"].items() if "ApiGatewayV2" in v["Type"]}
    )
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["StageName"] == "$default"


def _lower(names: list[str]) -> set[str]:
    return {name.lower() for name in names}


def test_cors_allows_every_header_the_api_reads_and_exposes_every_one_it_sends(
    templates: dict,
) -> None:
    """Checked against the OpenAPI document, so a new header cannot be forgotten here."""
    from cities.http.openapi import document
    from cities.resources.city import CITY

    (api,) = resources(templates["update"], "AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    operations = [op for path in document([CITY])["paths"].values() for op in path.values()]
    read = {p["name"] for op in operations for p in op.get("parameters", []) if p["in"] == "header"}
    sent = {name for op in operations for response in op["responses"].values()
            for name in response.get("headers", {})}
    assert {"idempotency-key"} <= _lower(read) and {"idempotent-replayed", "link"} <= _lower(sent)
    assert _lower(read) | {"authorization", "content-type"} <= _lower(cors["AllowHeaders"])
    assert _lower(sent) <= _lower(cors["ExposeHeaders"])


def test_cors_origins_are_explicit_per_stage(packaged: Packaged) -> None:
    """dev and local allow any origin, prod its listed sites, any other stage none."""
    for stage, origins in (("staging", []), ("prod", ["https://example.com"])):
        template, _ = packaged(stage)
        (api,) = resources(template, "AWS::ApiGatewayV2::Api").values()
        assert api["Properties"]["CorsConfiguration"]["AllowOrigins"] == origins, stage
        # prod keeps access logs on (its params), every other stage off unless asked for.
        stages = resources(template, "AWS::ApiGatewayV2::Stage").values()
        assert [("AccessLogSettings" in s["Properties"]) for s in stages] == [stage == "prod"]
        # Write quotas are per stage too: prod's 1000 writes an hour per writer, none elsewhere.
        api_function = resources(template, "AWS::Lambda::Function")["ApiLambdaFunction"]
        variables = api_function["Properties"]["Environment"]["Variables"]
        assert variables["WRITE_QUOTA"] == {"staging": "", "prod": "1000"}[stage], stage


def test_the_stage_write_quota_reaches_the_api_function_in_range(templates: dict) -> None:
    """dev's quota settings, from its params, as the function reads them: no value refused."""
    api_function = resources(templates["update"], "AWS::Lambda::Function")["ApiLambdaFunction"]
    variables = api_function["Properties"]["Environment"]["Variables"]
    quota = {k: v for k, v in variables.items() if k.startswith("WRITE_QUOTA")}
    values, problems = config.read(quota)
    assert problems == [], problems
    assert (values["WRITE_QUOTA"], values["WRITE_QUOTA_WINDOW"]) == (100, 3600)
    assert values["WRITE_QUOTA_OVERRIDES"] == ()


def test_access_logs_are_a_per_stage_option(templates: dict, packaged: Packaged) -> None:
    (stage,) = resources(templates["update"], "AWS::ApiGatewayV2::Stage").values()
    assert "AccessLogSettings" not in stage["Properties"]  # off by default (dev)
    assert {k for k, v in resources(templates["update"], "AWS::Logs::LogGroup").items()
            if "Condition" not in v} == {"ApiLogGroup", "MigrateLogGroup"}

    template, _ = packaged(STAGE, "accessLogs=on")
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    (name, group), = [(k, v) for k, v in resources(template, "AWS::Logs::LogGroup").items()
                      if k not in ("ApiLogGroup", "MigrateLogGroup") and "Condition" not in v]
    assert settings["DestinationArn"] == {"Fn::GetAtt": [name, "Arn"]}
    assert group["Properties"]["LogGroupName"] == f"/aws/http-api/{SERVICE}-{STAGE}"
    assert group["Properties"]["RetentionInDays"] == 14
    line = json.loads(settings["Format"])  # one JSON object per request
    assert {line["requestId"], line["ip"], line["status"], line["responseLatency"],
            line["routeKey"], line["path"]} == {
        "$context.requestId", "$context.identity.sourceIp", "$context.status",
        "$context.responseLatency", "$context.routeKey", "$context.path"}


def _functions(template: dict) -> dict[str, dict]:
    """The functions the framework builds from the zip (not the kill switch's inline one)."""
    return {name: function["Properties"]
            for name, function in resources(template, "AWS::Lambda::Function").items()
            if "Condition" not in function}


def _artifact_key(template: dict) -> str:
    """The zip the deploy uploads: the S3 key the functions' code points at, its file name."""
    (key,) = {props["Code"]["S3Key"] for props in _functions(template).values()}
    return key.rsplit("/", 1)[-1]


def test_each_stage_runs_on_the_runtime_and_architecture_its_zip_was_built_for(
    templates: dict, packaged: Packaged
) -> None:
    """x86_64 by default, arm64 as a stage's choice; each ships the zip of its architecture."""
    runtime = f"python{package_lambda.RUNTIME_VERSION}"
    default = templates["update"]
    assert {name: (props["Runtime"], props["Architectures"])
            for name, props in _functions(default).items()} == {
        "ApiLambdaFunction": (runtime, ["x86_64"]),
        "MigrateLambdaFunction": (runtime, ["x86_64"]),
    }
    assert _artifact_key(default) == package_lambda.ARTIFACTS["x86_64"]

    arm, _ = packaged(STAGE, "architecture=arm64")
    assert {(props["Runtime"], *props["Architectures"])
            for props in _functions(arm).values()} == {(runtime, "arm64")}
    assert _artifact_key(arm) == package_lambda.ARTIFACTS["arm64"]


def depends_on(template: dict, name: str) -> set[str]:
    """Resources `name` waits for: its DependsOn, Refs and GetAtts, transitively."""
    found: set[str] = set()
    pending = [name]
    while pending:
        resource = template["Resources"][pending.pop()]
        direct = set(_as_list(resource.get("DependsOn", [])))
        text = json.dumps(resource.get("Properties", {}))
        direct |= {other for other in template["Resources"]
                   if f'"Ref": "{other}"' in text or f'"Fn::GetAtt": ["{other}"' in text}
        pending += sorted(direct - found)
        found |= direct
    return found


def migrations_checksum() -> str:
    """deploy/migrations_checksum.js, recomputed: names and LF-normalized contents, in order."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "cities" / "db" / "migrations").glob("*.sql")):
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_text(encoding="utf-8").replace("\r\n", "\n").encode() + b"\n")
    return digest.hexdigest()


def test_the_api_code_goes_live_only_after_the_migrations_ran(templates: dict) -> None:
    """CloudFormation creates or updates the Migrations custom resource (which runs the migrate
    function and waits for its answer) before it touches the API function, whose new code is
    what the HTTP API routes to; the resource changes whenever the shipped migrations do."""
    template = templates["update"]
    migrations = template["Resources"]["Migrations"]
    assert migrations["Type"] == "Custom::Migrations"
    properties = migrations["Properties"]
    assert properties["ServiceToken"] == {"Fn::GetAtt": ["MigrateLambdaFunction", "Arn"]}
    assert properties["MigrationsChecksum"] == migrations_checksum()
    assert "Migrations" in template["Resources"]["ApiLambdaFunction"]["DependsOn"]
    assert "Migrations" in depends_on(template, "ApiLambdaFunction")
    assert "ApiLambdaFunction" not in depends_on(template, "Migrations")
    (integration,) = resources(template, "AWS::ApiGatewayV2::Integration").values()
    assert "ApiLambdaFunction" in json.dumps(integration["Properties"]["IntegrationUri"])


def test_the_http_api_stage_is_throttled(templates: dict) -> None:
    (stage,) = resources(templates["update"], "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40}  # the default params


def test_template_publishes_no_function_versions(templates: dict) -> None:
    assert resources(templates["update"], "AWS::Lambda::Version") == {}


def test_template_names_secrets_but_never_holds_them(templates: dict) -> None:
    text = json.dumps(templates["update"])
    assert "postgres://" not in text and "postgresql://" not in text
    for function in resources(templates["update"], "AWS::Lambda::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert not SECRET_NAMES & set(variables), variables


@pytest.fixture
def deployed(templates: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What `osls deploy` does, against moto: create stack (bucket), upload the zip, update."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    stack = f"{SERVICE}-{STAGE}"
    with mock_aws():
        cfn = boto3.client("cloudformation", region_name=REGION)
        cfn.create_stack(StackName=stack, TemplateBody=json.dumps(templates["create"]))
        bucket = cfn.describe_stack_resource(
            StackName=stack, LogicalResourceId="ServerlessDeploymentBucket"
        )["StackResourceDetail"]["PhysicalResourceId"]
        code = templates["update"]["Resources"]["ApiLambdaFunction"]["Properties"]["Code"]
        boto3.client("s3", region_name=REGION).upload_file(str(ZIP), bucket, code["S3Key"])
        cfn.update_stack(
            StackName=stack, TemplateBody=json.dumps(templates["update"]),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        (described,) = cfn.describe_stacks(StackName=stack)["Stacks"]
        assert described["StackStatus"] == "UPDATE_COMPLETE", described
        yield {"cfn": cfn, "stack": stack, "bucket": bucket}


def request_bound(variables: dict[str, str]) -> float:
    """cities.db.connection.request_bound for a function's environment variables."""
    return app_db.request_bound({
        "DB_CONNECT_BUDGET": float(variables["DB_CONNECT_BUDGET"]),
        "DB_STATEMENT_TIMEOUT_MS": int(variables["DB_STATEMENT_TIMEOUT_MS"]),
    })


def test_deploy_creates_both_functions_as_intended(deployed: dict) -> None:
    lam = boto3.client("lambda", region_name=REGION)
    names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
    assert names == {f"{SERVICE}-{STAGE}-api", f"{SERVICE}-{STAGE}-migrate"}
    for short, expected in EXPECTED.items():
        conf = lam.get_function_configuration(FunctionName=f"{SERVICE}-{STAGE}-{short}")
        assert {key: conf[key] for key in expected} == expected
        # moto accepts any runtime string and a missing zip: compare with the intent and the zip.
        # It reports x86_64 whatever the template says: the architecture is asserted on the
        # template (test_each_stage_runs_on_the_runtime_and_architecture_its_zip_was_built_for).
        assert conf["Runtime"] == f"python{package_lambda.RUNTIME_VERSION}"
        assert conf["CodeSize"] == ZIP.stat().st_size
        variables = conf["Environment"]["Variables"]
        assert variables["LOG_LEVEL"] == "INFO"
        assert not SECRET_NAMES & set(variables)
        # A request's database work (connecting, retries, waiting for a server, a statement)
        # ends within its bound, which fits in the function's time.
        connect, budget = int(variables["DB_CONNECT_TIMEOUT"]), int(variables["DB_CONNECT_BUDGET"])
        assert connect <= budget and request_bound(variables) < conf["Timeout"]
    api = lam.get_function_configuration(FunctionName=f"{SERVICE}-{STAGE}-api")
    migrate = lam.get_function_configuration(FunctionName=f"{SERVICE}-{STAGE}-migrate")
    assert api["Timeout"] < 30  # the HTTP API's integration limit: the function answers first
    ssm_worst = app_ssm.MAX_ATTEMPTS * (app_ssm.CONNECT_TIMEOUT + app_ssm.READ_TIMEOUT)
    assert ssm_worst + request_bound(api["Environment"]["Variables"]) < api["Timeout"]
    assert migrate["Timeout"] < 120  # the CLI's invoke socket timeout: `make deploy` sees errors
    assert set(api["Environment"]["Variables"]) >= {
        "DATABASE_URL_SSM_PARAMETER", "API_KEYS_SSM_PARAMETER"}
    assert api["Environment"]["Variables"]["DATABASE_URL_SSM_PARAMETER"] == (
        f"/{SERVICE}/{STAGE}/database-url")
    assert migrate["Environment"]["Variables"]["MIGRATIONS_DATABASE_URL_SSM_PARAMETER"] == (
        f"/{SERVICE}/{STAGE}/migrations-database-url")
    assert "DATABASE_URL_SSM_PARAMETER" not in migrate["Environment"]["Variables"]


def role_grants(function: str) -> dict[str, set[str]]:
    """Action -> resources granted to the deployed function's role, checking its shape."""
    iam = boto3.client("iam", region_name=REGION)
    lam = boto3.client("lambda", region_name=REGION)
    role_arn = lam.get_function_configuration(FunctionName=f"{SERVICE}-{STAGE}-{function}")["Role"]
    role = role_arn.rsplit("/", 1)[1]
    trust = _document(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"])
    assert [s["Principal"]["Service"] for s in trust["Statement"]] == [["lambda.amazonaws.com"]]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    granted: dict[str, set[str]] = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = _document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            for action in _as_list(statement["Action"]):
                granted.setdefault(action, set()).update(_as_list(statement["Resource"]))
    return granted


@pytest.mark.parametrize(("function", "parameters"), [
    ("api", {"database-url", "api-keys"}),
    ("migrate", {"migrations-database-url"}),
])
def test_each_function_may_do_only_what_it_does(
    deployed: dict, function: str, parameters: set[str]
) -> None:
    """Its own log group, its own parameters: the API cannot read the migrations URL."""
    granted = role_grants(function)
    log_group = f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/lambda/{SERVICE}-{STAGE}"
    assert granted == {
        "logs:CreateLogStream": {f"{log_group}-{function}:*"},
        "logs:PutLogEvents": {f"{log_group}-{function}:*"},
        "ssm:GetParameters": {f"{SSM_ARN}/{name}" for name in parameters},
    }
    other = "api" if function == "migrate" else "migrate"
    assert role_grants(other) != granted  # two roles, not one shared


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _document(value: Any) -> dict:
    """A policy document. AWS (and boto3) return it decoded; moto's CloudFormation stores an
    inline policy as the Python repr of the dict, which boto3 then hands back as a string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


@pytest.fixture
def moto_server() -> Iterator[str]:
    """moto's HTTP server on loopback, for the CLI (Node) to call as if it were SSM."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def osls_print(stage: str, endpoint: str, *params: str) -> subprocess.CompletedProcess:
    env = offline_env()
    env.update(AWS_ENDPOINT_URL_SSM=endpoint, SLS_TELEMETRY_DISABLED="1",
               SLS_NOTIFICATIONS_MODE="off", SLS_AWS_REQUEST_MAX_RETRIES="0")
    return subprocess.run(
        ["npx", "--no-install", "osls", "print", "--stage", stage, "--format", "json",
         *(f"--param={p}" for p in params)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_deploy_time_mode_resolves_the_secure_strings_while_deploying(
    templates: dict, moto_server: str
) -> None:
    """`secrets=deploy`: the CLI decrypts the parameters into the functions' environment (the
    documented trade-off) and a missing parameter stops the deploy before anything changes."""
    ssm = boto3.client("ssm", endpoint_url=moto_server, region_name=REGION,
                       aws_access_key_id="x", aws_secret_access_key="x")
    values = {"database-url": "postgresql://app:pw@ep-1-pooler.example/db?sslmode=require",
              "migrations-database-url": "postgresql://owner:pw@ep-1.example/db?sslmode=require"}
    for name, value in values.items():
        ssm.put_parameter(Name=f"/{SERVICE}/{STAGE}/{name}", Value=value, Type="SecureString")

    missing = osls_print(STAGE, moto_server, "secrets=deploy")
    assert missing.returncode != 0
    said = missing.stdout + missing.stderr
    assert "functions.api.environment.API_KEYS" in said and 'not found at "ssm"' in said, said

    ssm.put_parameter(Name=f"/{SERVICE}/{STAGE}/api-keys", Value="k1,k2", Type="SecureString")
    printed = osls_print(STAGE, moto_server, "secrets=deploy")
    assert printed.returncode == 0, printed.stderr
    functions = json.loads(printed.stdout)["functions"]
    assert functions["api"]["environment"] == {
        "DATABASE_URL": values["database-url"], "API_KEYS": "k1,k2"}
    assert functions["migrate"]["environment"] == {
        "MIGRATIONS_DATABASE_URL": values["migrations-database-url"]}
    roles = json.loads(printed.stdout)["resources"]["Resources"]
    for role in ("ApiRole", "MigrateRole"):
        policies = roles[role]["Properties"]["Policies"]
        if "Fn::If" in policies:  # ApiRole: with tracing off, the list without X-Ray
            policies = policies["Fn::If"][2]
        (policy,) = policies
        actions = {a for st in policy["PolicyDocument"]["Statement"] for a in st["Action"]}
        assert actions == {"logs:CreateLogStream", "logs:PutLogEvents"}  # no SSM grant

    # The default (runtime) mode names the parameters and never calls SSM while deploying.
    runtime = osls_print(STAGE, "http://127.0.0.1:9")  # nothing listens there
    assert runtime.returncode == 0, runtime.stderr
    assert json.loads(runtime.stdout)["functions"]["api"]["environment"] == {
        "DATABASE_URL_SSM_PARAMETER": f"/{SERVICE}/{STAGE}/database-url",
        "API_KEYS_SSM_PARAMETER": f"/{SERVICE}/{STAGE}/api-keys"}


@pytest.fixture
def migrate_function_runs(
    handler_module: Any, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResponseURL]:
    """moto cannot run Lambda code without Docker: its invocations of the migrate function run
    handler.migrate in-process instead, against a real empty database, answering to a local
    ResponseURL."""
    from moto.awslambda.models import LambdaFunction

    response_url = ResponseURL()
    monkeypatch.setitem(handler_module.app.config, "MIGRATIONS_DATABASE_URL", empty_database_url)

    def invoke(function: Any, body: str, request_headers: Any, response_headers: Any) -> str:
        assert function.function_name == f"{SERVICE}-{STAGE}-migrate"
        event = {**json.loads(body), "ResponseURL": response_url.url}
        response_url.events.append(event)
        return json.dumps(handler_module.migrate(event, None))

    response_url.events = []
    monkeypatch.setattr(LambdaFunction, "invoke", invoke)
    yield response_url
    response_url.close()


def test_a_deploy_runs_the_migrations_through_the_custom_resource(
    migrate_function_runs: ResponseURL, deployed: dict, empty_database_url: str
) -> None:
    deadline = time.monotonic() + 30
    while not migrate_function_runs.received and time.monotonic() < deadline:
        time.sleep(0.05)
    (event,) = migrate_function_runs.events
    assert event["RequestType"] == "Create"
    assert event["ResourceType"] == "Custom::Migrations"
    assert event["ResourceProperties"]["MigrationsChecksum"] == migrations_checksum()
    (answer,) = migrate_function_runs.received
    assert answer["Status"] == "SUCCESS", answer
    assert answer["LogicalResourceId"] == "Migrations"
    assert run_sql(empty_database_url, "SELECT count(*) FROM schema_migrations") == [
        (len(list((ROOT / "cities" / "db" / "migrations").glob("*.sql"))),)]

"""`make deploy` and `make remove` for real, against moto's server standing in for an AWS account.

What is real: the Makefile targets and the pinned CLI (osls, its AWS SDK for JavaScript v3) with
placeholder credentials, talking HTTP to moto on loopback through `AWS_ENDPOINT_URL` (the SDK
reads it for every service); the change sets, the uploads of the zip and the template to the
deployment bucket, the stack's resources as moto creates them, the removal. The Migrations
custom resource's request is the one moto's CloudFormation generates and sends to the migrate
function; the function is the zip moto holds (the one the CLI uploaded), run by AWS's Runtime
Interface Emulator on the runtime's Python (tests/support/rie.py), with the environment moto
stores for it; it reads its database URL from moto's SSM with boto3, applies the migrations to a
real PostgreSQL, and PUTs its answer to moto's response endpoint, which records it.

What is not, and why:
- moto runs no Lambda code without Docker, so this test is the Lambda service: it replaces
  moto's invoke with the emulator above. moto addresses the response URL to
  host.docker.internal:5000 (where a Docker container would find it); the test gives the
  function moto's loopback address instead, and deploys to us-east-1 (see REGION).
- moto completes a stack update without waiting for the custom resource's answer, ignores a
  FAILED one (and, on a SUCCESS, marks the stack CREATE_COMPLETE again), and sends it no Delete
  on remove: the deploy's wait for the migrations and its rollback are CloudFormation's, asserted
  on the template's DependsOn (test_deploy.py) and the handler's protocol (test_custom_resource.py).
- moto's ValidateTemplate runs cfn-lint and rejects a template on any finding, warnings
  included; AWS's does not lint. The framework's W3005 warnings (tests/deploy/test_deploy.py) are
  the only findings let through; an error still fails the deploy.
- moto skips AWS::ApiGatewayV2::*, AWS::S3::BucketPolicy, AWS::CloudWatch::Alarm and
  AWS::Logs::MetricFilter (asserted on the template in test_deploy.py and test_alarms.py),
  ignores the architecture, and enforces no IAM policy (the deploy role: test_deploy_role.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from cities.db.migrate import load_migrations
from tests.conftest import run_sql
from tests.deploy.test_artifact import RUNTIME, RUNTIME_PYTHON, build_zip
from tests.support import node as node_check
from tests.support import rie

ROOT = Path(__file__).resolve().parents[2]
# The stage a push to main deploys (.github/workflows/ci.yml): alarms and access logs on, so every
# resource type of deploy/alarms.yml is created too.
STAGE = "prod"
SERVICE = "cities"
STACK = f"{SERVICE}-{STAGE}"
# moto's response endpoint finds the stack's region only in a request's host name, user agent or
# signature; an unsigned PUT (what S3's pre-signed URL takes, and what the handler sends) carries
# none, so moto looks in its default region, us-east-1 ("Stack with id ... does not exist" for a
# stack elsewhere). The deploy goes there: AWS_REGION picks the region, as for a user.
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
# Resource types moto's CloudFormation does not create (it warns and reports success).
# (It lists each under an empty logical id.) Their properties are asserted on the template:
# test_deploy.py (the HTTP API), test_alarms.py (the alarms and the metric filter).
MOTO_SKIPS = {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::Route",
              "AWS::ApiGatewayV2::Integration", "AWS::S3::BucketPolicy", "AWS::CloudWatch::Alarm",
              "AWS::Logs::MetricFilter"}
# What the Lambda runtime provides besides the zip: boto3 and its dependencies.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")


def _unavailable(reason: str) -> None:
    if node_check.in_ci():
        pytest.fail(f"{reason}: CI must run the deploy against moto")
    pytest.skip(reason)


class LambdaService:
    """Invocations moto's CloudFormation sends: run by the emulator on the code moto holds."""

    def __init__(self, endpoint: str, workdir: Path, client_dir: Path, sdk_dir: Path) -> None:
        self.endpoint = endpoint
        self.workdir = workdir
        self.client_dir = client_dir
        self.sdk_dir = sdk_dir
        self.events: list[dict[str, Any]] = []
        self.answers: list[Any] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def invoke(self, function: Any, body: str, request_headers: Any,
               response_headers: Any) -> bytes:
        try:
            return self._invoke(function, json.loads(body))
        except Exception as exc:  # shown by the test, not lost in moto's thread
            self.failures.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.done.set()

    def _invoke(self, function: Any, event: dict[str, Any]) -> bytes:
        assert function.function_name == f"{STACK}-migrate", function.function_name
        moto_url = urlsplit(event["ResponseURL"])
        ours = urlsplit(self.endpoint)
        event = {**event, "ResponseURL": urlunsplit(moto_url._replace(netloc=ours.netloc))}
        self.events.append(event)
        task = self.workdir / f"var_task_{len(self.events)}"
        zipfile.ZipFile(io.BytesIO(function.code_bytes)).extractall(task)
        env = {
            **function.environment_vars,
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            # The role's session credentials on Lambda; here placeholders moto accepts.
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "PYTHONPATH": f"{task}:{self.client_dir}:{self.sdk_dir}",
        }
        log = self.workdir / f"{function.function_name}-{len(self.events)}.log"
        with rie.running(task, RUNTIME_PYTHON, function.handler, env,
                         runtime_client_dir=self.client_dir, timeout_s=int(function.timeout),
                         log=log) as emulator:
            answer = emulator.invoke(event)
        self.answers.append(answer.payload)
        self.log = log.read_text(errors="replace")
        return json.dumps(answer.payload).encode()


@pytest.fixture(scope="module")
def runtime_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """awslambdaric for the runtime's Python, and the SDK the Lambda runtime ships."""
    if RUNTIME_PYTHON is None:
        _unavailable(f"no Python {RUNTIME} to run the migrate function under the emulator")
    try:
        rie.emulator("x86_64")
        client_dir = rie.runtime_client(RUNTIME, "x86_64")
    except rie.Unavailable as exc:
        _unavailable(f"Lambda's emulator or runtime client cannot be had here: {exc}")
    sdk_dir = tmp_path_factory.mktemp("runtime_sdk")
    site = Path(boto3.__file__).parents[1]
    for name in RUNTIME_SDK:
        (sdk_dir / name).symlink_to(site / name)
    return client_dir, sdk_dir


@pytest.fixture(scope="module")
def moto(runtime_dirs: tuple[Path, Path],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """moto's server on a free loopback port, with the two stand-ins the module docstring lists."""
    from moto.awslambda.models import LambdaFunction
    from moto.cloudformation.models import CloudFormationBackend
    from moto.server import ThreadedMotoServer

    let_through: list[str] = []
    lint = CloudFormationBackend.validate_template

    def validate_like_aws(backend: Any, template: str) -> list[Any]:
        found = lint(backend, template)
        let_through.extend(m.rule.id for m in found if not m.rule.id.startswith("E"))
        return [m for m in found if m.rule.id.startswith("E")]

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    service = LambdaService(endpoint, tmp_path_factory.mktemp("lambda"), *runtime_dirs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CloudFormationBackend, "validate_template", validate_like_aws)
        patch.setattr(LambdaFunction, "invoke",
                      lambda fn, body, headers, response_headers:
                      service.invoke(fn, body, headers, response_headers))
        try:
            yield {"endpoint": endpoint, "lambda": service, "let_through": let_through}
        finally:
            server.stop()


def client(moto: dict, name: str) -> Any:
    return boto3.client(name, endpoint_url=moto["endpoint"], region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def make(target: str, moto: dict) -> subprocess.CompletedProcess:
    """`make deploy|remove STAGE=prod` as the workflows run it, with moto as the AWS account."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SLS_")) and "proxy" not in k.lower()}
    # The CLI waits SLS_AWS_MONITORING_FREQUENCY (5 s by default) before each look at a change
    # set or a stack, made for AWS's minutes; moto's are done before the first look.
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION,
               AWS_ENDPOINT_URL=moto["endpoint"], SLS_AWS_REQUEST_MAX_RETRIES="0",
               SLS_AWS_MONITORING_FREQUENCY="100")
    return subprocess.run(["make", "--no-print-directory", target, f"STAGE={STAGE}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def deployed(node: None, moto: dict, databases: Any) -> dict[str, Any]:
    """An empty real database named by the stage's SSM parameter, then `make deploy`."""
    zip_path = build_zip()
    database_url = databases.create()
    client(moto, "ssm").put_parameter(
        Name=f"/{SERVICE}/{STAGE}/migrations-database-url", Value=database_url,
        Type="SecureString")
    done = make("deploy", moto)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # moto completes the update without waiting for the custom resource: wait for its run.
    assert moto["lambda"].done.wait(120), "moto never invoked the migrate function"
    template = json.loads((ROOT / ".serverless" / "cloudformation-template-update-stack.json")
                          .read_text())
    return {"output": done.stdout + done.stderr, "database_url": database_url,
            "template": template, "zip": zip_path}


def test_make_deploy_creates_the_stack_through_change_sets(deployed: dict, moto: dict) -> None:
    output = deployed["output"]
    assert "Creating new change set" in output and "Executing created change set" in output
    assert f"Service deployed to stack {STACK}" in output
    cfn = client(moto, "cloudformation")
    (stack,) = cfn.describe_stacks(StackName=STACK)["Stacks"]
    # UPDATE_COMPLETE, then CREATE_COMPLETE again once the custom resource answered (moto).
    assert stack["StackStatus"] in ("UPDATE_COMPLETE", "CREATE_COMPLETE")
    events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    stack_events = [e["ResourceStatus"] for e in events if e["LogicalResourceId"] == STACK]
    assert "UPDATE_COMPLETE" in stack_events and "ROLLBACK" not in " ".join(stack_events)
    assert set(moto["let_through"]) == {"W3005"}  # only the framework's known warning


def test_the_stack_holds_every_resource_the_template_declares(deployed: dict, moto: dict) -> None:
    """Every resource of the prod template whose condition holds, but the types moto skips."""
    template = deployed["template"]
    # prod: alarms on, no address; no CloudFront, kill switch or tracing (all opt-in).
    conditions = {"AlarmsOn": True, "AlertEmailSet": False, "CdnOn": False, "TracingOn": False,
                  "KillSwitchOn": False, "KillSwitchBudgetOn": False, "KillSwitchByTag": False,
                  "KillSwitchRequestsOn": False}
    assert set(template["Conditions"]) == set(conditions)
    expected = {name: r["Type"] for name, r in template["Resources"].items()
                if conditions.get(r.get("Condition"), True) and r["Type"] not in MOTO_SKIPS}
    assert {"AlarmTopic", "Dashboard", "HttpApiLogGroup", "Migrations"} <= set(expected)
    pages = client(moto, "cloudformation").get_paginator("list_stack_resources").paginate(
        StackName=STACK)
    found = {r["LogicalResourceId"]: r["ResourceType"] for page in pages
             for r in page["StackResourceSummaries"] if r["LogicalResourceId"]}
    assert found == expected
    (dashboard,) = client(moto, "cloudwatch").list_dashboards()["DashboardEntries"]
    assert dashboard["DashboardName"] == STACK
    (topic,) = client(moto, "sns").list_topics()["Topics"]
    assert topic["TopicArn"].endswith(f":{STACK}-alarms")


def test_the_functions_run_the_uploaded_zip_as_configured(deployed: dict, moto: dict) -> None:
    lam = client(moto, "lambda")
    digest = base64.b64encode(hashlib.sha256(deployed["zip"].read_bytes()).digest()).decode()
    roles = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in client(
        moto, "cloudformation").list_stack_resources(StackName=STACK)["StackResourceSummaries"]}
    expected = {"api": ("handler.api", 512, 25, "ApiRole"),
                "migrate": ("handler.migrate", 256, 60, "MigrateRole")}
    for short, (handler, memory, timeout, role) in expected.items():
        conf = lam.get_function_configuration(FunctionName=f"{STACK}-{short}")
        assert (conf["Handler"], conf["MemorySize"], conf["Timeout"]) == (handler, memory, timeout)
        assert conf["Runtime"] == f"python{RUNTIME}"
        assert conf["CodeSha256"] == digest  # the zip `make package` built, as uploaded
        assert conf["Role"].endswith(f":role/{roles[role]}")
        assert conf["Environment"]["Variables"]["LOG_LEVEL"] == "INFO"
    bucket = deployed["template"]["Resources"]["ApiLambdaFunction"]["Properties"]["Code"]
    key = bucket["S3Key"]
    (name,) = [r["PhysicalResourceId"] for r in client(moto, "cloudformation")
               .list_stack_resources(StackName=STACK)["StackResourceSummaries"]
               if r["LogicalResourceId"] == "ServerlessDeploymentBucket"]
    listed = client(moto, "s3").list_objects_v2(Bucket=name, Prefix=key.rsplit("/", 1)[0])
    assert {o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]} == {
        "cities.zip", "compiled-cloudformation-template.json", "serverless-state.json"}


def test_the_custom_resource_applied_the_migrations_to_the_real_database(
    deployed: dict, moto: dict
) -> None:
    service: LambdaService = moto["lambda"]
    assert service.failures == []
    (answer,) = service.answers  # what the handler PUT to the ResponseURL, and returned
    assert answer.get("Status") == "SUCCESS", (answer, service.log)
    (event,) = service.events
    assert (event["RequestType"], event["LogicalResourceId"]) == ("Create", "Migrations")
    assert event["StackId"].split("/")[1] == STACK
    checksum = deployed["template"]["Resources"]["Migrations"]["Properties"]["MigrationsChecksum"]
    assert event["ResourceProperties"]["MigrationsChecksum"] == checksum
    shipped = [m.name for m in load_migrations()]
    assert run_sql(deployed["database_url"], "SELECT name FROM schema_migrations ORDER BY version"
                   ) == [(name,) for name in shipped]
    # The function read its URL from moto's SSM (runtime secrets mode): no URL in its config.
    migrate = client(moto, "lambda").get_function_configuration(FunctionName=f"{STACK}-migrate")
    assert "MIGRATIONS_DATABASE_URL" not in migrate["Environment"]["Variables"]
    assert deployed["database_url"] not in service.log
    # moto received the SUCCESS answer on its response endpoint and recorded its data.
    from moto.cloudformation.models import cloudformation_backends

    stack = cloudformation_backends[ACCOUNT][REGION].get_stack(STACK)
    recorded = stack.get_custom_resource("Migrations")
    assert recorded.is_created()
    assert recorded.data == {"Version": str(len(shipped)), "Applied": str(len(shipped))}


def test_make_remove_deletes_the_stack_and_everything_in_it(deployed: dict, moto: dict) -> None:
    cfn = client(moto, "cloudformation")
    resources = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    done = make("remove", moto)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert f"Service {SERVICE} has been successfully removed" in done.stdout + done.stderr
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=STACK)
    assert client(moto, "lambda").list_functions()["Functions"] == []
    with pytest.raises(ClientError, match=r"\(404\)"):
        client(moto, "s3").head_bucket(Bucket=physical["ServerlessDeploymentBucket"])
    iam = client(moto, "iam")
    for role in ("ApiRole", "MigrateRole"):
        with pytest.raises(ClientError, match="NoSuchEntity"):
            iam.get_role(RoleName=physical[role])
    assert client(moto, "sns").list_topics()["Topics"] == []
    assert client(moto, "cloudwatch").list_dashboards()["DashboardEntries"] == []
    # The database is the user's: removing the stage leaves its data (and moto sent no Delete
    # to the custom resource; on AWS the function answers it without touching the database).
    assert len(moto["lambda"].events) == 1
    assert run_sql(deployed["database_url"], "SELECT count(*) FROM schema_migrations") == [
        (len(load_migrations()),)]

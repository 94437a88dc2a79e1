"""The spend kill switch: its function and `make unfreeze` against moto's Lambda (put, get and
delete function concurrency), and what moto does not model (budgets, SNS topic policies, the
role's scope) on the generated CloudFormation, with cfn-lint."""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from deploy import kill_switch
from tests.deploy.test_deploy import REGION, ROOT
from tests.support.osls import Packaged, cfn_lint

FUNCTION = "cities-dev-api"
KILL_SWITCH = {"KillSwitchTopic", "KillSwitchTopicPolicy", "KillSwitchBudget",
               "KillSwitchRequestsAlarm", "KillSwitchLogGroup", "KillSwitchRole",
               "KillSwitchFunction", "KillSwitchSubscription", "KillSwitchInvokePermission"}


@pytest.fixture
def lambda_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's Lambda holding a function named as the dev stage's API function."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        role = boto3.client("iam").create_role(
            RoleName="api", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as zf:
            zf.writestr("handler.py", "def api(event, context):\n    return {}\n")
        client = boto3.client("lambda")
        client.create_function(FunctionName=FUNCTION, Runtime="python3.13", Role=role,
                               Handler="handler.api", Code={"ZipFile": code.getvalue()})
        yield client


def reserved(client: object) -> int | None:
    return client.get_function_concurrency(FunctionName=FUNCTION).get(
        "ReservedConcurrentExecutions")


def test_the_budget_message_freezes_the_api_function(lambda_client, monkeypatch, capsys):
    monkeypatch.setenv("API_FUNCTION", FUNCTION)
    assert reserved(lambda_client) is None
    event = {"Records": [{"EventSource": "aws:sns",
                          "Sns": {"Subject": "AWS Budgets: cities-dev-kill-switch has exceeded "
                                             "your alert threshold", "Message": "..."}}]}
    assert kill_switch.handler(event, None) == {"frozen": FUNCTION}
    assert reserved(lambda_client) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["subjects"] == [event["Records"][0]["Sns"]["Subject"]]
    kill_switch.handler({"Records": []}, None)  # again (the alarm after the budget): still 0
    assert reserved(lambda_client) == 0


def test_make_unfreeze_removes_the_reservation_or_restores_a_previous_one(lambda_client, capsys):
    kill_switch.freeze(lambda_client, FUNCTION)
    assert kill_switch.main(["--stage", "dev"]) == 0
    assert reserved(lambda_client) is None
    assert "cities-dev-api: reserved concurrency 0 -> none" in capsys.readouterr().out
    kill_switch.freeze(lambda_client, FUNCTION)
    assert kill_switch.main(["--stage", "dev", "--concurrency", "5"]) == 0
    assert reserved(lambda_client) == 5


def test_make_unfreeze_runs_the_script_for_the_stage() -> None:
    dry = subprocess.run(["make", "-n", "unfreeze", "STAGE=prod", "CONCURRENCY=3"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "deploy/kill_switch.py --stage prod --concurrency 3" in dry


def test_the_inline_source_fits_a_cloudformation_zipfile() -> None:
    source = (ROOT / "deploy" / "kill_switch.py").read_text()
    assert len(source) <= 4096  # CloudFormation's limit for Code.ZipFile
    assert "${" not in source  # the framework would take it for a variable
    tree = ast.walk(ast.parse(source))
    imports = {(node.module if isinstance(node, ast.ImportFrom) else node.names[0].name)
               for node in tree if isinstance(node, ast.Import | ast.ImportFrom)}
    assert imports <= {"__future__", "argparse", "json", "os", "typing", "boto3"}  # the runtime's


def test_the_kill_switch_is_off_by_default(templates: dict) -> None:
    template = templates["update"]
    assert template["Parameters"]["KillSwitchMonthlyUsd"]["Default"] == "0"
    assert template["Parameters"]["KillSwitchHourlyRequests"]["Default"] == "0"
    for name in KILL_SWITCH:
        assert template["Resources"][name]["Condition"].startswith("KillSwitch"), name


@pytest.fixture
def armed(packaged: Packaged) -> tuple[dict, Path]:
    return packaged("dev", "killSwitchBudget=10", "killSwitchScope=tag",
                    "killSwitchHourlyRequests=5000")


def test_a_budget_and_a_request_alarm_notify_the_topic(armed) -> None:
    template, _ = armed
    assert template["Parameters"]["KillSwitchMonthlyUsd"]["Default"] == "10"
    budget = template["Resources"]["KillSwitchBudget"]["Properties"]
    assert {k: budget["Budget"][k] for k in ("BudgetType", "TimeUnit", "BudgetLimit")} == {
        "BudgetType": "COST", "TimeUnit": "MONTHLY",
        "BudgetLimit": {"Amount": {"Ref": "KillSwitchMonthlyUsd"}, "Unit": "USD"}}
    (notify,) = budget["NotificationsWithSubscribers"]
    assert notify["Notification"] == {"NotificationType": "ACTUAL",
                                      "ComparisonOperator": "GREATER_THAN", "Threshold": 100,
                                      "ThresholdType": "PERCENTAGE"}
    assert notify["Subscribers"] == [{"SubscriptionType": "SNS",
                                      "Address": {"Ref": "KillSwitchTopic"}}]
    # This stage's cost allocation tag, with killSwitchScope=tag; the whole account otherwise.
    assert budget["Budget"]["CostFilters"] == {"Fn::If": [
        "KillSwitchByTag",
        {"TagKeyValue": [{"Fn::Join": ["$", ["user:cities-stage", "cities-dev"]]}]},
        {"Ref": "AWS::NoValue"}]}

    alarm = template["Resources"]["KillSwitchRequestsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
        "AWS/Lambda", "Invocations", "Sum", 3600)
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ApiLambdaFunction"}}]
    assert alarm["Threshold"] == {"Ref": "KillSwitchHourlyRequests"}
    assert alarm["AlarmActions"] == [{"Ref": "KillSwitchTopic"}]
    assert alarm["AlarmName"] == "cities-dev-kill-switch-requests"


def test_only_budgets_and_this_stage_alarm_may_publish_to_the_topic(armed) -> None:
    template, _ = armed
    policy = template["Resources"]["KillSwitchTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "KillSwitchTopic"}]
    statements = policy["PolicyDocument"]["Statement"]
    assert {s["Principal"]["Service"] for s in statements} == {
        "budgets.amazonaws.com", "cloudwatch.amazonaws.com"}
    for statement in statements:
        assert (statement["Effect"], statement["Action"], statement["Resource"]) == (
            "Allow", "sns:Publish", {"Ref": "KillSwitchTopic"})
        assert statement["Condition"]["StringEquals"] == {
            "aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    alarm = next(s for s in statements if s["Principal"]["Service"].startswith("cloudwatch"))
    assert alarm["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"].endswith(
        ":alarm:cities-dev-kill-switch-requests")


def test_the_function_may_only_change_this_stage_api_function(armed) -> None:
    template, _ = armed
    role = template["Resources"]["KillSwitchRole"]["Properties"]
    (policy,) = role["Policies"]
    assert role.get("ManagedPolicyArns") is None
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": {"Fn::GetAtt": ["KillSwitchLogGroup", "Arn"]}},
        {"Effect": "Allow", "Action": "lambda:PutFunctionConcurrency",
         "Resource": {"Fn::GetAtt": ["ApiLambdaFunction", "Arn"]}},
    ]
    function = template["Resources"]["KillSwitchFunction"]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["KillSwitchRole", "Arn"]}
    assert function["Environment"]["Variables"] == {"API_FUNCTION": {"Ref": "ApiLambdaFunction"}}
    assert (function["Handler"], function["Runtime"]) == (
        "index.handler", template["Resources"]["ApiLambdaFunction"]["Properties"]["Runtime"])
    # The tested module, as it is: nothing rewritten on the way into the template.
    assert function["Code"]["ZipFile"] == (ROOT / "deploy" / "kill_switch.py").read_text()

    subscription = template["Resources"]["KillSwitchSubscription"]["Properties"]
    assert subscription == {"TopicArn": {"Ref": "KillSwitchTopic"}, "Protocol": "lambda",
                            "Endpoint": {"Fn::GetAtt": ["KillSwitchFunction", "Arn"]}}
    permission = template["Resources"]["KillSwitchInvokePermission"]["Properties"]
    assert (permission["Principal"], permission["SourceArn"]) == (
        "sns.amazonaws.com", {"Ref": "KillSwitchTopic"})
    # Nothing else in the stack gained a concurrency permission.
    others = json.dumps({k: v for k, v in template["Resources"].items() if k != "KillSwitchRole"})
    assert "FunctionConcurrency" not in others


def test_limits_that_would_fire_at_once_are_refused_by_the_deploy(armed) -> None:
    template, _ = armed
    pattern = template["Parameters"]["KillSwitchMonthlyUsd"]["AllowedPattern"]
    allowed = ["0", "1", "10", "5.5", "12.34", "1000000"]
    refused = ["0.00", "0.5", "00", "-1", "1e3", "10.001", "", "ten", "10 "]
    assert [v for v in allowed if re.fullmatch(pattern, v)] == allowed
    assert [v for v in refused if re.fullmatch(pattern, v)] == []
    hourly = template["Parameters"]["KillSwitchHourlyRequests"]["AllowedPattern"]
    assert [v for v in ("0", "1", "5000") if re.fullmatch(hourly, v)] == ["0", "1", "5000"]
    assert [v for v in ("00", "-1", "1.5", "5e3", "") if re.fullmatch(hourly, v)] == []


def test_the_armed_template_passes_cfn_lint(armed) -> None:
    _, out = armed
    found = cfn_lint(out)
    assert found.returncode == 0, found.stdout + found.stderr

"""The owner's alarms, topic and dashboard, asserted on the generated CloudFormation (moto does
not create CloudWatch alarms from a template) and checked by cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy.test_deploy import resources
from tests.support.osls import Packaged, cfn_lint

ALARMED = {"ApiErrorsAlarm", "ApiThrottlesAlarm", "ApiDurationAlarm", "Http5xxRateAlarm",
           "DatabaseUnavailableRateAlarm", "MigrateErrorsAlarm"}


@pytest.fixture
def prod(packaged: Packaged) -> tuple[dict, Path]:
    return packaged("prod", "alertEmail=owner@example.com")


def metric_dimensions(alarm: dict) -> list[list[dict]]:
    props = alarm["Properties"]
    if "Metrics" in props:
        return [m["MetricStat"]["Metric"].get("Dimensions", []) for m in props["Metrics"]
                if "MetricStat" in m]
    return [props.get("Dimensions", [])]


def test_alarms_are_off_by_default_and_on_for_prod(templates: dict, prod) -> None:
    assert templates["update"]["Parameters"]["Alarms"]["Default"] == "off"
    template, _ = prod
    assert template["Parameters"]["Alarms"]["Default"] == "on"
    assert template["Conditions"]["AlarmsOn"] == {"Fn::Equals": [{"Ref": "Alarms"}, "on"]}
    alarms = {k: v for k, v in resources(template, "AWS::CloudWatch::Alarm").items()
              if v["Condition"] != "KillSwitchRequestsOn"}  # tests/deploy/test_kill_switch.py
    assert alarms.keys() == ALARMED
    for name in ("AlarmTopic", "Dashboard", "MigrateErrorsFilter", *ALARMED):
        assert template["Resources"][name]["Condition"] == "AlarmsOn", name
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_each_alarm_names_this_stage_function_or_api(prod) -> None:
    template, _ = prod
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    function = {"Name": "FunctionName", "Value": {"Ref": "ApiLambdaFunction"}}
    for name in ("ApiErrorsAlarm", "ApiThrottlesAlarm", "ApiDurationAlarm",
                 "DatabaseUnavailableRateAlarm"):
        assert all(dims == [function] for dims in metric_dimensions(alarms[name])), name
    api = [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}, {"Name": "Stage", "Value": "$default"}]
    assert metric_dimensions(alarms["Http5xxRateAlarm"]) == [api, api]
    # The database rate reads the app's own EMF metrics (cities/ops/metrics.py).
    stats = [m["MetricStat"]["Metric"] for m in alarms["DatabaseUnavailableRateAlarm"][
        "Properties"]["Metrics"] if "MetricStat" in m]
    assert {(s["Namespace"], s["MetricName"]) for s in stats} == {
        ("cities", "DatabaseUnavailable"), ("cities", "Requests")}
    migrate = template["Resources"]["MigrateErrorsFilter"]["Properties"]
    assert migrate["LogGroupName"] == {"Ref": "MigrateLogGroup"}
    assert (migrate["MetricTransformations"][0]["MetricName"]
            == alarms["MigrateErrorsAlarm"]["Properties"]["MetricName"]
            == "cities-prod-migrate-errors")


def test_the_duration_alarm_is_80_percent_of_the_function_timeout(prod) -> None:
    template, _ = prod
    timeout = template["Resources"]["ApiLambdaFunction"]["Properties"]["Timeout"]
    alarm = template["Resources"]["ApiDurationAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Statistic"]) == ("Duration", "Maximum")
    assert alarm["Threshold"] == timeout * 1000 * 0.8


def test_the_alert_email_is_an_optional_subscription(templates: dict, prod) -> None:
    assert templates["update"]["Parameters"]["AlertEmail"]["Default"] == ""
    template, _ = prod
    assert template["Parameters"]["AlertEmail"]["Default"] == "owner@example.com"
    subscription = template["Resources"]["AlarmEmail"]
    assert subscription["Condition"] == "AlertEmailSet"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlertEmail"}}


def test_one_dashboard_shows_this_stage(prod) -> None:
    template, _ = prod
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body, names = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert names == {"Function": {"Ref": "ApiLambdaFunction"}, "Api": {"Ref": "HttpApi"}}
    widgets = json.loads(body.replace("${AWS::Region}", "eu-west-1"))["widgets"]
    assert {w["properties"]["title"] for w in widgets} >= {"Requests and 5xx", "HTTP API"}


def test_the_prod_template_passes_cfn_lint(prod) -> None:
    _, out = prod
    found = cfn_lint(out)
    assert found.returncode == 0, found.stdout + found.stderr

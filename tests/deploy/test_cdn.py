"""CloudFront in front of the HTTP API (stage param `cdn`) and X-Ray tracing (`tracing`), both
off by default, asserted on the generated CloudFormation (moto creates neither a distribution
nor a trace) and checked by cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy.test_deploy import resources
from tests.support.osls import Packaged, cfn_lint

CDN = {"CdnForwardedHost", "CdnCachePolicy", "CdnOriginRequestPolicy", "CdnDistribution"}
XRAY = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]


@pytest.fixture
def fronted(packaged: Packaged) -> tuple[dict, Path]:
    return packaged("dev", "cdn=on", "sharedCacheMaxAge=60", "tracing=on")


def test_cloudfront_and_tracing_are_off_by_default(templates: dict) -> None:
    template = templates["update"]
    assert template["Parameters"]["Cdn"]["Default"] == "off"
    assert template["Parameters"]["Tracing"]["Default"] == "off"
    for name in CDN:
        assert template["Resources"][name]["Condition"] == "CdnOn", name
    assert template["Outputs"]["CdnUrl"]["Condition"] == "CdnOn"
    api = template["Resources"]["ApiLambdaFunction"]["Properties"]
    assert "TracingConfig" not in api
    assert api["Environment"]["Variables"]["SHARED_CACHE_MAX_AGE"] == "0"  # no caching


def test_the_cache_keeps_only_what_the_api_allows(fronted) -> None:
    template, _ = fronted
    assert template["Parameters"]["Cdn"]["Default"] == "on"
    config = template["Resources"]["CdnCachePolicy"]["Properties"]["CachePolicyConfig"]
    # Nothing cached unless the origin's Cache-Control says so; max-age + stale fit under MaxTTL.
    assert (config["MinTTL"], config["DefaultTTL"]) == (0, 0)
    assert config["MaxTTL"] >= 2 * 3600
    key = config["ParametersInCacheKeyAndForwardedToOrigin"]
    # Authorization reaches the API only from the key; Origin keys API Gateway's CORS headers.
    assert key["HeadersConfig"] == {"HeaderBehavior": "whitelist",
                                    "Headers": ["Authorization", "Origin"]}
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}

    behavior = template["Resources"]["CdnDistribution"]["Properties"]["DistributionConfig"][
        "DefaultCacheBehavior"]
    assert set(behavior["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST",
                                               "DELETE"}
    assert behavior["CachedMethods"] == ["GET", "HEAD"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["CachePolicyId"] == {"Ref": "CdnCachePolicy"}
    assert behavior["OriginRequestPolicyId"] == {"Ref": "CdnOriginRequestPolicy"}
    assert "ForwardedValues" not in behavior and "DefaultTTL" not in behavior  # no legacy TTLs
    api = template["Resources"]["ApiLambdaFunction"]["Properties"]
    assert api["Environment"]["Variables"]["SHARED_CACHE_MAX_AGE"] == "60"


def test_every_request_header_the_api_reads_reaches_it(fronted, templates) -> None:
    template, _ = fronted
    policy = template["Resources"]["CdnOriginRequestPolicy"]["Properties"][
        "OriginRequestPolicyConfig"]
    forwarded = set(policy["HeadersConfig"]["Headers"])
    keyed = set(template["Resources"]["CdnCachePolicy"]["Properties"]["CachePolicyConfig"][
        "ParametersInCacheKeyAndForwardedToOrigin"]["HeadersConfig"]["Headers"])
    assert "Authorization" not in forwarded  # CloudFront refuses it there (HTTP 400)
    assert "Host" not in forwarded  # API Gateway answers 403 to a Host not its own
    (api,) = resources(templates["update"], "AWS::ApiGatewayV2::Api").values()
    read = set(api["Properties"]["CorsConfiguration"]["AllowHeaders"])  # every header it reads
    assert read <= forwarded | keyed
    assert {"Accept", "X-Forwarded-Host", "Access-Control-Request-Method",
            "Access-Control-Request-Headers"} <= forwarded
    assert policy["CookiesConfig"] == {"CookieBehavior": "none"}  # else no 304s from CloudFront
    assert policy["QueryStringsConfig"] == {"QueryStringBehavior": "all"}


def test_generated_urls_name_the_distribution(fronted) -> None:
    template, _ = fronted
    origin = template["Resources"]["CdnDistribution"]["Properties"]["DistributionConfig"][
        "Origins"][0]
    assert origin["DomainName"] == {
        "Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.amazonaws.com"}
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    host = template["Resources"]["CdnForwardedHost"]["Properties"]
    assert "request.headers['x-forwarded-host'] = {value: request.headers.host.value}" in host[
        "FunctionCode"]
    behavior = template["Resources"]["CdnDistribution"]["Properties"]["DistributionConfig"][
        "DefaultCacheBehavior"]
    assert behavior["FunctionAssociations"] == [{
        "EventType": "viewer-request",
        "FunctionARN": {"Fn::GetAtt": ["CdnForwardedHost", "FunctionMetadata.FunctionARN"]}}]
    # The app trusts X-Forwarded-Host only when PUBLIC_HOSTS lists it (cities/http/gateway.py).
    variables = template["Resources"]["ApiLambdaFunction"]["Properties"]["Environment"][
        "Variables"]
    assert variables["PUBLIC_HOSTS"] == {"Fn::If": [
        "CdnOn", {"Fn::GetAtt": ["CdnDistribution", "DomainName"]}, {"Ref": "AWS::NoValue"}]}
    assert template["Outputs"]["CdnUrl"]["Value"] == {
        "Fn::Sub": "https://${CdnDistribution.DomainName}"}


def test_tracing_is_active_and_the_role_may_write_traces(fronted, templates) -> None:
    template, _ = fronted
    api = template["Resources"]["ApiLambdaFunction"]["Properties"]
    assert api["TracingConfig"] == {"Mode": "Active"}
    assert api["Role"] == {"Fn::GetAtt": ["ApiRole", "Arn"]}
    condition, traced, untraced = template["Resources"]["ApiRole"]["Properties"]["Policies"][
        "Fn::If"]
    assert condition == "TracingOn"
    assert traced[:-1] == untraced  # the same policies, and the X-Ray one
    assert traced[-1]["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": XRAY, "Resource": "*"}]
    assert template["Conditions"]["TracingOn"] == {"Fn::Equals": [{"Ref": "Tracing"}, "on"]}
    assert template["Parameters"]["Tracing"]["Default"] == "on"
    # No tracing SDK: the zip's requirements name neither the X-Ray SDK nor Powertools.
    requirements = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text().lower()
    assert "xray" not in requirements and "powertools" not in requirements
    # Off, the policy is not attached (the same Fn::If, false) and no TracingConfig is set.
    default = templates["update"]["Resources"]
    assert "TracingConfig" not in default["ApiLambdaFunction"]["Properties"]
    assert json.dumps(default["ApiRole"]).count("xray:") == 2  # only in the Fn::If's true list


def test_the_fronted_template_passes_cfn_lint(fronted) -> None:
    _, out = fronted
    found = cfn_lint(out)
    assert found.returncode == 0, found.stdout + found.stderr

"""The GitHub deploy role (deploy/github-deploy-role.yml): cfn-lint clean, trusted only by this
repository's workflows through GitHub's OIDC, and allowed what a deploy and a remove need.

"What they need" is derived, so a change elsewhere fails here: for every resource type of the
generated templates (prod, the stage with the most resources), the permissions CloudFormation's
own resource handlers declare (the registry schemas cfn-lint ships) are granted or written down
below as not needed, with the reason; and every AWS call the pinned CLI's deploy and remove code
makes (its source, node_modules/osls) maps to a granted action.
"""

from __future__ import annotations

import json
import re
import subprocess
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint
import pytest
import yaml
from cfnlint.decode import decode_str

from tests.support.osls import CFN_LINT, Packaged

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "github-deploy-role.yml"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
OSLS_AWS = ROOT / "node_modules" / "osls" / "lib" / "plugins" / "aws"

# Actions AWS authorizes only on "*" (no resource type in IAM's service reference).
STAR_ONLY = {
    "cloudformation:ValidateTemplate": "no resource type; it only parses a template",
    # API Gateway's "Configuring logging for an HTTP API" lists these on "*": the prod stage's
    # access logs are delivered through them.
    "logs:CreateLogDelivery": "log delivery has no resource type (HTTP API access logs)",
    "logs:GetLogDelivery": "log delivery has no resource type (HTTP API access logs)",
    "logs:UpdateLogDelivery": "log delivery has no resource type (HTTP API access logs)",
    "logs:DeleteLogDelivery": "log delivery has no resource type (HTTP API access logs)",
    "logs:ListLogDeliveries": "log delivery has no resource type (HTTP API access logs)",
    "logs:PutResourcePolicy": "the account's Logs resource policy that lets API Gateway deliver",
    "logs:DescribeResourcePolicies": "lists the account's Logs resource policies",
}

# Statements scoped to the region's resources of one kind, not to the service's names.
REGION_SCOPED = {
    "HttpApis": "HTTP API IDs are random and IAM's API Gateway ARNs carry no name: this "
                "region's HTTP APIs (/apis/*), not its REST APIs, domains or VPC links",
    "DescribeLogGroups": "listing log groups filters by prefix, not by ARN (read only)",
    "CdnDistribution": "CloudFront distribution and policy ids are random and their ARNs carry "
                       "no name: this account's (CloudFront is global), only for the `cdn` param",
}

# Handler permissions (CloudFormation's registry schemas) this service's templates never need.
NOT_NEEDED = {
    r"^billing:GetBillingViewData$": "the budget names no billing view (the account's own)",
    r"^cloudfront:(CreateConnectionGroup|GetConnectionGroup|GetVpcOrigin|"
    r"UpdateDistributionWithStagingConfig)$":
        "the distribution uses no connection group, VPC origin or staging distribution",
    r"^cloudfront:CreateDistributionWithTags$": "no IAM action of its own: IAM authorizes that "
                                                "call as CreateDistribution and TagResource",
    r"^kms:": "no customer-managed KMS key: functions, logs and the bucket use AWS-owned keys",
    r"^ec2:": "the functions run outside any VPC",
    r"^elasticfilesystem:|^s3files:": "no file system is mounted",
    r"^s3tables:|^s3:.*MetadataTable|^s3:UpdateBucketMetadata": "no S3 table or metadata table",
    r"^firehose:|^s3:REST\.PUT\.OBJECT$|^logs:PutBearerTokenAuthentication$":
        "log groups deliver to no Firehose or S3 and use no bearer tokens",
    r"^logs:(Put|Delete)(DataProtection|Index)Policy$|^logs:(Associate|Disassociate)KmsKey$|"
    r"^logs:PutLogGroupDeletionProtection$": "log groups set no data protection, index, KMS "
                                             "or deletion protection",
    r"^lambda:(Put|Delete)FunctionCodeSigningConfig$|^lambda:GetCodeSigningConfig$":
        "no code signing",
    r"^lambda:(PutRuntimeManagementConfig|PutFunctionRecursionConfig|PutFunctionScalingConfig|"
    r"PassCapacityProvider|AssociateRuntimeAlias|GetLayerVersion|PublishVersion)$":
        "no runtime pinning, recursion, scaling or capacity settings, layers or versions "
        "(versionFunctions: false)",
    r"^s3:Put(BucketAbac|AnalyticsConfiguration|BucketCORS|InventoryConfiguration|"
    r"LifecycleConfiguration|MetricsConfiguration|BucketNotification|BucketReplication|"
    r"BucketWebsite|AccelerateConfiguration|ReplicationConfiguration|ObjectAcl|BucketAcl|"
    r"BucketObjectLockConfiguration|BucketLogging|BucketVersioning|ObjectLockConfiguration|"
    r"IntelligentTieringConfiguration)$|^s3:DeleteBucket(Website|AnalyticsConfiguration|Cors|"
    r"MetricsConfiguration|Encryption|Lifecycle|Replication)$|^s3:(Tag|Untag)Resource$":
        "the deployment bucket sets only encryption and its policy (the framework's create "
        "template); reading the rest is granted, changing it is not",
    r"^logs:DeleteResourcePolicy$": "no log group sets its own resource policy",
    r"^sns:PutDataProtectionPolicy$": "the topic sets no data protection policy",
    r"^iam:(Attach|Detach)RolePolicy$|^iam:(Put|Delete)RolePermissionsBoundary$":
        "the roles have inline policies only: no managed policy, no boundary to change",
    r"^iam:GetRole$|^iam:PassRole$": "granted on the service's roles only (ServiceRoles)",
    r"^apigateway:(Tag|Untag)Resource$": "not IAM actions: tagging is PUT/DELETE on /tags/*",
    r"^s3:getObject$": "an API imported from S3 (Body/BodyS3Location): not used",
}

# The CLI's SDK calls whose IAM action has another name, or needs none.
CALL_ACTIONS = {
    "s3:HeadBucket": ["s3:ListBucket"],
    "s3:HeadObject": ["s3:GetObject"],
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:ListObjectVersions": ["s3:ListBucketVersions"],
    "s3:DeleteObjects": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    "apigatewayv2:GetApi": ["apigateway:GET"],
}
# Calls the deploy and remove of this service never make, with the reason.
# Each names the serverless.yml setting that would make the CLI send it, which must stay unset.
CALLS_NOT_MADE = {
    "ecr:DeleteRepository": ("provider.ecr", "only when the service has images"),
    "api-gateway:GetApiKey": ("provider.apiGateway", "only for REST API keys"),
    "cloudformation:ListExports": ("provider.httpApi.id", "only for an imported HTTP API"),
    "cloudformation:SetStackPolicy": ("provider.stackPolicy", "only with a stack policy"),
}
SERVICE_PREFIX = {"cloudwatch-logs": "logs", "api-gateway": "api-gateway"}
# Uploads go through @aws-sdk/lib-storage (PutObject, multipart above 5 MB: the zip is 12 MB).
UPLOAD_ACTIONS = ["s3:PutObject", "s3:AbortMultipartUpload"]


@cache
def role_template() -> dict:
    template, matches = decode_str(TEMPLATE.read_text())
    assert not matches, matches
    return template


def statements() -> list[dict]:
    (policy,) = role_template()["Resources"]["DeployRole"]["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def granted(action: str) -> list[dict]:
    """The statements allowing `action` (IAM matches action names case-insensitively)."""
    return [s for s in statements() if s["Effect"] == "Allow" and any(
        fnmatchcase(action.lower(), pattern.lower()) for pattern in _as_list(s["Action"]))]


def test_the_template_passes_cfn_lint() -> None:
    """cfn-lint also checks every action name against IAM's list of actions."""
    done = subprocess.run([CFN_LINT, "--", str(TEMPLATE)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_only_this_repositorys_workflows_may_assume_the_role() -> None:
    role = role_template()["Resources"]["DeployRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(trust["Principal"]) == {"Federated"}
    assert set(trust["Condition"]) == {"StringEquals"}  # exact subjects, no StringLike wildcard
    condition = trust["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    subjects = json.dumps(condition["token.actions.githubusercontent.com:sub"])
    for subject in ("environment:${ProductionEnvironment}", "ref:refs/heads/${MainBranch}",
                    ":pull_request"):
        assert f"repo:${{GitHubRepository}}:{subject.lstrip(':')}" in subjects
    assert "*" not in subjects
    assert "ManagedPolicyArns" not in role and "PermissionsBoundary" not in role
    provider = role_template()["Resources"]["GitHubOidcProvider"]["Properties"]
    assert provider["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["ClientIdList"] == ["sts.amazonaws.com"]


def test_the_trusted_subjects_are_the_ones_the_workflows_present() -> None:
    """A job naming an environment presents `environment:<name>` as its subject, not its
    branch: the prod deploy job's environment must be the one the role trusts."""
    parameters = role_template()["Parameters"]
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert ci["jobs"]["deploy"]["environment"] == parameters["ProductionEnvironment"]["Default"]
    preview = yaml.safe_load((ROOT / ".github/workflows/preview.yml").read_text())
    assert preview[True]["pull_request"]  # YAML reads the key `on` as True
    assert all("environment" not in job for job in preview["jobs"].values())
    assert parameters["AllowPullRequests"]["Default"] == "true"


def test_nothing_is_allowed_on_every_resource_but_what_aws_only_allows_so() -> None:
    for statement in statements():
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        assert statement["Effect"] == "Allow"
        if "*" in _as_list(statement["Resource"]):
            assert statement["Resource"] == "*"
            assert set(_as_list(statement["Action"])) <= set(STAR_ONLY), statement["Sid"]


def test_no_wildcard_action_and_nothing_account_wide() -> None:
    for statement in statements():
        for action in _as_list(statement["Action"]):
            assert "*" not in action, action  # no iam:*, s3:*, "*"
        resources = json.dumps(statement["Resource"])
        # Every scoped statement names the service, or is one of the region-wide kinds above.
        assert ("${ServiceName}" in resources or statement["Resource"] == "*"
                or statement["Sid"] in REGION_SCOPED), statement["Sid"]
    iam = {a for s in statements() for a in _as_list(s["Action"]) if a.startswith("iam:")}
    assert not iam & {"iam:CreateUser", "iam:CreatePolicy", "iam:CreatePolicyVersion",
                      "iam:AttachRolePolicy", "iam:AttachUserPolicy", "iam:CreateAccessKey",
                      "iam:PutUserPolicy", "iam:CreateOpenIDConnectProvider"}
    for statement in statements():
        if any(a.startswith("iam:") for a in _as_list(statement["Action"])):
            assert statement["Resource"] == (
                {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${ServiceName}-*"})
    (pass_role,) = granted("iam:PassRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    (invoke,) = granted("lambda:InvokeFunction")
    assert invoke["Resource"]["Fn::Sub"].endswith(":function:${ServiceName}-*-migrate")


@pytest.fixture
def prod_templates(packaged: Packaged) -> list[dict]:
    """The create and update templates `osls package --stage prod` generates."""
    update, out = packaged("prod")
    create = json.loads((out / "cloudformation-template-create-stack.json").read_text())
    return [create, update]


@cache
def handler_permissions(resource_type: str) -> set[str]:
    """What CloudFormation's handlers for `resource_type` may call, from its registry schema."""
    index = json.loads((SCHEMAS / "providers" / "us-east-1.json").read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{index[resource_type]}.json").read_text())
    return {permission for name in ("create", "read", "update", "delete")
            for permission in schema["handlers"].get(name, {}).get("permissions", [])}


def not_needed(permission: str) -> str | None:
    return next((why for pattern, why in NOT_NEEDED.items() if re.search(pattern, permission)),
                None)


def test_every_resource_type_the_service_deploys_is_covered(prod_templates: list[dict]) -> None:
    """A new resource type in serverless.yml or deploy/*.yml fails here until the role allows
    what its handlers need (or this file says why it does not need it)."""
    types = {r["Type"] for t in prod_templates for r in t["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::CloudWatch::Alarm", "Custom::Migrations"} <= types
    missing = {}
    for resource_type in sorted(types):
        if resource_type.startswith("Custom::"):
            # CloudFormation invokes the custom resource's function with the caller's rights.
            needed = {"lambda:InvokeFunction"}
        else:
            needed = handler_permissions(resource_type)
        lacking = sorted(p for p in needed if not granted(p) and not not_needed(p))
        if lacking:
            missing[resource_type] = lacking
    assert missing == {}


def test_every_not_needed_entry_still_matches_something(prod_templates: list[dict]) -> None:
    """No stale reason: each written-down exclusion matches a permission of a deployed type."""
    types = {r["Type"] for t in prod_templates for r in t["Resources"].values()
             if not r["Type"].startswith("Custom::")}
    permissions = set().union(*(handler_permissions(t) for t in types))
    for pattern in NOT_NEEDED:
        assert any(re.search(pattern, p) for p in permissions), pattern


def cli_calls() -> set[str]:
    """`service:Operation` for every SDK command the CLI's deploy, remove and info code sends."""
    calls = set()
    for path in OSLS_AWS.glob("*/**/*.js"):
        if path.relative_to(OSLS_AWS).parts[0] not in ("deploy", "remove", "lib", "info"):
            continue
        source = path.read_text()
        imported = {}
        for names, client in re.findall(
                r"\{([^}]*)\}\s*=\s*require\(\s*'@aws-sdk/client-([a-z0-9-]+)'\s*\)", source):
            for name in re.findall(r"\w+Command", names):
                imported[name] = SERVICE_PREFIX.get(client, client)
        for command in re.findall(r"new (\w+Command)\(", source):
            calls.add(f"{imported[command]}:{command.removesuffix('Command')}")
    return calls


def test_every_call_the_cli_makes_to_deploy_and_remove_is_allowed(node: None) -> None:
    calls = cli_calls()
    assert {"cloudformation:CreateChangeSet", "s3:ListObjectsV2", "cloudformation:DeleteStack",
            "lambda:GetFunction"} <= calls  # the scan found the code
    lacking = []
    for call in sorted(calls - set(CALLS_NOT_MADE)):
        for action in CALL_ACTIONS.get(call, [call]):
            if not granted(action):
                lacking.append((call, action))
    for action in UPLOAD_ACTIONS:
        if not granted(action):
            lacking.append(("lib-storage Upload", action))
    assert lacking == []
    assert set(CALLS_NOT_MADE) <= calls  # each exclusion names a call the CLI has


def test_the_settings_that_would_need_more_calls_stay_unset() -> None:
    service = yaml.safe_load((ROOT / "serverless.yml").read_text())
    for setting, _why in CALLS_NOT_MADE.values():
        value: Any = service
        for key in setting.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        assert value is None, setting


def test_the_preview_scripts_calls_are_allowed() -> None:
    """deploy/ci.py writes and deletes a preview stage's parameters and reads its outputs."""
    source = (ROOT / "deploy" / "ci.py").read_text()
    for method, action in (("put_parameter", "ssm:PutParameter"),
                           ("delete_parameters", "ssm:DeleteParameters"),
                           ("describe_stacks", "cloudformation:DescribeStacks")):
        assert f".{method}(" in source
        assert granted(action), action


def test_the_guide_names_every_variable_and_secret_the_workflows_read() -> None:
    """docs/deploy.md's table, against `vars.X` and `secrets.X` in .github/workflows."""
    workflows = "".join(p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    read = set(re.findall(r"\b(vars|secrets)\.([A-Z][A-Z0-9_]*)", workflows))
    guide = (ROOT / "docs" / "deploy.md").read_text()
    rows = set(re.findall(r"^\s*\| (variable|secret) \| `([A-Z][A-Z0-9_]*)` \|", guide, re.M))
    named = {("vars" if kind == "variable" else "secrets", name) for kind, name in rows}
    assert ("vars", "AWS_DEPLOY_ROLE_ARN") in read
    assert named == read
    assert "deploy/github-deploy-role.yml" in guide and "GitHubRepository=" in guide

"""The first deploy in a new account (issue 16 §3), one test per finding, on the
transformed templates. Also here: reserved concurrency (test_capacity.py), metrics per
stack and the alarm's metric math (test_observability.py), the issuer's least privilege
(test_tokens.py), the license (test_authorizer_app.py, test_nesting.py).
"""

from __future__ import annotations

import json

import pytest

from deployment import INSTANCES, PLATFORM_SAM, EXAMPLE_SAM, deploy, example_on, platform_alone, ssm_arn
from templatelib import (
    ACCOUNT,
    PARTITION,
    TEMPLATES,
    Resolver,
    as_list,
    evaluate,
    load_template,
    role_statements,
)

ROOT_ARN = f"arn:{PARTITION}:iam::{ACCOUNT}:root"

# Properties that give a resource a physical name unique per account and Region (or
# per account: IAM).
NAME_PROPERTIES = {
    "AWS::KMS::Alias": "AliasName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudTrail::Trail": "TrailName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::ApiGateway::ApiKey": "Name",
    "AWS::ApiGateway::UsagePlan": "UsagePlanName",
    "AWS::SSM::Parameter": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::EC2::SecurityGroup": "GroupName",
}


def physical_names(stacks: list[Resolver]) -> dict[tuple[str, str], str]:
    """(type, fixed physical name) -> where, for every resource of `stacks` that names
    itself."""
    out = {}
    for r in stacks:
        for lid, res in r.resources().items():
            prop = NAME_PROPERTIES.get(res["Type"])
            if prop and prop in res.get("Properties", {}):
                out[(res["Type"], res["Properties"][prop])] = f"{r.stack_name}/{lid}"
    return out


def everything(platform: Resolver) -> list[Resolver]:
    return [platform] + [platform.nested(lid) for lid in platform.nested_ids()]


# ------------------------------------------------------------------ KMS key policies
def test_no_key_policy_names_a_principal_the_deploy_creates():
    """KMS checks that every principal of a key policy exists and is visible; a role
    created seconds earlier in the same deploy may not be, and CloudFormation does not
    retry MalformedPolicyDocumentException. Both key policies name the account and `*`
    only; the issuer's role appears in a condition, which KMS does not resolve."""
    r = deploy().platform
    for lid in ("TokenSigningKey", "StoreKey"):
        stmts = as_list(r.resources()[lid]["Properties"]["KeyPolicy"]["Statement"])
        principals = set()
        for s in stmts:
            p = s["Principal"]
            principals |= {p} if isinstance(p, str) else {x for v in p.values() for x in as_list(v)}
        assert principals <= {ROOT_ARN, "*"}, (lid, principals)
        for s in r.cfn["Resources"][lid]["Properties"]["KeyPolicy"]["Statement"]:
            assert "GetAtt" not in json.dumps(s.get("Principal")), (lid, s)
            assert "Ref" not in json.dumps(s.get("Principal")), (lid, s)
    (deny,) = [s for s in as_list(r.resources()["TokenSigningKey"]["Properties"]["KeyPolicy"]["Statement"])
               if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": r.getatt("TokenIssuerFunctionRole", "Arn")}}


def test_the_store_key_is_used_through_ssm_only_and_granted_through_iam():
    r = deploy().platform
    key = r.resources()["StoreKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"], key["EnableKeyRotation"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", True)
    stmts = as_list(key["KeyPolicy"]["Statement"])
    arn = r.getatt("StoreKey", "Arn")
    for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"):
        # whoever the principal and whatever its IAM policy: never outside SSM
        assert evaluate(stmts, action, arn, {"kms:ViaService": "s3.us-east-1.amazonaws.com"}, ROOT_ARN) == "deny"
        assert evaluate(stmts, action, arn, {}, ROOT_ARN) == "deny"
        assert evaluate(stmts, action, arn, {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}, ROOT_ARN) == "allow"
    # the alias carries the stack's name
    assert r.resources()["StoreKeyAlias"]["Properties"]["AliasName"] == f"alias/{r.stack_name}/store"


# ------------------------------------------------------------------ the SSM endpoint
def test_the_ssm_endpoint_breaks_no_other_ssm_client_in_the_vpc():
    """With private DNS, every SSM client in the VPC (Session Manager, ECS secrets, other
    functions) resolves to the endpoint and times out unless its group admits them. Off:
    only the clients pointed at it (AWS_ENDPOINT_URL_SSM) use it, and they are members
    of the group it admits."""
    d = deploy("api-key")
    ep = d.platform.resources()["SsmEndpoint"]["Properties"]
    assert ep["PrivateDnsEnabled"] is False
    url = d.platform.exports()[f"{d.platform.stack_name}-SsmEndpointUrl"]
    dns = d.platform.getatt("SsmEndpoint", "DnsEntries")[0].split(":", 1)[1]
    assert url == f"https://{dns}"
    tutor = d.example.resources()["TutorServiceFunction"]["Properties"]
    assert tutor["Environment"]["Variables"]["AWS_ENDPOINT_URL_SSM"] == url
    assert tutor["VpcConfig"]["SecurityGroupIds"] == ["ApiClientSecurityGroup"]
    # the endpoint still restricts nobody of this account (their IAM policies do)
    stmts = as_list(ep["PolicyDocument"]["Statement"])
    for action in ("ssm:PutParameter", "ssm:StartSession", "ssm:GetParameter"):
        assert evaluate(stmts, action, ssm_arn("/any"), {"aws:PrincipalAccount": ACCOUNT}) == "allow"
        assert evaluate(stmts, action, ssm_arn("/any"), {"aws:PrincipalAccount": "210987654321"}) != "allow"


def test_without_an_endpoint_of_its_own_ssm_is_reached_by_its_regional_name():
    r = platform_alone(CreateSsmEndpoint="false")
    assert not r.live("SsmEndpoint")
    assert r.exports()[f"{r.stack_name}-SsmEndpointUrl"] == "https://ssm.us-east-1.amazonaws.com"


def test_a_second_environment_deploys_in_the_same_vpc():
    """A VPC holds one private-DNS endpoint per service: two stacks that each made one
    could not both deploy. Neither makes one."""
    dev = platform_alone(stack_name="svcauth-dev", prefix="dev-", Environment="dev")
    prod = platform_alone(stack_name="svcauth-prod", prefix="prod-", Environment="prod")
    private_dns = [(r.stack_name, lid) for r in (dev, prod)
                   for lid, ep in r.resources("AWS::EC2::VPCEndpoint").items()
                   if ep["Properties"].get("PrivateDnsEnabled")]
    assert private_dns == []
    for r in (dev, prod):
        assert {lid for lid in r.resources("AWS::EC2::VPCEndpoint")} == {"ExecuteApiEndpoint", "SsmEndpoint"}
        assert r.resolve(r.cfn["Resources"]["SsmEndpoint"]["Properties"]["VpcId"]) == dev.params["VpcId"]
    assert not physical_names(everything(dev)).keys() & physical_names(everything(prod)).keys()


def test_negative_control_private_dns_on_the_ssm_endpoint_is_caught():
    import copy
    sam2 = copy.deepcopy(PLATFORM_SAM)
    sam2["Resources"]["SsmEndpoint"]["Properties"]["PrivateDnsEnabled"] = True
    r = platform_alone(sam2)
    assert r.resources()["SsmEndpoint"]["Properties"]["PrivateDnsEnabled"] is True


# ------------------------------------------------------------------ physical names
def test_two_platform_stacks_of_one_environment_share_no_physical_name():
    """The signing key's alias was alias/svcauth-token-{env}: a second stack of the same
    environment failed. Every fixed name carries the stack's name."""
    a = platform_alone(stack_name="svcauth-a", prefix="a-", Environment="dev", EnableCloudTrail="true")
    b = platform_alone(stack_name="svcauth-b", prefix="b-", Environment="dev", EnableCloudTrail="true")
    names_a, names_b = physical_names(everything(a)), physical_names(everything(b))
    assert ("AWS::KMS::Alias", "alias/svcauth-a/token-signing") in names_a
    assert not names_a.keys() & names_b.keys(), names_a.keys() & names_b.keys()
    # and the examples attached to each
    ea = example_on(a, "both", stack_name="svcauth-a-example", prefix="ea-", ServiceRolePrefix="svcauth-a")
    eb = example_on(b, "both", stack_name="svcauth-b-example", prefix="eb-", ServiceRolePrefix="svcauth-b")
    assert not physical_names([ea]).keys() & physical_names([eb]).keys()


@pytest.mark.parametrize("stacks", ["platform", "example"])
def test_every_fixed_name_carries_the_stack_name(stacks):
    """...or a physical id CloudFormation generates (an API's execution log group is
    named after the API's id), which is unique anyway."""
    platform = platform_alone(stack_name="svcauth-zz9", prefix="gen9-", EnableCloudTrail="true")
    rs = everything(platform) if stacks == "platform" else [
        example_on(platform, mode, stack_name="team-zz8", prefix="gen8-", ServiceRolePrefix="team-zz8")
        for mode in ("both", "token")]
    for (kind, name), where in physical_names(rs).items():
        assert "zz9" in name or "zz8" in name or "gen9-" in name or "gen8-" in name, (kind, name, where)


def test_negative_control_the_old_alias_collides():
    import copy
    sam2 = copy.deepcopy(PLATFORM_SAM)
    sam2["Resources"]["TokenSigningKeyAlias"]["Properties"]["AliasName"] = {"Fn::Sub": "alias/svcauth-token-${Environment}"}
    a = platform_alone(sam2, stack_name="svcauth-a", prefix="a-")
    b = platform_alone(sam2, stack_name="svcauth-b", prefix="b-")
    assert ("AWS::KMS::Alias", "alias/svcauth-token-dev") in physical_names([a]).keys() & physical_names([b]).keys()


# ------------------------------------------------------------------ delete, redeploy
@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.parent.name + "/" + p.name)
def test_nothing_kept_on_delete_has_a_fixed_name(path):
    """A retained resource with a fixed name (the access log group was one) makes
    `sam delete` then a redeploy fail on "already exists"."""
    for lid, res in load_template(path)["Resources"].items():
        if res.get("DeletionPolicy", "Delete") == "Delete":
            continue
        prop = NAME_PROPERTIES.get(res["Type"])
        if prop and prop in res.get("Properties", {}):
            # the one exception: the account's API Gateway logging role has no name
            pytest.fail(f"{path.name}: {lid} is kept on delete and named {res['Properties'][prop]!r}")


def test_the_access_log_group_is_kept_and_named_by_cloudformation():
    res = PLATFORM_SAM["Resources"]["ApiAccessLogGroup"]
    assert res["DeletionPolicy"] == "RetainExceptOnCreate"
    assert "LogGroupName" not in res["Properties"]
    # the example's APIs write there through the export
    d = deploy("api-key")
    arn = d.platform.getatt("ApiAccessLogGroup", "Arn")
    for stage in d.example.resources("AWS::ApiGateway::Stage").values():
        assert stage["Properties"]["AccessLogSetting"]["DestinationArn"] == arn


# ------------------------------------------------------------------ API Gateway account
def _depends(r: Resolver, lid: str) -> set[str]:
    """Every resource `lid` waits for: DependsOn, Ref, GetAtt and Sub references."""
    res = r.cfn["Resources"][lid]
    deps = set(as_list(res.get("DependsOn")))
    text = json.dumps(res.get("Properties", {}))
    for other in r.cfn["Resources"]:
        if other != lid and (f'"Ref": "{other}"' in text or f'["{other}",' in text or "${" + other in text):
            deps.add(other)
    return deps


def test_the_account_setting_waits_for_its_role_to_propagate():
    """API Gateway checks it can assume the logging role when the account setting is
    made; right after the role's creation IAM may not have propagated it, and
    CloudFormation does not retry. The setting waits for resources that take tens of
    seconds and do not themselves wait for the role (the nested authorizer stacks)."""
    r = deploy().platform
    deps = _depends(r, "ApiGatewayAccount")
    assert "ApiGatewayLoggingRole" in deps
    slow = {lid for lid in deps if r.cfn["Resources"][lid]["Type"] == "AWS::CloudFormation::Stack"}
    assert slow == set(INSTANCES)
    for lid in slow:
        assert "ApiGatewayLoggingRole" not in _depends(r, lid), lid
    # every stage is ordered after the setting (access logging fails without it)
    for lid, res in r.cfn["Resources"].items():
        if res["Type"] == "AWS::ApiGateway::Stage":
            assert r.resolve(res["Properties"]["Variables"]["loggingRoleSetting"]) == "ApiGatewayAccount", lid


# ------------------------------------------------------------------ least privilege
@pytest.mark.parametrize("instance", list(INSTANCES))
def test_the_authorizer_never_lists_revocation_markers(instance):
    """keystore-ssm reads markers by name (GetParameters, 10 a call) and never lists
    the revoked path; the role grants nothing more."""
    st = role_statements(deploy().authorizer(instance), "AuthorizerRole")
    for name in ("/svcauth/dev/revoked", "/svcauth/dev/revoked/kid_0123456789abcdef"):
        assert evaluate(st, "ssm:GetParametersByPath", ssm_arn(name)) == "implicit-deny", name
        assert evaluate(st, "ssm:GetParameter", ssm_arn(name)) == "implicit-deny", name
    assert evaluate(st, "ssm:GetParameters", ssm_arn("/svcauth/dev/revoked/kid_0123456789abcdef")) == "allow"
    # nor decrypts one (they are read without decryption)
    via = {"kms:ViaService": "ssm.us-east-1.amazonaws.com",
           "kms:EncryptionContext:PARAMETER_ARN": ssm_arn("/svcauth/dev/revoked/kid_0123456789abcdef")}
    assert evaluate(st, "kms:Decrypt", deploy().platform.getatt("StoreKey", "Arn"), via) != "allow"


def test_no_template_writes_trust_data_or_tells_a_deploy_role_to():
    """The API registry is written by `svcauth apis register` only (issue 16 §2)."""
    for path in TEMPLATES:
        text = path.read_text(encoding="utf-8")
        assert "AWS::SSM::Parameter" not in text.replace("`AWS::SSM::Parameter`", ""), path
    for doc in (PLATFORM_SAM, EXAMPLE_SAM):
        assert "/apis/${" not in json.dumps(doc)

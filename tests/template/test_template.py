"""Security properties of the platform (platform/template.yaml) and of the example
services attached to it (example/template.yaml), checked on the SAM translator's output.

Each AuthMode of the example is transformed offline and deployed (resolved) against a
transformed platform, whose exports it imports; values are resolved for concrete
parameters (Conditions, Fn::If, Ref, Sub, ImportValue) so the assertions read what
CloudFormation would deploy. Access decisions are evaluated with the small IAM matcher
in templatelib, and the negative-control tests show the checks fail on a weakened
template.
"""

from __future__ import annotations

import copy
import ipaddress
import json

import pytest

from deployment import (
    EXAMPLE_SAM,
    EXISTING_VPCE,
    IAM_ROLE_MAP,
    INSTANCES,
    OTHER_VPCE,
    PLATFORM_SAM,
    STAGE,
    Deployment,
    deploy,
    ssm_arn,
    statements_of,
)
from templatelib import (
    ACCOUNT,
    AUTHORIZER_APP,
    CREATED_VPCE,
    MODES,
    PARTITION,
    PLATFORM_STACK,
    REGION,
    ROOT,
    SAMPLE_PARAMETERS,
    TEMPLATES,
    Resolver,
    api_methods,
    as_list,
    evaluate,
    expand_api_policy,
    iam_api_decision,
    load_template,
    method_arn,
    resource_policy,
    role_statements,
    security_schemes,
    transform,
    wildcard_match,
)

SAMPLE_SUBNETS = SAMPLE_PARAMETERS["SubnetIds"]

# docs/contracts.md, "Routes"
IDENTITY_ROUTES = {
    ("GET", "/internal/users/{id}"),
    ("GET", "/internal/users/by-email/{email}"),
    ("POST", "/internal/users"),
}
TUTOR_ROUTES = {("GET", "/internal/tutor/students/{id}/profile")}
# docs/tokens.md, the token API: (authorization, verb, path)
TOKEN_ROUTE_AUTH = {("KeyAuthorizer", "POST", "/token"), ("AWS_IAM", "POST", "/token/iam"),
                    ("NONE", "GET", "/.well-known/jwks.json")}
KEY_APIS = {"IdentityKeyApi": IDENTITY_ROUTES, "TutorKeyApi": TUTOR_ROUTES}
IAM_APIS = {"IdentityIamApi": IDENTITY_ROUTES, "TutorIamApi": TUTOR_ROUTES}

# docs/contracts.md, "Environment variables"
AUTHORIZER_ENV = {
    "SVCAUTH_KEY_SOURCE", "SVCAUTH_SSM_PATH", "SVCAUTH_LEGACY_PARAMETER", "SVCAUTH_KEYS_FILE",
    "SVCAUTH_CACHE_TTL_SECS", "SVCAUTH_STALE_GRACE_SECS", "SVCAUTH_SSM_TIMEOUT_MS",
    "SVCAUTH_LOAD_TIMEOUT_MS", "SVCAUTH_METRICS_NAMESPACE", "SVCAUTH_API_PATH",
    "SVCAUTH_ACCEPT", "SVCAUTH_TOKEN_ISSUER", "SVCAUTH_TOKEN_JWKS_PARAMETER", "SVCAUTH_TOKEN_MIN_REMAINING_SECS",
}
IDENTITY_ENV = {"USERS_TABLE", "SVCAUTH_IAM_ROLES"}
TUTOR_ENV = {"SVCAUTH_IAM_ROLES", "IDENTITY_SERVICE_URL", "SERVICE_AUTH_MODE", "SERVICE_NAME",
             "SERVICE_API_KEY_PARAMETER", "AWS_ENDPOINT_URL_SSM"}
BINARIES = {"authorizer", "identity-service", "tutor-service", "token-issuer"}

# Actions AWS offers no resource-level permissions for; "*" is the narrowest there is.
NO_RESOURCE_LEVEL = {"xray:PutTraceSegments", "xray:PutTelemetryRecords",
                     "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ssm:DescribeParameters"}


@pytest.fixture(scope="session", params=MODES)
def mode(request):
    return request.param


@pytest.fixture(scope="session", params=["created", "existing"])
def endpoint(request):
    return request.param


def vpce_of(endpoint: str) -> str:
    return CREATED_VPCE if endpoint == "created" else EXISTING_VPCE


# --------------------------------------------------------------- the matcher
def test_wildcard_matcher_follows_iam_semantics():
    assert wildcard_match("a/*/GET/internal/users/*", "a/v1/GET/internal/users/by-email/x@y")
    assert not wildcard_match("a/*/GET/internal/users/*", "a/v1/POST/internal/users")
    assert not wildcard_match("a/*/GET/internal/users/*", "a/v1/GET/internal/users")
    assert wildcard_match("ssm:Get?arameter", "ssm:GetParameter")
    assert not wildcard_match("parameter/svcauth/dev/keys/*", "parameter/svcauth/dev/keysX")
    assert wildcard_match("EXECUTE-API:invoke", "execute-api:Invoke", ignore_case=True)


# ------------------------------------------------------------- which APIs exist
@pytest.mark.parametrize("mode,expected", [
    ("api-key", set(KEY_APIS)),
    ("iam", set(IAM_APIS)),
    ("both", set(KEY_APIS) | set(IAM_APIS)),
    ("token", set(KEY_APIS)),
    ("key-or-token", set(KEY_APIS)),
])
def test_auth_mode_selects_the_example_apis_and_never_the_platform(mode, expected):
    d = deploy(mode)
    assert set(d.example.resources("AWS::ApiGateway::RestApi")) == expected
    # the platform is the same whatever the mode: three authorizers and the token API
    assert set(d.platform.resources("AWS::ApiGateway::RestApi")) == {"TokenApi"}
    assert d.platform.nested_ids() == list(INSTANCES)
    for instance in INSTANCES:
        assert set(d.authorizer(instance).resources("AWS::Lambda::Function")) == {"AuthorizerFunction"}


def test_every_api_serves_exactly_the_contract_routes():
    d = deploy("both")
    for api_id, routes in {**KEY_APIS, **IAM_APIS}.items():
        assert set(api_methods(d.apis()[api_id])) == routes, api_id
    assert {(v, p) for _, v, p in TOKEN_ROUTE_AUTH} == set(api_methods(d.apis()["TokenApi"]))


# ------------------------------------------------------------------- private
def test_every_api_is_private_and_bound_to_the_endpoint(mode, endpoint):
    d = deploy(mode, endpoint)
    for api_id, api in d.apis().items():
        cfg = api["Properties"]["EndpointConfiguration"]
        assert cfg["Types"] == ["PRIVATE"], api_id
        assert cfg["VpcEndpointIds"] == [vpce_of(endpoint)], api_id
    assert d.platform.live("ExecuteApiEndpoint") == (endpoint == "created")


def test_resource_policy_denies_traffic_not_from_the_endpoint(mode, endpoint):
    d = deploy(mode, endpoint)
    vpce = vpce_of(endpoint)
    for api_id, api in d.apis().items():
        policy = expand_api_policy(resource_policy(api), api_id)
        assert policy, f"{api_id} has no resource policy"
        for verb, path in api_methods(api):
            arn = method_arn(api_id, STAGE, verb, path.replace("{", "").replace("}", ""))
            for ctx in ({"aws:SourceVpce": OTHER_VPCE}, {}):  # another endpoint; the internet
                assert evaluate(policy, "execute-api:Invoke", arn, ctx, None) == "deny", (api_id, ctx)
                assert evaluate(policy, "execute-api:Invoke", arn, ctx,
                                f"arn:{PARTITION}:iam::{ACCOUNT}:role/TutorServiceRole") == "deny"
            # the explicit Deny is there, not just a missing Allow
            denies = [s for s in policy if s["Effect"] == "Deny"]
            assert any(s["Condition"] == {"StringNotEquals": {"aws:SourceVpce": vpce}} and s["Principal"] == "*"
                       for s in denies), api_id
            # every Allow is tied to the endpoint
            for s in policy:
                if s["Effect"] == "Allow":
                    assert s["Condition"]["StringEquals"]["aws:SourceVpce"] == vpce, api_id


def test_key_api_resource_policy_lets_endpoint_traffic_reach_the_authorizer(endpoint):
    d = deploy("api-key", endpoint)
    for api_id, api in d.example.resources("AWS::ApiGateway::RestApi").items():
        policy = expand_api_policy(resource_policy(api), api_id)
        arn = method_arn(api_id, STAGE, "POST", "internal/users")
        assert evaluate(policy, "execute-api:Invoke", arn, {"aws:SourceVpce": vpce_of(endpoint)}) == "allow"


def test_endpoint_policy_reaches_only_this_accounts_apis():
    ep = deploy().platform.resources()["ExecuteApiEndpoint"]["Properties"]
    stmts = as_list(ep["PolicyDocument"]["Statement"])
    mine = method_arn("abc123", STAGE, "GET", "internal/users/1")
    foreign = mine.replace(ACCOUNT, "210987654321")
    assert evaluate(stmts, "execute-api:Invoke", mine, {}, None) == "allow"
    assert evaluate(stmts, "execute-api:Invoke", foreign, {}, None) == "implicit-deny"
    assert ep["PrivateDnsEnabled"] is False


# ------------------------------------------------------------------ auth per method
def test_api_key_mode_puts_the_key_authorizer_on_every_method():
    d = deploy("api-key")
    for api_id, api in d.example.resources("AWS::ApiGateway::RestApi").items():
        assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
        methods = api_methods(api)
        assert methods
        for route, op in methods.items():
            assert op["security"] == [{"api-key": []}, {"api_key": []}], (api_id, route)
            assert "credentials" not in op["x-amazon-apigateway-integration"]
        auth = security_schemes(api)["api-key"]["x-amazon-apigateway-authorizer"]
        assert auth["type"] == "request"
        assert auth["identitySource"] == "method.request.header.x-service-api-key"
        # A parameter value reaches the OpenAPI body as CloudFormation passes it (a string).
        assert int(auth["authorizerResultTtlInSeconds"]) == 300
        # the platform's KeyAuthorizer, by its exported ARN
        assert f"{d.function_arn('KeyAuthorizer')}/invocations" in auth["authorizerUri"]


def test_authorizer_ttl_is_a_parameter():
    d = deploy("api-key", AuthorizerResultTtl=0)
    for api in d.example.resources("AWS::ApiGateway::RestApi").values():
        auth = security_schemes(api)["api-key"]["x-amazon-apigateway-authorizer"]
        assert int(auth["authorizerResultTtlInSeconds"]) == 0


def test_iam_mode_puts_aws_iam_on_every_method():
    d = deploy("iam")
    for api_id, api in d.example.resources("AWS::ApiGateway::RestApi").items():
        methods = api_methods(api)
        assert methods
        for route, op in methods.items():
            assert op["security"] == [{"AWS_IAM": []}], (api_id, route)
            # invoked under the Lambda permission, not with the caller's credentials
            assert "credentials" not in op["x-amazon-apigateway-integration"], (api_id, route)
        assert security_schemes(api)["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_both_mode_serves_every_route_with_each_kind_of_auth():
    d = deploy("both")
    by_auth: dict[str, set] = {"key": set(), "iam": set()}
    for api in d.example.resources("AWS::ApiGateway::RestApi").values():
        for route, op in api_methods(api).items():
            kind = "iam" if op["security"] == [{"AWS_IAM": []}] else "key"
            by_auth[kind].add(route)
    assert by_auth["key"] == by_auth["iam"] == IDENTITY_ROUTES | TUTOR_ROUTES


def test_backends_of_an_api_exist_exactly_when_the_api_does(mode):
    for stack in deploy(mode).stacks():
        for lid, perm in stack.resources("AWS::Lambda::Permission").items():
            # would fail CloudFormation with an unresolved reference otherwise
            assert isinstance(perm["Properties"]["SourceArn"], str), lid


# ------------------------------------------------------------------ least privilege
def _iam_setup(mode="iam"):
    d = deploy(mode)
    apis = d.example.resources("AWS::ApiGateway::RestApi")
    return d, resource_policy(apis["IdentityIamApi"]), resource_policy(apis["TutorIamApi"])


@pytest.mark.parametrize("mode", ["iam", "both"])
def test_tutor_role_cannot_invoke_admin_only_routes(mode):
    d, identity_rp, tutor_rp = _iam_setup(mode)
    tutor = d.role("TutorServiceRole")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/TutorServiceRole"
    ctx = {"aws:SourceVpce": CREATED_VPCE}

    def decide(api, rp, verb, path):
        return iam_api_decision(rp, tutor, caller, method_arn(api, STAGE, verb, path), ctx)

    assert decide("IdentityIamApi", identity_rp, "GET", "internal/users/u-1") == "allow"
    assert decide("IdentityIamApi", identity_rp, "GET", "internal/users/by-email/a@example.com") == "allow"
    assert decide("IdentityIamApi", identity_rp, "POST", "internal/users") == "deny"
    assert decide("IdentityIamApi", identity_rp, "DELETE", "internal/users/u-1") == "deny"
    assert decide("TutorIamApi", tutor_rp, "GET", "internal/tutor/students/s-1/profile") == "deny"
    # identity policy alone, on the exact method ARN of POST /internal/users
    assert evaluate(tutor, "execute-api:Invoke",
                    method_arn("IdentityIamApi", STAGE, "POST", "internal/users")) == "implicit-deny"


def test_admin_role_can_invoke_every_internal_route():
    d, identity_rp, tutor_rp = _iam_setup()
    admin = d.role("AdminServiceRole")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/AdminServiceRole"
    ctx = {"aws:SourceVpce": CREATED_VPCE}
    for api, rp, routes in (("IdentityIamApi", identity_rp, IDENTITY_ROUTES),
                            ("TutorIamApi", tutor_rp, TUTOR_ROUTES)):
        for verb, path in routes:
            arn = method_arn(api, STAGE, verb, path.replace("{", "").replace("}", ""))
            assert iam_api_decision(rp, admin, caller, arn, ctx) == "allow", (api, verb, path)
            assert iam_api_decision(rp, admin, caller, arn, {"aws:SourceVpce": OTHER_VPCE}) == "deny"


def test_iam_api_resource_policy_never_allows_a_principal_directly():
    """A same-account Allow naming "*" or a role would bypass the roles' own policies."""
    _, identity_rp, tutor_rp = _iam_setup()
    for st in identity_rp + tutor_rp:
        if st["Effect"] == "Allow":
            assert st["Principal"] == {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"}


def test_negative_control_a_broad_resource_policy_is_caught():
    d, identity_rp, _ = _iam_setup()
    tutor = d.role("TutorServiceRole")
    weakened = copy.deepcopy(identity_rp)
    weakened[0]["Principal"] = "*"
    arn = method_arn("IdentityIamApi", STAGE, "POST", "internal/users")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/TutorServiceRole"
    assert iam_api_decision(weakened, tutor, caller, arn, {"aws:SourceVpce": CREATED_VPCE}) == "allow"


def test_negative_control_a_broad_tutor_policy_is_caught():
    sam2 = copy.deepcopy(EXAMPLE_SAM)
    pol = sam2["Resources"]["TutorServiceInvokePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    pol["Resource"] = [{"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                   "${IdentityIamApi}/*/*/internal/*"}]
    tutor = deploy("iam", example_sam=sam2).role("TutorServiceRole")
    assert evaluate(tutor, "execute-api:Invoke",
                    method_arn("IdentityIamApi", STAGE, "POST", "internal/users")) == "allow"


@pytest.mark.parametrize("instance", list(INSTANCES))
def test_authorizer_reads_only_its_own_ssm_path(instance):
    st = role_statements(deploy().authorizer(instance), "AuthorizerRole")
    own = "/svcauth/dev/keys"
    assert evaluate(st, "ssm:GetParametersByPath", ssm_arn(own)) == "allow"
    assert evaluate(st, "ssm:GetParameter", ssm_arn(own + "/tutor-service")) == "allow"
    for other in ("/svcauth/dev", "/svcauth/prod/keys", "/svcauth/prod/keys/tutor-service",
                  "/svcauth/dev/keys-other/x", "/dev/tutor-service/identity-service-api-key",
                  "/dev/identity-service/service-api-keys"):
        for action in ("ssm:GetParameter", "ssm:GetParametersByPath", "ssm:GetParameters"):
            assert evaluate(st, action, ssm_arn(other)) == "implicit-deny", (action, other)
    for action in ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:LabelParameterVersion"):
        assert evaluate(st, action, ssm_arn(own + "/tutor-service")) == "implicit-deny"


@pytest.mark.parametrize("instance", list(INSTANCES))
def test_authorizer_decrypts_only_the_store_key_only_through_ssm_for_its_paths(instance):
    d = deploy()
    st = role_statements(d.authorizer(instance), "AuthorizerRole")
    store_key = d.platform.getatt("StoreKey", "Arn")
    other_key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
               "kms:EncryptionContext:PARAMETER_ARN": ssm_arn("/svcauth/dev/keys/tutor-service")}
    assert evaluate(st, "kms:Decrypt", store_key, via_ssm) == "allow"
    # the registry entries are SecureStrings under the same key
    assert evaluate(st, "kms:Decrypt", store_key, {
        **via_ssm, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn("/svcauth/dev/apis/a1b2c3d4e5")}) == "allow"
    # no other key, not even aws/ssm: an explicit Deny
    assert evaluate(st, "kms:Decrypt", other_key, via_ssm) == "deny"
    assert evaluate(st, "kms:Decrypt", store_key, {**via_ssm, "kms:ViaService": f"s3.{REGION}.amazonaws.com"}) != "allow"
    assert evaluate(st, "kms:Decrypt", store_key, {"kms:EncryptionContext:PARAMETER_ARN": via_ssm[
        "kms:EncryptionContext:PARAMETER_ARN"]}) != "allow"
    for name in ("/dev/admin-service/identity-service-api-key", "/svcauth/dev/revoked/k1",
                 "/svcauth/dev/index/k1", "/svcauth/prod/keys/tutor-service"):
        other_param = {**via_ssm, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn(name)}
        assert evaluate(st, "kms:Decrypt", store_key, other_param) != "allow", name


def test_the_authorizers_use_a_given_store_key_instead_of_creating_one():
    key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    d = deploy(SsmKmsKeyArn=key)
    assert not d.platform.live("StoreKey")
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
               "kms:EncryptionContext:PARAMETER_ARN": ssm_arn("/svcauth/dev/keys/tutor-service")}
    for instance in INSTANCES:
        st = role_statements(d.authorizer(instance), "AuthorizerRole")
        assert evaluate(st, "kms:Decrypt", key, via_ssm) == "allow", instance
    assert d.platform.resolve(d.platform.cfn["Outputs"]["StoreKeyArn"]["Value"]) == key


@pytest.mark.parametrize("instance", ["KeyAuthorizer", "KeyOrTokenAuthorizer", "TokenAuthorizer"])
def test_legacy_parameter_is_readable_only_when_configured(instance):
    legacy = "/dev/identity-service/service-api-keys"
    with_legacy = role_statements(deploy(LegacyKeysParameter=legacy).authorizer(instance), "AuthorizerRole")
    assert evaluate(with_legacy, "ssm:GetParameter", ssm_arn(legacy)) == "allow"
    without = role_statements(deploy().authorizer(instance), "AuthorizerRole")
    assert evaluate(without, "ssm:GetParameter", ssm_arn(legacy)) == "implicit-deny"


@pytest.mark.parametrize("role,own,other", [
    ("TutorServiceRole", "tutor-service", "admin-service"),
    ("AdminServiceRole", "admin-service", "tutor-service"),
])
def test_each_service_reads_only_its_own_key(role, own, other):
    d = deploy("api-key")
    st = d.role(role)
    assert evaluate(st, "ssm:GetParameter", ssm_arn(f"/dev/{own}/identity-service-api-key")) == "allow"
    assert evaluate(st, "ssm:GetParameter", ssm_arn(f"/dev/{other}/identity-service-api-key")) == "implicit-deny"
    assert evaluate(st, "ssm:GetParameter", ssm_arn(f"/prod/{own}/identity-service-api-key")) == "implicit-deny"
    assert evaluate(st, "ssm:GetParametersByPath", ssm_arn("/svcauth/dev/keys")) == "implicit-deny"
    # its key is delivered under the platform's store key, read through SSM only
    key = d.platform.getatt("StoreKey", "Arn")
    ctx = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
    assert evaluate(st, "kms:Decrypt", key, {
        **ctx, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn(f"/dev/{own}/identity-service-api-key")}) == "allow"
    assert evaluate(st, "kms:Decrypt", key, {
        **ctx, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn(f"/dev/{other}/identity-service-api-key")}) != "allow"
    other_key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert evaluate(st, "kms:Decrypt", other_key, {
        **ctx, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn(f"/dev/{own}/identity-service-api-key")}) != "allow"


@pytest.mark.parametrize("role,service", [("TutorServiceRole", "tutor-service"),
                                          ("AdminServiceRole", "admin-service")])
def test_iam_only_mode_grants_no_key_reads(role, service):
    st = deploy("iam").role(role)
    assert evaluate(st, "ssm:GetParameter", ssm_arn(f"/dev/{service}/identity-service-api-key")) == "implicit-deny"


def test_service_roles_are_assumable_by_ecs_tasks_and_lambda_only():
    d = deploy("both")
    for role in ("TutorServiceRole", "AdminServiceRole"):
        trust = as_list(d.resource(role)["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        services = {svc for st in trust for svc in as_list(st["Principal"].get("Service"))}
        assert services == {"ecs-tasks.amazonaws.com", "lambda.amazonaws.com"}
        assert all(set(st["Principal"]) == {"Service"} for st in trust)


def test_no_star_resource_where_a_narrower_one_exists(mode):
    d = deploy(mode, EnableCloudTrail="true")
    for stack in d.stacks():
        for lid, res in stack.resources().items():
            if res["Type"] == "AWS::IAM::Role":
                assert not res["Properties"].get("ManagedPolicyArns"), lid
            elif res["Type"] not in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                continue
            for st in statements_of(res):
                if "*" in as_list(st.get("Resource")):
                    assert set(as_list(st["Action"])) <= NO_RESOURCE_LEVEL, (lid, st)
                assert "*" not in as_list(st["Action"]), (lid, st)
                assert not any(a.endswith(":*") for a in as_list(st["Action"])), (lid, st)


# ------------------------------------------------------------------- throttling
def test_a_usage_plan_per_calling_service():
    d = deploy("api-key", TutorRateLimit=7, TutorBurstLimit=9)
    plans = d.example.resources("AWS::ApiGateway::UsagePlan")
    assert set(plans) == {"TutorServiceUsagePlan", "AdminServiceUsagePlan"}
    tutor = plans["TutorServiceUsagePlan"]["Properties"]
    assert tutor["Throttle"] == {"RateLimit": "7", "BurstLimit": "9"}
    assert {s["ApiId"] for s in tutor["ApiStages"]} == {"IdentityKeyApi"}
    admin = plans["AdminServiceUsagePlan"]["Properties"]
    assert {s["ApiId"] for s in admin["ApiStages"]} == {"IdentityKeyApi", "TutorKeyApi"}
    keys = d.example.resources("AWS::ApiGateway::UsagePlanKey")
    assert {(k["Properties"]["UsagePlanId"], k["Properties"]["KeyId"]) for k in keys.values()} == {
        ("TutorServiceUsagePlan", "TutorServiceApiKey"), ("AdminServiceUsagePlan", "AdminServiceApiKey")}
    assert not deploy("iam").example.resources("AWS::ApiGateway::UsagePlan")


# -------------------------------------------------------------------- audit
def _access_log_formats() -> list[str]:
    return [doc["Globals"]["Api"]["AccessLogSetting"]["Format"] for doc in (PLATFORM_SAM, EXAMPLE_SAM)]


def test_every_api_logs_to_the_platforms_group_in_one_format():
    platform_format, example_format = _access_log_formats()
    assert platform_format == example_format


def test_access_logs_are_json_with_the_audit_fields(mode):
    d = deploy(mode)
    group = d.platform.resources()["ApiAccessLogGroup"]["Properties"]
    assert int(group["RetentionInDays"]) == 365
    stages = {}
    for stack in (d.platform, d.example):
        stages.update(stack.resources("AWS::ApiGateway::Stage"))
    assert len(stages) == len(d.apis())
    for lid, stage in stages.items():
        p = stage["Properties"]
        assert p["AccessLogSetting"]["DestinationArn"] == d.platform.getatt("ApiAccessLogGroup", "Arn"), lid
        fields = json.loads(p["AccessLogSetting"]["Format"])
        assert fields["requestId"] == "$context.requestId"
        assert fields["serviceId"] == "$context.authorizer.serviceId"
        assert fields["iamCaller"] == "$context.identity.userArn"
        assert fields["route"] == "$context.resourcePath"
        assert fields["status"] == "$context.status"
        assert fields["latencyMs"] == "$context.responseLatency"
        assert p["TracingEnabled"] is True, lid
        for ms in p["MethodSettings"]:
            assert ms["DataTraceEnabled"] is False, "data traces would log the x-service-api-key header"


def test_functions_are_rust_arm64_traced_with_retained_logs(mode):
    d = deploy(mode)
    fns, groups = {}, {}
    for stack in d.stacks():
        fns.update({f"{stack.prefix}{lid}": fn for lid, fn in stack.resources("AWS::Lambda::Function").items()})
        groups.update({f"{stack.prefix}{lid}": g for lid, g in stack.resources("AWS::Logs::LogGroup").items()})
    assert {f"{i}-AuthorizerFunction" for i in INSTANCES} | {"TokenIssuerFunction"} <= set(fns)
    for lid, fn in fns.items():
        p = fn["Properties"]
        assert p["Runtime"] == "provided.al2023", lid
        assert p["Architectures"] == ["arm64"], lid
        assert p["TracingConfig"] == {"Mode": "Active"}, lid
        group_name = p["LoggingConfig"]["LogGroup"]
        assert any(g["Properties"].get("LogGroupName") == group_name and g["Properties"].get("RetentionInDays")
                   for g in groups.values()), lid


def test_build_metadata_names_the_contract_binaries():
    fns = {}
    for name, doc in (("platform", PLATFORM_SAM), ("example", EXAMPLE_SAM),
                      ("authorizer", load_template(AUTHORIZER_APP))):
        fns.update({f"{name}/{lid}": res for lid, res in doc["Resources"].items()
                    if res["Type"] == "AWS::Serverless::Function"})
    # `sam build` builds every function from the cargo workspace root
    for doc, path in ((PLATFORM_SAM, "platform"), (EXAMPLE_SAM, "example")):
        assert (ROOT / path / doc["Globals"]["Function"]["CodeUri"] / "Cargo.toml").resolve() == ROOT / "Cargo.toml"
    for lid, res in fns.items():
        md = res["Metadata"]
        assert md["BuildMethod"] == "rust-cargolambda", lid
        assert md["BuildProperties"]["Binary"] in BINARIES, lid
    assert {res["Metadata"]["BuildProperties"]["Binary"] for res in fns.values()} == BINARIES


def test_environment_follows_the_contract():
    d = deploy("both")
    fns = d.example.resources("AWS::Lambda::Function")
    env = {lid: fn["Properties"]["Environment"]["Variables"] for lid, fn in fns.items()}
    for instance in INSTANCES:
        auth = d.env(instance)
        assert set(auth) <= AUTHORIZER_ENV, instance
        assert auth["SVCAUTH_KEY_SOURCE"] == "ssm"
        assert auth["SVCAUTH_SSM_PATH"] == "/svcauth/dev/keys"
        assert auth["SVCAUTH_API_PATH"] == "/svcauth/dev/apis"
    for lid in ("IdentityServiceFunction", "IdentityServiceIamFunction"):
        assert set(env[lid]) == IDENTITY_ENV
        assert env[lid]["USERS_TABLE"] == "UsersTable"
        assert env[lid]["SVCAUTH_IAM_ROLES"] == IAM_ROLE_MAP
    ssm_url = d.platform.exports()[f"{PLATFORM_STACK}-SsmEndpointUrl"]
    for lid, auth, api in (("TutorServiceFunction", "api-key", "IdentityKeyApi"),
                           ("TutorServiceIamFunction", "iam", "IdentityIamApi")):
        assert set(env[lid]) == TUTOR_ENV
        assert env[lid]["SERVICE_AUTH_MODE"] == auth
        assert env[lid]["SERVICE_NAME"] == "tutor-service"
        assert env[lid]["SERVICE_API_KEY_PARAMETER"] == "/dev/tutor-service/identity-service-api-key"
        assert env[lid]["IDENTITY_SERVICE_URL"] == (
            f"https://{api}-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}")
        assert env[lid]["AWS_ENDPOINT_URL_SSM"] == ssm_url


def test_cloudtrail_is_optional_and_its_bucket_locked_down():
    assert not deploy("api-key").platform.live("Trail")
    r = deploy("api-key", EnableCloudTrail="true").platform
    res = r.resources()
    bucket = res["CloudTrailBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    stmts = as_list(res["CloudTrailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"])
    bucket_arn = r.getatt("CloudTrailBucket", "Arn")
    obj = f"{bucket_arn}/AWSLogs/{ACCOUNT}/CloudTrail/x.json.gz"
    trail_arn = f"arn:{PARTITION}:cloudtrail:{REGION}:{ACCOUNT}:trail/{PLATFORM_STACK}-trail"
    ok = {"aws:SecureTransport": "true", "aws:SourceArn": trail_arn, "s3:x-amz-acl": "bucket-owner-full-control"}
    assert evaluate(stmts, "s3:PutObject", obj, ok, "cloudtrail.amazonaws.com") == "allow"
    other_trail = {**ok, "aws:SourceArn": trail_arn.replace(ACCOUNT, "210987654321")}
    assert evaluate(stmts, "s3:PutObject", obj, other_trail, "cloudtrail.amazonaws.com") != "allow"
    assert evaluate(stmts, "s3:GetObject", obj, {"aws:SecureTransport": "false"},
                    f"arn:{PARTITION}:iam::{ACCOUNT}:role/Reader") == "deny"
    assert evaluate(stmts, "s3:DeleteObject", obj, {"aws:SecureTransport": "true"},
                    f"arn:{PARTITION}:iam::{ACCOUNT}:role/Admin") == "deny"
    trail = res["Trail"]["Properties"]
    assert trail["EnableLogFileValidation"] is True
    assert trail["IsMultiRegionTrail"] is True


# ------------------------------------------------------------ readable routes
def test_routes_are_plain_sam_events_a_yaml_reader_can_follow():
    """The local gateway reads routes and their authorization straight from the YAML."""
    seen = set()
    for doc in (PLATFORM_SAM, EXAMPLE_SAM):
        res = doc["Resources"]
        for lid, fn in res.items():
            if fn["Type"] != "AWS::Serverless::Function":
                continue
            for ev in fn["Properties"].get("Events", {}).values():
                assert ev["Type"] == "Api"
                p = ev["Properties"]
                assert isinstance(p["Path"], str) and isinstance(p["Method"], str)
                api_id = p["RestApiId"]["Ref"]
                api = res[api_id]
                default = api["Properties"]["Auth"]["DefaultAuthorizer"]
                if api_id == "TokenApi":
                    # the token API's routes name their own: AWS_IAM, NONE (the key set)
                    auth = p.get("Auth", {}).get("Authorizer", default)
                    assert auth in ("KeyAuthorizer", "AWS_IAM", "NONE")
                    authorizer = api["Properties"]["Auth"]["Authorizers"]["KeyAuthorizer"]
                    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["KeyAuthorizer", "Outputs.FunctionArn"]}
                    seen.add((auth, p["Method"].upper(), p["Path"]))
                    continue
                assert "Auth" not in p  # the API's DefaultAuthorizer applies
                if default == {"Ref": "AuthMode"}:
                    # the authorizer named like the AuthMode, one for every value, each
                    # imported from the platform
                    authorizers = api["Properties"]["Auth"]["Authorizers"]
                    assert set(authorizers) == set(doc["Parameters"]["AuthMode"]["AllowedValues"])
                    for a in authorizers.values():
                        assert set(a["FunctionArn"]) == {"Fn::ImportValue"}
                    a = authorizers["api-key"]
                    assert a["Identity"]["Headers"] == ["x-service-api-key"]
                    default = "by-auth-mode"
                else:
                    assert default == "AWS_IAM"
                seen.add((default, p["Method"].upper(), p["Path"]))
    routes = IDENTITY_ROUTES | TUTOR_ROUTES
    assert seen == {(d, m, p) for d in ("AWS_IAM", "by-auth-mode") for m, p in routes} | TOKEN_ROUTE_AUTH


def test_outputs_name_urls_roles_and_the_post_deploy_commands():
    d = deploy("both")
    outputs = {k: d.example.resolve(v) for k, v in d.example.cfn["Outputs"].items()
               if "Condition" not in v or d.example.condition(v["Condition"])}
    for name in ("IdentityApiUrl", "TutorApiUrl", "IdentityIamApiUrl", "TutorIamApiUrl",
                 "TutorServiceRoleArn", "AdminServiceRoleArn", "TutorKeyParameter", "AdminKeyParameter",
                 "RegisterApisCommand", "TokenIamRoles"):
        assert name in outputs, name
    assert outputs["IdentityApiUrl"]["Value"] == (
        f"https://IdentityKeyApi-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}")
    assert outputs["TokenIamRoles"]["Value"] == IAM_ROLE_MAP


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_checkov_suppression_has_a_written_reason(path):
    doc = load_template(path)
    for lid, res in doc["Resources"].items():
        for s in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert s["id"].startswith(("CKV_", "CKV2_")), (lid, s)
            assert len(s.get("comment", "").split()) >= 8, f"{lid} suppresses {s['id']} without a reason"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_parameters_and_resources_have_distinct_logical_ids(path):
    """CloudFormation refuses a template where a parameter and a resource share a name."""
    doc = load_template(path)
    assert not set(doc.get("Parameters", {})) & set(doc["Resources"])


# ------------------------------------------- the first `sam deploy` (issue 12 A)
def test_logging_role_trust_is_the_documented_one():
    """A.1: AWS's documented trust policy for the API Gateway CloudWatch role has no
    condition; one API Gateway does not satisfy would roll the stack back."""
    trust = as_list(deploy().platform.resources()["ApiGatewayLoggingRole"]["Properties"][
        "AssumeRolePolicyDocument"]["Statement"])
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                      "Action": "sts:AssumeRole"}]
    assert evaluate(trust, "sts:AssumeRole", "*", {}, "apigateway.amazonaws.com") == "allow"
    assert evaluate(trust, "sts:AssumeRole", "*", {}, "lambda.amazonaws.com") == "implicit-deny"


@pytest.mark.parametrize("doc,lid", [(PLATFORM_SAM, "ApiAccessLogGroup"), (EXAMPLE_SAM, "UsersTable"),
                                     (PLATFORM_SAM, "CloudTrailBucket"), (PLATFORM_SAM, "StoreKey"),
                                     (PLATFORM_SAM, "TokenSigningKey")])
def test_kept_resources_go_when_the_first_create_rolls_back(doc, lid):
    """A.2: Retain would keep them after a failed first create, and every retry would
    then fail on "already exists"."""
    res = doc["Resources"][lid]
    assert res["DeletionPolicy"] == "RetainExceptOnCreate"
    assert res["UpdateReplacePolicy"] == "Retain"


def test_endpoints_can_use_their_own_subnets():
    """A.3: interface endpoints are not offered in every zone; they can take other subnets."""
    d = deploy("api-key")
    for lid in ("ExecuteApiEndpoint", "SsmEndpoint"):
        assert d.platform.resources()[lid]["Properties"]["SubnetIds"] == SAMPLE_SUBNETS, lid
    own = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    d = deploy("api-key", EndpointSubnetIds=own)
    for lid in ("ExecuteApiEndpoint", "SsmEndpoint"):
        assert d.platform.resources()[lid]["Properties"]["SubnetIds"] == own, lid
    # the functions stay in SubnetIds (the platform's export)
    assert d.example.resources()["TutorServiceFunction"]["Properties"]["VpcConfig"]["SubnetIds"] == SAMPLE_SUBNETS


def _ingress_admits(r: Resolver, group_id: str, source_group: str, source_ip: str) -> bool:
    rules = as_list(r.resources()[group_id]["Properties"].get("SecurityGroupIngress"))
    rules += [e["Properties"] for e in r.resources("AWS::EC2::SecurityGroupIngress").values()
              if e["Properties"]["GroupId"] == group_id]
    for rule in rules:
        if not (rule["IpProtocol"] in ("-1", "tcp") and int(rule.get("FromPort", 0)) <= 443 <= int(rule.get("ToPort", 65535))):
            continue
        if rule.get("SourceSecurityGroupId") == source_group:
            return True
        if "CidrIp" in rule and ipaddress.ip_address(source_ip) in ipaddress.ip_network(rule["CidrIp"]):
            return True
    return False


def _egress_allows(r: Resolver, group_id: str, dest_group: str | None, dest_ip: str) -> bool:
    rules = as_list(r.resources()[group_id]["Properties"].get("SecurityGroupEgress"))
    rules += [e["Properties"] for e in r.resources("AWS::EC2::SecurityGroupEgress").values()
              if e["Properties"]["GroupId"] == group_id]
    for rule in rules:
        if not (rule["IpProtocol"] in ("-1", "tcp") and int(rule.get("FromPort", 0)) <= 443 <= int(rule.get("ToPort", 65535))):
            continue
        if dest_group and rule.get("DestinationSecurityGroupId") == dest_group:
            return True
        if "CidrIp" in rule and ipaddress.ip_address(dest_ip) in ipaddress.ip_network(rule["CidrIp"]):
            return True
    return False


@pytest.mark.parametrize("vpc_ip", ["172.31.5.9", "10.20.30.40"])  # default VPC; any other VPC
def test_the_tutor_function_reaches_the_endpoints_in_any_vpc(vpc_ip):
    """A.4: group-to-group rules, so the tutor function reaches the created endpoints
    whatever the VPC's CIDR, and a stranger in the VPC does not."""
    d = deploy("api-key")
    r = d.platform
    fn_groups = d.example.resources()["TutorServiceFunction"]["Properties"]["VpcConfig"]["SecurityGroupIds"]
    assert fn_groups == ["ApiClientSecurityGroup"]  # the platform's export
    for ep in ("ExecuteApiEndpoint", "SsmEndpoint"):
        (ep_group,) = r.resources()[ep]["Properties"]["SecurityGroupIds"]
        assert _ingress_admits(r, ep_group, "ApiClientSecurityGroup", vpc_ip), ep
        assert _egress_allows(r, "ApiClientSecurityGroup", ep_group, vpc_ip), ep
        assert not _ingress_admits(r, ep_group, "SomeOtherGroup", vpc_ip), ep
    # nothing else leaves the function's group when both endpoints are the stack's own
    assert not _egress_allows(r, "ApiClientSecurityGroup", None, "52.94.1.1")
    assert not _ingress_admits(r, "EndpointSecurityGroup", "SomeOtherGroup", vpc_ip)


def test_vpc_cidr_is_an_optional_extra():
    r = deploy("api-key", VpcCidr="10.20.0.0/16").platform
    assert _ingress_admits(r, "EndpointSecurityGroup", "x", "10.20.3.4")
    assert not _ingress_admits(r, "EndpointSecurityGroup", "x", "10.21.3.4")
    assert PLATFORM_SAM["Parameters"]["VpcCidr"]["Default"] == ""


@pytest.mark.parametrize("params", [{"ExecuteApiEndpointId": EXISTING_VPCE}, {"CreateSsmEndpoint": "false"}])
def test_the_tutor_function_can_reach_endpoints_it_did_not_create(params):
    """A.4: an existing endpoint (or SSM through a NAT) has an address the stack cannot
    name: HTTPS egress opens, nothing else."""
    r = deploy("api-key", **params).platform
    assert _egress_allows(r, "ApiClientSecurityGroup", None, "10.9.8.7")
    rules = [e["Properties"] for e in r.resources("AWS::EC2::SecurityGroupEgress").values()]
    rules += as_list(r.resources()["ApiClientSecurityGroup"]["Properties"]["SecurityGroupEgress"])
    for rule in rules:
        assert (rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort")) == ("tcp", 443, 443) or (
            rule.get("CidrIp") == "127.0.0.1/32"), rule


def test_client_group_is_exported():
    r = deploy("api-key").platform
    assert r.exports()[f"{PLATFORM_STACK}-ApiClientSecurityGroupId"] == "ApiClientSecurityGroup"


def test_stages_redeploy_on_every_update(monkeypatch):
    """A.5: the resource policy names the endpoint by Ref, so a replaced endpoint does not
    change SAM's deployment hash; a new deployment on every update fixes the stage."""
    import time as time_module

    def deployments(sam: dict, at: float, **params) -> set[str]:
        monkeypatch.setattr(time_module, "time", lambda: at)
        cfn = transform(sam, **params)
        return {lid for lid, res in cfn["Resources"].items() if res["Type"] == "AWS::ApiGateway::Deployment"}

    for sam, params in ((PLATFORM_SAM, {}), (EXAMPLE_SAM, {"AuthMode": "both"})):
        first, later = deployments(sam, 1_800_000_000.0, **params), deployments(sam, 1_800_000_060.0, **params)
        # every API of the template (SAM transforms the ones a Condition leaves out too)
        assert len(first) == len(later) == sum(
            1 for res in sam["Resources"].values() if res["Type"] == "AWS::Serverless::Api")
        assert not first & later
    # negative control: without AlwaysDeploy, a new VpcId (which replaces the created
    # endpoint) leaves every deployment as it was
    sam2 = copy.deepcopy(PLATFORM_SAM)
    del sam2["Globals"]["Api"]["AlwaysDeploy"]
    a = deployments(sam2, 1_800_000_000.0)
    b = deployments(sam2, 1_800_000_000.0, VpcId="vpc-0fedcba9876543210")
    assert a == b


@pytest.mark.parametrize("lid", ["ApiGatewayLoggingRole", "ApiGatewayAccount"])
def test_logging_role_and_setting_outlive_the_stack(lid):
    """A.6: the account setting serves every REST API in the Region; deleting the stack
    or turning ConfigureApiGatewayLogging off must not delete the role it names."""
    res = PLATFORM_SAM["Resources"][lid]
    assert res["DeletionPolicy"] == "Retain"
    assert res["UpdateReplacePolicy"] == "Retain"


def test_tutor_function_has_its_own_role(mode):
    """A.7: the VPC network-interface rights belong to the function's role only, and the
    backends map that role to tutor-service too."""
    d = deploy(mode)
    fns = d.example.resources("AWS::Lambda::Function")
    tutor_fn = "TutorServiceFunction" if mode != "iam" else "TutorServiceIamFunction"
    assert fns[tutor_fn]["Properties"]["Role"] == d.example.getatt("TutorFunctionRole", "Arn")
    eni = f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:network-interface/eni-0123"
    assert evaluate(d.role("TutorFunctionRole"), "ec2:CreateNetworkInterface", eni) == "allow"
    for role in ("TutorServiceRole", "AdminServiceRole"):
        assert evaluate(d.role(role), "ec2:CreateNetworkInterface", eni) == "implicit-deny", role
    trust = as_list(d.resource("TutorFunctionRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    assert {s["Principal"]["Service"] for s in trust} == {"lambda.amazonaws.com"}
    for lid, fn in fns.items():
        if "SVCAUTH_IAM_ROLES" in fn["Properties"]["Environment"]["Variables"]:
            assert fn["Properties"]["Environment"]["Variables"]["SVCAUTH_IAM_ROLES"] == IAM_ROLE_MAP, lid


@pytest.mark.parametrize("mode", ["iam", "both"])
def test_tutor_function_role_may_call_what_tutor_service_may(mode):
    d, identity_rp, _ = _iam_setup(mode)
    st = d.role("TutorFunctionRole")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/TutorFunctionRole"
    ctx = {"aws:SourceVpce": CREATED_VPCE}
    get = method_arn("IdentityIamApi", STAGE, "GET", "internal/users/u-1")
    post = method_arn("IdentityIamApi", STAGE, "POST", "internal/users")
    assert iam_api_decision(identity_rp, st, caller, get, ctx) == "allow"
    assert iam_api_decision(identity_rp, st, caller, post, ctx) == "deny"


def test_every_stage_has_an_execution_log_group_that_expires(mode):
    """A.7: API Gateway creates API-Gateway-Execution-Logs_{api}/{stage} without expiry
    unless the group exists first; each stage refers to its group so it does."""
    d = deploy(mode, LogRetentionDays=30)
    for r in (d.platform, d.example):
        groups = {g["Properties"].get("LogGroupName"): g for g in r.resources("AWS::Logs::LogGroup").values()}
        for lid, stage in r.resources("AWS::ApiGateway::Stage").items():
            api, name = stage["Properties"]["RestApiId"], stage["Properties"]["StageName"]
            group = groups.get(f"API-Gateway-Execution-Logs_{api}/{name}")
            assert group is not None, lid
            assert group["Properties"]["RetentionInDays"] == "30", lid
            # the stage depends on the group (through a stage variable), so it exists first
            raw = r.cfn["Resources"][lid]["Properties"]["Variables"]["executionLogGroup"]
            assert raw == {"Ref": f"{api}ExecutionLogGroup"}, lid
        for group in groups.values():
            assert group["Properties"].get("RetentionInDays"), group


def test_platform_report_lines_are_kept(mode):
    """A.7: SystemLogLevel WARN drops the REPORT lines (duration, memory, init)."""
    for r in deploy(mode).stacks():
        for lid, fn in r.resources("AWS::Lambda::Function").items():
            assert fn["Properties"]["LoggingConfig"]["SystemLogLevel"] in ("INFO", "DEBUG"), lid


@pytest.mark.parametrize("role,group", [("AdminServiceRole", "AdminServiceLogGroup"),
                                        ("TutorServiceRole", "TutorServiceLogGroup"),
                                        ("TutorFunctionRole", "TutorServiceLogGroup")])
def test_every_role_lambda_may_assume_can_log_and_trace(role, group):
    """A.7: a Lambda-trusted role without log rights loses its function's logs."""
    d = deploy("api-key")
    r = d.example
    st = d.role(role)
    stream = r.getatt(group, "Arn")[:-1] + "log-stream:x"
    assert evaluate(st, "logs:PutLogEvents", r.getatt(group, "Arn")) == "allow"
    assert evaluate(st, "logs:PutLogEvents", stream.replace(r.ref(group), "/aws/lambda/other")) == "implicit-deny"
    assert evaluate(st, "xray:PutTraceSegments", "*") == "allow"


# ------------------------------------------------------------- trust data (issue 16 §2)
def test_no_stack_writes_an_ssm_parameter():
    """The registry, the key set and every other datum the authorizers trust are
    SecureStrings written by svcauth; a stack (or a deploy role) writing a String there
    is what let one team relabel another team's API."""
    for mode in MODES:
        for r in deploy(mode).stacks():
            assert not r.resources("AWS::SSM::Parameter"), (mode, r.stack_name)
    for path in TEMPLATES:
        assert not [lid for lid, res in load_template(path)["Resources"].items()
                    if res["Type"] == "AWS::SSM::Parameter"], path


@pytest.mark.parametrize("instance", list(INSTANCES))
def test_authorizers_read_the_registry_and_write_nothing(instance):
    st = role_statements(deploy().authorizer(instance), "AuthorizerRole")
    entry = ssm_arn("/svcauth/dev/apis/a1b2c3d4e5")
    for action in ("ssm:GetParameter", "ssm:GetParameters"):
        assert evaluate(st, action, entry) == "allow", action
    for action in ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:LabelParameterVersion", "ssm:AddTagsToResource"):
        for name in ("/svcauth/dev/apis/a1b2c3d4e5", "/svcauth/dev/token/jwks", "/svcauth/dev/keys/tutor-service"):
            assert evaluate(st, action, ssm_arn(name)) == "implicit-deny", (action, name)
    assert evaluate(st, "ssm:GetParameter", ssm_arn("/svcauth/prod/apis/a1b2c3d4e5")) == "implicit-deny"


def test_the_outputs_give_the_post_deploy_commands():
    d = deploy("api-key")
    key = d.platform.getatt("StoreKey", "Arn")
    exports = d.platform.exports()
    assert exports[f"{PLATFORM_STACK}-RegisterTokenApiCommand"] == (
        f"svcauth apis register --env dev --kms-key-id {key} --api-id TokenApi --name token")
    assert exports[f"{PLATFORM_STACK}-PublishSigningKeyCommand"] == (
        f"svcauth tokens keys add --env dev --kms-key-id {key} --key alias/{PLATFORM_STACK}/token-signing")
    register = d.example.resolve(d.example.cfn["Outputs"]["RegisterApisCommand"]["Value"])
    assert register == (
        f"svcauth apis register --env dev --kms-key-id {key} --api-id IdentityKeyApi --name identity && "
        f"svcauth apis register --env dev --kms-key-id {key} --api-id TutorKeyApi --name tutor")


def test_an_operator_policy_administers_the_store_and_nothing_else():
    d = deploy()
    r = d.platform
    st = statements_of(r.resources()["OperatorPolicy"])
    key = r.getatt("StoreKey", "Arn")
    for action in ("ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter", "ssm:GetParametersByPath"):
        assert evaluate(st, action, ssm_arn("/svcauth/dev/apis/a1b2c3d4e5")) == "allow", action
        assert evaluate(st, action, ssm_arn("/svcauth/prod/apis/a1b2c3d4e5")) == "implicit-deny", action
    via = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
    assert evaluate(st, "kms:Encrypt", key, via) == "allow"
    assert evaluate(st, "kms:Encrypt", key, {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}) != "allow"
    signing = r.getatt("TokenSigningKey", "Arn")
    assert evaluate(st, "kms:GetPublicKey", signing) == "allow"
    assert evaluate(st, "kms:Sign", signing, {"kms:SigningAlgorithm": "ECDSA_SHA_256"}) == "implicit-deny"
    assert r.exports()[f"{PLATFORM_STACK}-OperatorPolicyArn"] == "OperatorPolicy"

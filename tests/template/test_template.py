"""Security properties of template.yaml, checked on the SAM translator's output.

Each AuthMode is transformed offline, then resolved for concrete parameter values
(Conditions, Fn::If, Ref, Sub) so the assertions read the values CloudFormation
would deploy. Access decisions are evaluated with the small IAM matcher in
templatelib, and the negative-control tests show the checks fail on a weakened
template.
"""

from __future__ import annotations

import copy
import ipaddress
import json

import pytest

from templatelib import (
    ROOT,
    ACCOUNT,
    CREATED_VPCE,
    MODES,
    PARTITION,
    REGION,
    STACK,
    SAMPLE_PARAMETERS,
    Resolver,
    api_methods,
    as_list,
    evaluate,
    expand_api_policy,
    iam_api_decision,
    load_template,
    method_arn,
    parameter_values,
    resource_policy,
    role_statements,
    security_schemes,
    transform,
    wildcard_match,
)

EXISTING_VPCE = "vpce-0123456789abcdef0"
SAMPLE_SUBNETS = SAMPLE_PARAMETERS["SubnetIds"]
OTHER_VPCE = "vpce-0badbadbadbadbad0"
STAGE = "v1"

# docs/contracts.md, "Routes"
IDENTITY_ROUTES = {
    ("GET", "/internal/users/{id}"),
    ("GET", "/internal/users/by-email/{email}"),
    ("POST", "/internal/users"),
}
TUTOR_ROUTES = {("GET", "/internal/tutor/students/{id}/profile")}
# docs/tokens.md, the token API: (authorization, verb, path)
TOKEN_ROUTE_AUTH = {("ServiceKeyAuthorizer", "POST", "/token"), ("AWS_IAM", "POST", "/token/iam"),
                    ("NONE", "GET", "/.well-known/jwks.json")}
KEY_APIS = {"IdentityKeyApi": IDENTITY_ROUTES, "TutorKeyApi": TUTOR_ROUTES}
IAM_APIS = {"IdentityIamApi": IDENTITY_ROUTES, "TutorIamApi": TUTOR_ROUTES}

# docs/contracts.md, "Authorizer environment" and "Backend environment"
AUTHORIZER_ENV = {
    "SVCAUTH_KEY_SOURCE", "SVCAUTH_SSM_PATH", "SVCAUTH_LEGACY_PARAMETER", "SVCAUTH_KEYS_FILE",
    "SVCAUTH_CACHE_TTL_SECS", "SVCAUTH_STALE_GRACE_SECS", "SVCAUTH_SSM_TIMEOUT_MS",
    "SVCAUTH_LOAD_TIMEOUT_MS", "SVCAUTH_METRICS_NAMESPACE", "SVCAUTH_API_PATH",
    "SVCAUTH_ACCEPT", "SVCAUTH_TOKEN_ISSUER", "SVCAUTH_TOKEN_JWKS_PARAMETER", "SVCAUTH_TOKEN_MIN_REMAINING_SECS",
}
IDENTITY_ENV = {"USERS_TABLE", "SVCAUTH_IAM_ROLES"}
TUTOR_ENV = {"SVCAUTH_IAM_ROLES", "IDENTITY_SERVICE_URL", "SERVICE_AUTH_MODE", "SERVICE_NAME",
             "SERVICE_API_KEY_PARAMETER"}
BINARIES = {"authorizer", "identity-service", "tutor-service", "token-issuer"}
# The ECS role and this stack's tutor function role are both tutor-service.
IAM_ROLE_MAP = "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,AdminServiceRole=admin-service"

# Actions AWS offers no resource-level permissions for; "*" is the narrowest there is.
NO_RESOURCE_LEVEL = {"xray:PutTraceSegments", "xray:PutTelemetryRecords",
                     "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}


# ------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def sam():
    return load_template()


_CACHE: dict = {}


def resolved(sam, **params) -> Resolver:
    key = json.dumps(params, sort_keys=True)
    if key not in _CACHE:
        cfn = transform(sam, **params)
        _CACHE[key] = Resolver(cfn, parameter_values(sam, **params))
    return _CACHE[key]


@pytest.fixture(scope="session", params=MODES)
def mode(request):
    return request.param


@pytest.fixture(scope="session", params=["created", "existing"])
def endpoint(request):
    return request.param


def build(sam, mode, endpoint="created", **extra) -> Resolver:
    params = {"AuthMode": mode, **extra}
    if endpoint == "existing":
        params["ExecuteApiEndpointId"] = EXISTING_VPCE
    return resolved(sam, **params)


def vpce_of(endpoint: str) -> str:
    return CREATED_VPCE if endpoint == "created" else EXISTING_VPCE


def apis(r: Resolver) -> dict:
    return r.resources("AWS::ApiGateway::RestApi")


def with_nested(r: Resolver) -> list[Resolver]:
    """`r` and every nested application it deploys."""
    return [r] + [r.nested(lid) for lid in r.nested_ids()]


def authorizer_app(r: Resolver) -> Resolver:
    """The nested authorizer application (authorizer/template.yaml) as deployed by `r`."""
    return r.nested("Authorizer")


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
])
def test_auth_mode_selects_the_apis(sam, mode, expected):
    r = build(sam, mode)
    assert set(apis(r)) == expected
    assert r.live("Authorizer") == (mode != "iam")
    if mode != "iam":
        assert set(authorizer_app(r).resources("AWS::Lambda::Function")) == {"AuthorizerFunction"}


def test_every_api_serves_exactly_the_contract_routes(sam):
    r = build(sam, "both")
    for api_id, routes in {**KEY_APIS, **IAM_APIS}.items():
        assert set(api_methods(apis(r)[api_id])) == routes, api_id


# ------------------------------------------------------------------- private
def test_every_api_is_private_and_bound_to_the_endpoint(sam, mode, endpoint):
    r = build(sam, mode, endpoint)
    for api_id, api in apis(r).items():
        cfg = api["Properties"]["EndpointConfiguration"]
        assert cfg["Types"] == ["PRIVATE"], api_id
        assert cfg["VpcEndpointIds"] == [vpce_of(endpoint)], api_id
    assert r.live("ExecuteApiEndpoint") == (endpoint == "created")


def test_resource_policy_denies_traffic_not_from_the_endpoint(sam, mode, endpoint):
    r = build(sam, mode, endpoint)
    vpce = vpce_of(endpoint)
    for api_id, api in apis(r).items():
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


def test_key_api_resource_policy_lets_endpoint_traffic_reach_the_authorizer(sam, endpoint):
    r = build(sam, "api-key", endpoint)
    for api_id, api in apis(r).items():
        policy = expand_api_policy(resource_policy(api), api_id)
        arn = method_arn(api_id, STAGE, "POST", "internal/users")
        assert evaluate(policy, "execute-api:Invoke", arn, {"aws:SourceVpce": vpce_of(endpoint)}) == "allow"


def test_endpoint_policy_reaches_only_this_accounts_apis(sam):
    r = build(sam, "api-key")
    ep = r.resources()["ExecuteApiEndpoint"]["Properties"]
    stmts = as_list(ep["PolicyDocument"]["Statement"])
    mine = method_arn("abc123", STAGE, "GET", "internal/users/1")
    foreign = mine.replace(ACCOUNT, "210987654321")
    assert evaluate(stmts, "execute-api:Invoke", mine, {}, None) == "allow"
    assert evaluate(stmts, "execute-api:Invoke", foreign, {}, None) == "implicit-deny"
    assert ep["PrivateDnsEnabled"] is False


# ------------------------------------------------------------------ auth per method
def test_api_key_mode_puts_the_authorizer_on_every_method(sam):
    r = build(sam, "api-key")
    for api_id, api in apis(r).items():
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
        assert "function:Authorizer-AuthorizerFunction/invocations" in auth["authorizerUri"]


def test_authorizer_ttl_is_a_parameter(sam):
    r = build(sam, "api-key", AuthorizerResultTtl=0)
    for api in apis(r).values():
        auth = security_schemes(api)["api-key"]["x-amazon-apigateway-authorizer"]
        assert int(auth["authorizerResultTtlInSeconds"]) == 0


def test_iam_mode_puts_aws_iam_on_every_method(sam):
    r = build(sam, "iam")
    for api_id, api in apis(r).items():
        methods = api_methods(api)
        assert methods
        for route, op in methods.items():
            assert op["security"] == [{"AWS_IAM": []}], (api_id, route)
            # invoked under the Lambda permission, not with the caller's credentials
            assert "credentials" not in op["x-amazon-apigateway-integration"], (api_id, route)
        assert security_schemes(api)["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_both_mode_serves_every_route_with_each_kind_of_auth(sam):
    r = build(sam, "both")
    by_auth: dict[str, set] = {"key": set(), "iam": set()}
    for api in apis(r).values():
        for route, op in api_methods(api).items():
            kind = "iam" if op["security"] == [{"AWS_IAM": []}] else "key"
            by_auth[kind].add(route)
    assert by_auth["key"] == by_auth["iam"] == IDENTITY_ROUTES | TUTOR_ROUTES


def test_backends_of_an_api_exist_exactly_when_the_api_does(sam, mode):
    r = build(sam, mode)
    for lid, perm in r.resources("AWS::Lambda::Permission").items():
        # would fail CloudFormation with an unresolved reference otherwise
        assert isinstance(perm["Properties"]["SourceArn"], str), lid


# ------------------------------------------------------------------ least privilege
def _iam_setup(sam, mode="iam"):
    r = build(sam, mode)
    identity_api = apis(r)["IdentityIamApi"]
    tutor_api = apis(r)["TutorIamApi"]
    return r, resource_policy(identity_api), resource_policy(tutor_api)


@pytest.mark.parametrize("mode", ["iam", "both"])
def test_tutor_role_cannot_invoke_admin_only_routes(sam, mode):
    r, identity_rp, tutor_rp = _iam_setup(sam, mode)
    tutor = role_statements(r, "TutorServiceRole")
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


def test_admin_role_can_invoke_every_internal_route(sam):
    r, identity_rp, tutor_rp = _iam_setup(sam)
    admin = role_statements(r, "AdminServiceRole")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/AdminServiceRole"
    ctx = {"aws:SourceVpce": CREATED_VPCE}
    for api, rp, routes in (("IdentityIamApi", identity_rp, IDENTITY_ROUTES),
                            ("TutorIamApi", tutor_rp, TUTOR_ROUTES)):
        for verb, path in routes:
            arn = method_arn(api, STAGE, verb, path.replace("{", "").replace("}", ""))
            assert iam_api_decision(rp, admin, caller, arn, ctx) == "allow", (api, verb, path)
            assert iam_api_decision(rp, admin, caller, arn, {"aws:SourceVpce": OTHER_VPCE}) == "deny"


def test_iam_api_resource_policy_never_allows_a_principal_directly(sam):
    """A same-account Allow naming "*" or a role would bypass the roles' own policies."""
    _, identity_rp, tutor_rp = _iam_setup(sam)
    for st in identity_rp + tutor_rp:
        if st["Effect"] == "Allow":
            assert st["Principal"] == {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"}


def test_negative_control_a_broad_resource_policy_is_caught(sam):
    r, identity_rp, _ = _iam_setup(sam)
    tutor = role_statements(r, "TutorServiceRole")
    weakened = copy.deepcopy(identity_rp)
    weakened[0]["Principal"] = "*"
    arn = method_arn("IdentityIamApi", STAGE, "POST", "internal/users")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/TutorServiceRole"
    assert iam_api_decision(weakened, tutor, caller, arn, {"aws:SourceVpce": CREATED_VPCE}) == "allow"


def test_negative_control_a_broad_tutor_policy_is_caught(sam):
    sam2 = copy.deepcopy(sam)
    pol = sam2["Resources"]["TutorServiceInvokePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    pol["Resource"] = [{"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                                   "${IdentityIamApi}/*/*/internal/*"}]
    r = Resolver(transform(sam2, AuthMode="iam"), parameter_values(sam2, AuthMode="iam"))
    tutor = role_statements(r, "TutorServiceRole")
    assert evaluate(tutor, "execute-api:Invoke",
                    method_arn("IdentityIamApi", STAGE, "POST", "internal/users")) == "allow"


def _ssm(name: str) -> str:
    return f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{name}"


def test_authorizer_reads_only_its_own_ssm_path(sam):
    r = build(sam, "api-key")
    st = role_statements(authorizer_app(r), "AuthorizerRole")
    own = "/svcauth/dev/keys"
    assert evaluate(st, "ssm:GetParametersByPath", _ssm(own)) == "allow"
    assert evaluate(st, "ssm:GetParameter", _ssm(own + "/tutor-service")) == "allow"
    for other in ("/svcauth/dev", "/svcauth/prod/keys", "/svcauth/prod/keys/tutor-service",
                  "/svcauth/dev/keys-other/x", "/dev/tutor-service/identity-service-api-key",
                  "/dev/identity-service/service-api-keys"):
        for action in ("ssm:GetParameter", "ssm:GetParametersByPath", "ssm:GetParameters"):
            assert evaluate(st, action, _ssm(other)) == "implicit-deny", (action, other)
    for action in ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:LabelParameterVersion"):
        assert evaluate(st, action, _ssm(own + "/tutor-service")) == "implicit-deny"


def test_authorizer_decrypts_only_through_ssm_for_its_path(sam):
    r = build(sam, "api-key")
    st = role_statements(authorizer_app(r), "AuthorizerRole")
    key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
               "kms:EncryptionContext:PARAMETER_ARN": _ssm("/svcauth/dev/keys/tutor-service")}
    assert evaluate(st, "kms:Decrypt", key, via_ssm) == "allow"
    assert evaluate(st, "kms:Decrypt", key, {**via_ssm, "kms:ViaService": f"s3.{REGION}.amazonaws.com"}) != "allow"
    assert evaluate(st, "kms:Decrypt", key, {"kms:EncryptionContext:PARAMETER_ARN": via_ssm[
        "kms:EncryptionContext:PARAMETER_ARN"]}) != "allow"
    other_param = {**via_ssm, "kms:EncryptionContext:PARAMETER_ARN": _ssm("/dev/admin-service/identity-service-api-key")}
    assert evaluate(st, "kms:Decrypt", key, other_param) != "allow"
    assert evaluate(st, "kms:Decrypt", key.replace(ACCOUNT, "210987654321"), via_ssm) != "allow"


def test_legacy_parameter_is_readable_only_when_configured(sam):
    legacy = "/dev/identity-service/service-api-keys"
    with_legacy = role_statements(authorizer_app(build(sam, "api-key", LegacyKeysParameter=legacy)), "AuthorizerRole")
    assert evaluate(with_legacy, "ssm:GetParameter", _ssm(legacy)) == "allow"
    without = role_statements(authorizer_app(build(sam, "api-key")), "AuthorizerRole")
    assert evaluate(without, "ssm:GetParameter", _ssm(legacy)) == "implicit-deny"


@pytest.mark.parametrize("role,own,other", [
    ("TutorServiceRole", "tutor-service", "admin-service"),
    ("AdminServiceRole", "admin-service", "tutor-service"),
])
def test_each_service_reads_only_its_own_key(sam, role, own, other):
    st = role_statements(build(sam, "api-key"), role)
    assert evaluate(st, "ssm:GetParameter", _ssm(f"/dev/{own}/identity-service-api-key")) == "allow"
    assert evaluate(st, "ssm:GetParameter", _ssm(f"/dev/{other}/identity-service-api-key")) == "implicit-deny"
    assert evaluate(st, "ssm:GetParameter", _ssm(f"/prod/{own}/identity-service-api-key")) == "implicit-deny"
    assert evaluate(st, "ssm:GetParametersByPath", _ssm("/svcauth/dev/keys")) == "implicit-deny"
    key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ctx = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
    assert evaluate(st, "kms:Decrypt", key, {
        **ctx, "kms:EncryptionContext:PARAMETER_ARN": _ssm(f"/dev/{own}/identity-service-api-key")}) == "allow"
    assert evaluate(st, "kms:Decrypt", key, {
        **ctx, "kms:EncryptionContext:PARAMETER_ARN": _ssm(f"/dev/{other}/identity-service-api-key")}) != "allow"


@pytest.mark.parametrize("role,service", [("TutorServiceRole", "tutor-service"),
                                          ("AdminServiceRole", "admin-service")])
def test_iam_only_mode_grants_no_key_reads(sam, role, service):
    st = role_statements(build(sam, "iam"), role)
    assert evaluate(st, "ssm:GetParameter", _ssm(f"/dev/{service}/identity-service-api-key")) == "implicit-deny"


def test_service_roles_are_assumable_by_ecs_tasks_and_lambda_only(sam):
    r = build(sam, "both")
    for role in ("TutorServiceRole", "AdminServiceRole"):
        trust = as_list(r.resources()[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        services = {svc for st in trust for svc in as_list(st["Principal"].get("Service"))}
        assert services == {"ecs-tasks.amazonaws.com", "lambda.amazonaws.com"}
        assert all(set(st["Principal"]) == {"Service"} for st in trust)


def test_no_star_resource_where_a_narrower_one_exists(sam, mode):
    everything = {}
    for r in with_nested(build(sam, mode, EnableCloudTrail="true")):
        everything.update(r.resources())
    assert ("AuthorizerRole" in everything) == (mode != "iam")
    for lid, res in everything.items():
        docs = []
        if res["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
            assert not res["Properties"].get("ManagedPolicyArns"), lid
        elif res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [res["Properties"]["PolicyDocument"]]
        for doc in docs:
            for st in as_list(doc["Statement"]):
                if "*" in as_list(st.get("Resource")):
                    assert set(as_list(st["Action"])) <= NO_RESOURCE_LEVEL, (lid, st)
                assert "*" not in as_list(st["Action"]), (lid, st)
                assert not any(a.endswith(":*") for a in as_list(st["Action"])), (lid, st)


# ------------------------------------------------------------------- throttling
def test_a_usage_plan_per_calling_service(sam):
    r = build(sam, "api-key", TutorRateLimit=7, TutorBurstLimit=9)
    plans = r.resources("AWS::ApiGateway::UsagePlan")
    assert set(plans) == {"TutorServiceUsagePlan", "AdminServiceUsagePlan"}
    tutor = plans["TutorServiceUsagePlan"]["Properties"]
    assert tutor["Throttle"] == {"RateLimit": "7", "BurstLimit": "9"}
    assert {s["ApiId"] for s in tutor["ApiStages"]} == {"IdentityKeyApi"}
    admin = plans["AdminServiceUsagePlan"]["Properties"]
    assert {s["ApiId"] for s in admin["ApiStages"]} == {"IdentityKeyApi", "TutorKeyApi"}
    keys = r.resources("AWS::ApiGateway::UsagePlanKey")
    assert {(k["Properties"]["UsagePlanId"], k["Properties"]["KeyId"]) for k in keys.values()} == {
        ("TutorServiceUsagePlan", "TutorServiceApiKey"), ("AdminServiceUsagePlan", "AdminServiceApiKey")}
    assert not build(sam, "iam").resources("AWS::ApiGateway::UsagePlan")


# -------------------------------------------------------------------- audit
def test_access_logs_are_json_with_the_audit_fields(sam, mode):
    r = build(sam, mode)
    stages = r.resources("AWS::ApiGateway::Stage")
    assert len(stages) == len(apis(r))
    group = r.resources()["ApiAccessLogGroup"]["Properties"]
    assert int(group["RetentionInDays"]) == 365
    for lid, stage in stages.items():
        p = stage["Properties"]
        assert p["AccessLogSetting"]["DestinationArn"] == r.getatt("ApiAccessLogGroup", "Arn")
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


def test_functions_are_rust_arm64_traced_with_retained_logs(sam, mode):
    fns, groups = {}, {}
    for r in with_nested(build(sam, mode)):
        fns.update(r.resources("AWS::Lambda::Function"))
        groups.update(r.resources("AWS::Logs::LogGroup"))
    assert fns
    assert ("AuthorizerFunction" in fns) == (mode != "iam")
    for lid, fn in fns.items():
        p = fn["Properties"]
        assert p["Runtime"] == "provided.al2023", lid
        assert p["Architectures"] == ["arm64"], lid
        assert p["TracingConfig"] == {"Mode": "Active"}, lid
        group_name = p["LoggingConfig"]["LogGroup"]
        assert any(g["Properties"]["LogGroupName"] == group_name and g["Properties"].get("RetentionInDays")
                   for g in groups.values()), lid


def test_build_metadata_names_the_contract_binaries(sam):
    fns = {lid: res for lid, res in sam["Resources"].items() if res["Type"] == "AWS::Serverless::Function"}
    fns.update({f"Authorizer/{lid}": res for lid, res in load_template(ROOT / "authorizer" / "template.yaml")[
        "Resources"].items() if res["Type"] == "AWS::Serverless::Function"})
    assert sam["Globals"]["Function"]["CodeUri"] == "."
    for lid, res in fns.items():
        md = res["Metadata"]
        assert md["BuildMethod"] == "rust-cargolambda", lid
        assert md["BuildProperties"]["Binary"] in BINARIES, lid
    assert {res["Metadata"]["BuildProperties"]["Binary"] for res in fns.values()} == BINARIES


def test_environment_follows_the_contract(sam):
    r = build(sam, "both")
    fns = r.resources("AWS::Lambda::Function")
    env = {lid: fn["Properties"]["Environment"]["Variables"] for lid, fn in fns.items()}
    env["AuthorizerFunction"] = authorizer_app(r).resources()["AuthorizerFunction"]["Properties"][
        "Environment"]["Variables"]
    assert set(env["AuthorizerFunction"]) <= AUTHORIZER_ENV
    assert env["AuthorizerFunction"]["SVCAUTH_KEY_SOURCE"] == "ssm"
    assert env["AuthorizerFunction"]["SVCAUTH_SSM_PATH"] == "/svcauth/dev/keys"
    for lid in ("IdentityServiceFunction", "IdentityServiceIamFunction"):
        assert set(env[lid]) == IDENTITY_ENV
        assert env[lid]["USERS_TABLE"] == "UsersTable"
        assert env[lid]["SVCAUTH_IAM_ROLES"] == IAM_ROLE_MAP
    for lid, auth, api in (("TutorServiceFunction", "api-key", "IdentityKeyApi"),
                           ("TutorServiceIamFunction", "iam", "IdentityIamApi")):
        assert set(env[lid]) == TUTOR_ENV
        assert env[lid]["SERVICE_AUTH_MODE"] == auth
        assert env[lid]["SERVICE_NAME"] == "tutor-service"
        assert env[lid]["SERVICE_API_KEY_PARAMETER"] == "/dev/tutor-service/identity-service-api-key"
        assert env[lid]["IDENTITY_SERVICE_URL"] == (
            f"https://{api}-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}")


def test_cloudtrail_is_optional_and_its_bucket_locked_down(sam):
    assert not build(sam, "api-key").live("Trail")
    r = build(sam, "api-key", EnableCloudTrail="true")
    res = r.resources()
    bucket = res["CloudTrailBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    stmts = as_list(res["CloudTrailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"])
    bucket_arn = r.getatt("CloudTrailBucket", "Arn")
    obj = f"{bucket_arn}/AWSLogs/{ACCOUNT}/CloudTrail/x.json.gz"
    trail_arn = f"arn:{PARTITION}:cloudtrail:{REGION}:{ACCOUNT}:trail/{STACK}-trail"
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
def test_routes_are_plain_sam_events_a_yaml_reader_can_follow(sam):
    """The local gateway reads routes and their authorization straight from the YAML."""
    res = sam["Resources"]
    seen = set()
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
                assert auth in ("ServiceKeyAuthorizer", "AWS_IAM", "NONE")
                seen.add((auth, p["Method"].upper(), p["Path"]))
                continue
            assert "Auth" not in p  # the API's DefaultAuthorizer applies
            if default == {"Ref": "AuthMode"}:
                # the authorizer named like the AuthMode, one for every value
                authorizers = api["Properties"]["Auth"]["Authorizers"]
                assert set(authorizers) == set(sam["Parameters"]["AuthMode"]["AllowedValues"])
                for a in authorizers.values():
                    assert a["FunctionArn"] == {"Fn::GetAtt": ["Authorizer", "Outputs.FunctionArn"]}
                a = authorizers["api-key"]
                assert a["Identity"]["Headers"] == ["x-service-api-key"]
                default = "by-auth-mode"
            else:
                assert default == "AWS_IAM"
            seen.add((default, p["Method"].upper(), p["Path"]))
    routes = IDENTITY_ROUTES | TUTOR_ROUTES
    assert seen == {(d, m, p) for d in ("AWS_IAM", "by-auth-mode") for m, p in routes} | TOKEN_ROUTE_AUTH


def test_outputs_name_urls_roles_authorizer_and_ssm_paths(sam):
    r = build(sam, "both")
    outputs = {k: r.resolve(v) for k, v in r.cfn["Outputs"].items()
               if "Condition" not in v or r.condition(v["Condition"])}
    for name in ("IdentityApiUrl", "TutorApiUrl", "IdentityIamApiUrl", "TutorIamApiUrl",
                 "AuthorizerFunctionArn", "TutorServiceRoleArn", "AdminServiceRoleArn",
                 "KeyStorePath", "TutorKeyParameter", "AdminKeyParameter"):
        assert name in outputs, name
    assert outputs["KeyStorePath"]["Value"] == "/svcauth/dev/keys"
    assert outputs["IdentityApiUrl"]["Value"] == (
        f"https://IdentityKeyApi-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}")


@pytest.mark.parametrize("path", ["template.yaml", "docs/examples/attach-authorizer.yaml",
                                  "authorizer/template.yaml"])
def test_every_checkov_suppression_has_a_written_reason(path):
    doc = load_template(ROOT / path)
    skips = [(lid, s) for lid, res in doc["Resources"].items()
             for s in res.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    for lid, s in skips:
        assert s["id"].startswith(("CKV_", "CKV2_")), (lid, s)
        assert len(s.get("comment", "").split()) >= 8, f"{lid} suppresses {s['id']} without a reason"


# ------------------------------------------- attaching the authorizer elsewhere
EXAMPLE = ROOT / "docs" / "examples" / "attach-authorizer.yaml"
EXAMPLE_AUTHORIZER = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:svcauth-dev-AuthorizerFunction-AbC123"


def test_attach_example_puts_the_shared_authorizer_on_every_route():
    sam2 = load_template(EXAMPLE)
    params = {"AuthorizerFunctionArn": EXAMPLE_AUTHORIZER, "ExecuteApiEndpointId": EXISTING_VPCE}
    r = Resolver(transform(sam2, **params), parameter_values(sam2, **params))
    (api_id, api), = apis(r).items()
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["PRIVATE"], "VpcEndpointIds": [EXISTING_VPCE]}
    methods = api_methods(api)
    assert methods == {("GET", "/internal/billing/invoices"): methods[("GET", "/internal/billing/invoices")]}
    for op in methods.values():
        assert op["security"] == [{"ServiceKeyAuthorizer": []}]
    auth = security_schemes(api)["ServiceKeyAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert auth["type"] == "request"
    assert auth["identitySource"] == "method.request.header.x-service-api-key"
    assert auth["authorizerUri"] == (f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                                     f"{EXAMPLE_AUTHORIZER}/invocations")
    # API Gateway may invoke the shared authorizer for this API's authorizers only
    perms = [p["Properties"] for p in r.resources("AWS::Lambda::Permission").values()
             if p["Properties"]["FunctionName"] == EXAMPLE_AUTHORIZER]
    assert perms == [{"Action": "lambda:InvokeFunction", "FunctionName": EXAMPLE_AUTHORIZER,
                      "Principal": "apigateway.amazonaws.com",
                      "SourceArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/authorizers/*"}]
    policy = expand_api_policy(resource_policy(api), api_id)
    arn = method_arn(api_id, STAGE, "GET", "internal/billing/invoices")
    assert evaluate(policy, "execute-api:Invoke", arn, {"aws:SourceVpce": EXISTING_VPCE}) == "allow"
    assert evaluate(policy, "execute-api:Invoke", arn, {"aws:SourceVpce": OTHER_VPCE}) == "deny"


# ------------------------------------------- the first `sam deploy` (issue 12 A)
def test_logging_role_trust_is_the_documented_one(sam):
    """A.1: AWS's documented trust policy for the API Gateway CloudWatch role has no
    condition; one API Gateway does not satisfy would roll the stack back."""
    r = build(sam, "api-key")
    trust = as_list(r.resources()["ApiGatewayLoggingRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                      "Action": "sts:AssumeRole"}]
    assert evaluate(trust, "sts:AssumeRole", "*", {}, "apigateway.amazonaws.com") == "allow"
    assert evaluate(trust, "sts:AssumeRole", "*", {}, "lambda.amazonaws.com") == "implicit-deny"


@pytest.mark.parametrize("lid", ["ApiAccessLogGroup", "UsersTable", "CloudTrailBucket"])
def test_kept_resources_go_when_the_first_create_rolls_back(sam, lid):
    """A.2: Retain would keep them after a failed first create, and every retry would
    then fail on "already exists"."""
    r = build(sam, "api-key", EnableCloudTrail="true")
    res = r.cfn["Resources"][lid]
    assert res["DeletionPolicy"] == "RetainExceptOnCreate"
    assert res["UpdateReplacePolicy"] == "Retain"


def test_no_plain_retain_on_a_resource_with_a_fixed_name(sam):
    """A.2, the general rule: a fixed name plus Retain breaks the retry of a first create."""
    name_props = {"AWS::Logs::LogGroup": "LogGroupName", "AWS::DynamoDB::Table": "TableName",
                  "AWS::S3::Bucket": "BucketName", "AWS::IAM::Role": "RoleName"}
    for lid, res in sam["Resources"].items():
        prop = name_props.get(res["Type"])
        if prop and prop in res.get("Properties", {}):
            assert res.get("DeletionPolicy", "Delete") != "Retain", lid


def test_endpoints_can_use_their_own_subnets(sam):
    """A.3: interface endpoints are not offered in every zone; they can take other subnets."""
    default = build(sam, "api-key").resources()
    for lid in ("ExecuteApiEndpoint", "SsmEndpoint"):
        assert default[lid]["Properties"]["SubnetIds"] == SAMPLE_SUBNETS, lid
    own = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    r = build(sam, "api-key", EndpointSubnetIds=own).resources()
    for lid in ("ExecuteApiEndpoint", "SsmEndpoint"):
        assert r[lid]["Properties"]["SubnetIds"] == own, lid
    # the functions stay in SubnetIds
    assert r["TutorServiceFunction"]["Properties"]["VpcConfig"]["SubnetIds"] == SAMPLE_SUBNETS


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
def test_the_tutor_function_reaches_the_endpoints_in_any_vpc(sam, vpc_ip):
    """A.4: group-to-group rules, so the tutor function reaches the created endpoints
    whatever the VPC's CIDR, and a stranger in the VPC does not."""
    r = build(sam, "api-key")
    res = r.resources()
    fn_groups = res["TutorServiceFunction"]["Properties"]["VpcConfig"]["SecurityGroupIds"]
    assert fn_groups == ["ApiClientSecurityGroup"]
    for ep in ("ExecuteApiEndpoint", "SsmEndpoint"):
        (ep_group,) = res[ep]["Properties"]["SecurityGroupIds"]
        assert _ingress_admits(r, ep_group, "ApiClientSecurityGroup", vpc_ip), ep
        assert _egress_allows(r, "ApiClientSecurityGroup", ep_group, vpc_ip), ep
        assert not _ingress_admits(r, ep_group, "SomeOtherGroup", vpc_ip), ep
    # nothing else leaves the function's group when both endpoints are the stack's own
    assert not _egress_allows(r, "ApiClientSecurityGroup", None, "52.94.1.1")
    assert not _ingress_admits(r, "EndpointSecurityGroup", "SomeOtherGroup", vpc_ip)


def test_vpc_cidr_is_an_optional_extra(sam):
    r = build(sam, "api-key", VpcCidr="10.20.0.0/16")
    assert _ingress_admits(r, "EndpointSecurityGroup", "x", "10.20.3.4")
    assert not _ingress_admits(r, "EndpointSecurityGroup", "x", "10.21.3.4")
    assert sam["Parameters"]["VpcCidr"]["Default"] == ""


@pytest.mark.parametrize("params", [{"ExecuteApiEndpointId": EXISTING_VPCE}, {"CreateSsmEndpoint": "false"}])
def test_the_tutor_function_can_reach_endpoints_it_did_not_create(sam, params):
    """A.4: an existing endpoint (or SSM through a NAT) has an address the stack cannot
    name: HTTPS egress opens, nothing else."""
    r = build(sam, "api-key", **params)
    assert _egress_allows(r, "ApiClientSecurityGroup", None, "10.9.8.7")
    rules = [e["Properties"] for e in r.resources("AWS::EC2::SecurityGroupEgress").values()]
    rules += as_list(r.resources()["ApiClientSecurityGroup"]["Properties"]["SecurityGroupEgress"])
    for rule in rules:
        assert (rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort")) == ("tcp", 443, 443) or (
            rule.get("CidrIp") == "127.0.0.1/32"), rule


def test_client_group_is_an_output(sam):
    r = build(sam, "api-key")
    assert r.resolve(r.cfn["Outputs"]["ApiClientSecurityGroupId"]["Value"]) == "ApiClientSecurityGroup"


def test_stages_redeploy_on_every_update(sam, monkeypatch):
    """A.5: the resource policy names the endpoint by Ref, so a replaced endpoint does not
    change SAM's deployment hash; a new deployment on every update fixes the stage."""
    import time as time_module

    def deployments(at: float) -> set[str]:
        monkeypatch.setattr(time_module, "time", lambda: at)
        cfn = transform(sam, AuthMode="both")
        return {lid for lid, res in cfn["Resources"].items() if res["Type"] == "AWS::ApiGateway::Deployment"}

    first, later = deployments(1_800_000_000.0), deployments(1_800_000_060.0)
    # every API of the template (SAM transforms the ones a Condition leaves out too)
    assert len(first) == len(later) == sum(
        1 for res in sam["Resources"].values() if res["Type"] == "AWS::Serverless::Api")
    assert not first & later
    # negative control: without AlwaysDeploy, a new VpcId (which replaces the created
    # endpoint) leaves every deployment as it was
    sam2 = copy.deepcopy(sam)
    del sam2["Globals"]["Api"]["AlwaysDeploy"]
    monkeypatch.setattr(time_module, "time", lambda: 1_800_000_000.0)
    a = {lid for lid in transform(sam2, AuthMode="both")["Resources"] if "Deployment" in lid}
    b = {lid for lid in transform(sam2, AuthMode="both", VpcId="vpc-0fedcba9876543210")["Resources"]
         if "Deployment" in lid}
    assert a == b


@pytest.mark.parametrize("lid", ["ApiGatewayLoggingRole", "ApiGatewayAccount"])
def test_logging_role_and_setting_outlive_the_stack(sam, lid):
    """A.6: the account setting serves every REST API in the Region; deleting the stack
    or turning ConfigureApiGatewayLogging off must not delete the role it names."""
    res = sam["Resources"][lid]
    assert res["DeletionPolicy"] == "Retain"
    assert res["UpdateReplacePolicy"] == "Retain"


def test_tutor_function_has_its_own_role(sam, mode):
    """A.7: the VPC network-interface rights belong to the function's role only, and the
    backends map that role to tutor-service too."""
    r = build(sam, mode)
    fns = r.resources("AWS::Lambda::Function")
    tutor_fn = "TutorServiceFunction" if mode != "iam" else "TutorServiceIamFunction"
    assert fns[tutor_fn]["Properties"]["Role"] == r.getatt("TutorFunctionRole", "Arn")
    eni = f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:network-interface/eni-0123"
    assert evaluate(role_statements(r, "TutorFunctionRole"), "ec2:CreateNetworkInterface", eni) == "allow"
    for role in ("TutorServiceRole", "AdminServiceRole"):
        assert evaluate(role_statements(r, role), "ec2:CreateNetworkInterface", eni) == "implicit-deny", role
    trust = as_list(r.resources()["TutorFunctionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    assert {s["Principal"]["Service"] for s in trust} == {"lambda.amazonaws.com"}
    for lid, fn in fns.items():
        if "SVCAUTH_IAM_ROLES" in fn["Properties"]["Environment"]["Variables"]:
            assert fn["Properties"]["Environment"]["Variables"]["SVCAUTH_IAM_ROLES"] == IAM_ROLE_MAP, lid


@pytest.mark.parametrize("mode", ["iam", "both"])
def test_tutor_function_role_may_call_what_tutor_service_may(sam, mode):
    r, identity_rp, _ = _iam_setup(sam, mode)
    st = role_statements(r, "TutorFunctionRole")
    caller = f"arn:{PARTITION}:iam::{ACCOUNT}:role/TutorFunctionRole"
    ctx = {"aws:SourceVpce": CREATED_VPCE}
    get = method_arn("IdentityIamApi", STAGE, "GET", "internal/users/u-1")
    post = method_arn("IdentityIamApi", STAGE, "POST", "internal/users")
    assert iam_api_decision(identity_rp, st, caller, get, ctx) == "allow"
    assert iam_api_decision(identity_rp, st, caller, post, ctx) == "deny"


def test_every_stage_has_an_execution_log_group_that_expires(sam, mode):
    """A.7: API Gateway creates API-Gateway-Execution-Logs_{api}/{stage} without expiry
    unless the group exists first; each stage refers to its group so it does."""
    r = build(sam, mode, LogRetentionDays=30)
    groups = {g["Properties"]["LogGroupName"]: g for g in r.resources("AWS::Logs::LogGroup").values()}
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


def test_platform_report_lines_are_kept(sam, mode):
    """A.7: SystemLogLevel WARN drops the REPORT lines (duration, memory, init)."""
    for r in with_nested(build(sam, mode)):
        for lid, fn in r.resources("AWS::Lambda::Function").items():
            assert fn["Properties"]["LoggingConfig"]["SystemLogLevel"] in ("INFO", "DEBUG"), lid


@pytest.mark.parametrize("role,group", [("AdminServiceRole", "AdminServiceLogGroup"),
                                        ("TutorServiceRole", "TutorServiceLogGroup"),
                                        ("TutorFunctionRole", "TutorServiceLogGroup")])
def test_every_role_lambda_may_assume_can_log_and_trace(sam, role, group):
    """A.7: a Lambda-trusted role without log rights loses its function's logs."""
    r = build(sam, "api-key")
    st = role_statements(r, role)
    stream = r.getatt(group, "Arn")[:-1] + "log-stream:x"
    assert evaluate(st, "logs:PutLogEvents", r.getatt(group, "Arn")) == "allow"
    assert evaluate(st, "logs:PutLogEvents", stream.replace(r.ref(group), "/aws/lambda/other")) == "implicit-deny"
    assert evaluate(st, "xray:PutTraceSegments", "*") == "allow"


# --------------------------------------- store isolation (issue 9 item 6, template)
def test_ssm_endpoint_does_not_break_other_ssm_use_in_the_vpc(sam):
    """9.6: with private DNS every SSM call in the VPC goes through the endpoint; a
    read-only endpoint policy broke Session Manager and PutParameter from inside."""
    r = build(sam, "api-key")
    ep = r.resources()["SsmEndpoint"]["Properties"]
    assert ep["PrivateDnsEnabled"] is True
    stmts = as_list(ep["PolicyDocument"]["Statement"])
    mine = {"aws:PrincipalAccount": ACCOUNT}
    for action, resource in (("ssm:PutParameter", _ssm("/dev/tutor-service/identity-service-api-key")),
                             ("ssm:StartSession", f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:instance/i-0123"),
                             ("ssm:UpdateInstanceInformation", f"arn:{PARTITION}:ec2:{REGION}:{ACCOUNT}:instance/i-0123"),
                             ("ssm:GetParameter", _ssm("/svcauth/dev/keys/tutor-service")),
                             ("ssm:GetParameter", f"arn:{PARTITION}:ssm:{REGION}::parameter/aws/service/x")):
        assert evaluate(stmts, action, resource, mine, None) == "allow", action
        # credentials of another account used inside the VPC stay out
        assert evaluate(stmts, action, resource, {"aws:PrincipalAccount": "210987654321"}, None) != "allow"
    # what a role may do is still its IAM policy's business
    assert evaluate(role_statements(r, "TutorServiceRole"), "ssm:PutParameter",
                    _ssm("/dev/tutor-service/identity-service-api-key")) == "implicit-deny"


KMS_KEY = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KMS_KEY = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/0000aaaa-00aa-00aa-00aa-000000000000"


def test_authorizer_refuses_to_decrypt_with_any_key_but_the_configured_one(sam):
    """9.6: with SsmKmsKeyArn set, a parameter under the key path encrypted with another
    key (aws/ssm included) cannot be decrypted by the authorizer: an explicit Deny."""
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
               "kms:EncryptionContext:PARAMETER_ARN": _ssm("/svcauth/dev/keys/tutor-service")}
    st = role_statements(authorizer_app(build(sam, "api-key", SsmKmsKeyArn=KMS_KEY)), "AuthorizerRole")
    assert evaluate(st, "kms:Decrypt", KMS_KEY, via_ssm) == "allow"
    assert evaluate(st, "kms:Decrypt", OTHER_KMS_KEY, via_ssm) == "deny"
    # an allow attached later does not open another key: the Deny wins
    assert evaluate(st + [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": OTHER_KMS_KEY}],
                    "kms:Decrypt", OTHER_KMS_KEY, via_ssm) == "deny"
    # the configured key still only through SSM and only for the authorizer's parameters
    assert evaluate(st, "kms:Decrypt", KMS_KEY, {**via_ssm, "kms:ViaService": "s3.us-east-1.amazonaws.com"}) != "allow"
    assert evaluate(st, "kms:Decrypt", KMS_KEY, {
        **via_ssm, "kms:EncryptionContext:PARAMETER_ARN": _ssm("/dev/admin-service/identity-service-api-key")}) != "allow"
    # without a customer managed key, the account's keys (aws/ssm) through SSM
    st = role_statements(authorizer_app(build(sam, "api-key")), "AuthorizerRole")
    assert evaluate(st, "kms:Decrypt", OTHER_KMS_KEY, via_ssm) == "allow"


# ------------------------------------ paths the other parts rely on (issue 9 items 2, 4)
def test_each_key_api_names_itself_for_api_scoping(sam):
    """The authorizer maps a methodArn's API id to a name through
    {SVCAUTH_API_PATH}/{apiId}; the stack writes it, nobody types an API id."""
    r = build(sam, "both")
    params = {p["Properties"]["Name"]: p["Properties"] for p in r.resources("AWS::SSM::Parameter").values()}
    assert params == {
        "/svcauth/dev/apis/IdentityKeyApi": {"Name": "/svcauth/dev/apis/IdentityKeyApi", "Type": "String",
                                             "Value": "identity", "Description": params[
                                                 "/svcauth/dev/apis/IdentityKeyApi"]["Description"]},
        "/svcauth/dev/apis/TutorKeyApi": {"Name": "/svcauth/dev/apis/TutorKeyApi", "Type": "String",
                                          "Value": "tutor", "Description": params[
                                              "/svcauth/dev/apis/TutorKeyApi"]["Description"]},
    }
    env = authorizer_app(r).resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_API_PATH"] == "/svcauth/dev/apis"
    st = role_statements(authorizer_app(r), "AuthorizerRole")
    for name in params:
        assert evaluate(st, "ssm:GetParameter", _ssm(name)) == "allow"
        assert evaluate(st, "ssm:PutParameter", _ssm(name)) == "implicit-deny"
    assert evaluate(st, "ssm:GetParameter", _ssm("/svcauth/prod/apis/IdentityKeyApi")) == "implicit-deny"
    assert not build(sam, "iam").resources("AWS::SSM::Parameter")
    # the environment's name is part of the path
    r = build(sam, "api-key", Environment="prod")
    assert {p["Properties"]["Name"] for p in r.resources("AWS::SSM::Parameter").values()} == {
        "/svcauth/prod/apis/IdentityKeyApi", "/svcauth/prod/apis/TutorKeyApi"}


def test_authorizer_reads_revocation_markers_beside_the_key_path(sam):
    st = role_statements(authorizer_app(build(sam, "api-key")), "AuthorizerRole")
    for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"):
        assert evaluate(st, action, _ssm("/svcauth/dev/revoked/k-abc")) == "allow", action
        assert evaluate(st, action, _ssm("/svcauth/dev/revoked")) == "allow", action
        assert evaluate(st, action, _ssm("/svcauth/prod/revoked/k-abc")) == "implicit-deny", action
        assert evaluate(st, action, _ssm("/svcauth/dev/revoked-other/k")) == "implicit-deny", action
    for action in ("ssm:PutParameter", "ssm:DeleteParameter"):
        assert evaluate(st, action, _ssm("/svcauth/dev/revoked/k-abc")) == "implicit-deny", action

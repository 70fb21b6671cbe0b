"""Signed service tokens in template.yaml (issue 10): the KMS signing key and who may
sign with it, the token issuer's role, the token API's routes and their authorization,
each AuthMode's identity source and result-cache TTL, and the authorizer's token
settings. Checked on the SAM translator's output, resolved for concrete parameters, with
templatelib's IAM matcher; negative controls show the checks fail on a weakened template.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from templatelib import (
    ACCOUNT,
    CREATED_VPCE,
    KMS_KEY_ID,
    PARTITION,
    REGION,
    ROOT,
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
)
from test_template import build, with_nested

TOKEN_MODES = ("token", "key-or-token")
OTHER_MODES = ("api-key", "iam", "both")
STAGE = "v1"
OTHER_VPCE = "vpce-0badbadbadbadbad0"
STACK_KEY = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{KMS_KEY_ID}"
OTHER_KEY = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/0000aaaa-00aa-00aa-00aa-000000000000"
ROOT_ARN = f"arn:{PARTITION}:iam::{ACCOUNT}:root"
ISSUER_ROLE = f"arn:{PARTITION}:iam::{ACCOUNT}:role/TokenIssuerFunctionRole"
# what the issuer sends (libs/token-kms: MessageType RAW, ECDSA_SHA_256)
SIGN_CTX = {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}


def role_arn(name: str) -> str:
    return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"


def _ssm(name: str) -> str:
    return f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{name}"


@pytest.fixture(scope="module")
def sam():
    return load_template()


def key_policy(r: Resolver) -> list[dict]:
    return as_list(r.resources()["TokenSigningKey"]["Properties"]["KeyPolicy"]["Statement"])


def sign_decision(policy: list[dict], principal: str, ctx: dict | None = None) -> str:
    """KMS evaluates the key policy with the caller as principal; aws:PrincipalArn is
    the role ARN of an assumed-role session."""
    ctx = {**SIGN_CTX, "aws:PrincipalArn": principal, **(ctx or {})}
    return evaluate(policy, "kms:Sign", STACK_KEY, ctx, principal)


# ------------------------------------------------------------------ which modes
@pytest.mark.parametrize("mode", TOKEN_MODES + OTHER_MODES)
def test_the_token_parts_exist_in_the_token_modes_only(sam, mode):
    r = build(sam, mode)
    parts = ("TokenSigningKey", "TokenSigningKeyAlias", "TokenIssuerFunction", "TokenIssuerFunctionRole",
             "TokenIssuerSigningPolicy", "TokenApi", "TokenApiName", "IssuerAuthorizer", "TokenIamInvokePolicy")
    for lid in parts:
        assert r.live(lid) == (mode in TOKEN_MODES), (mode, lid)
    # the internal APIs keep their logical ids (and so their URLs) from api-key through
    # key-or-token to token: a migration changes how callers prove themselves, not where
    # they call
    assert r.live("IdentityKeyApi") == r.live("TutorKeyApi") == (mode != "iam")


# ------------------------------------------------------------------ signing key
def test_signing_key_is_an_es256_key_behind_the_environments_alias(sam):
    r = build(sam, "token", Environment="prod")
    res = r.resources()
    key = res["TokenSigningKey"]
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    assert "EnableKeyRotation" not in key["Properties"]  # KMS refuses it for asymmetric keys
    # kept on delete and replacement (tokens in flight, audit); gone when a first create
    # rolls back, so a retry does not meet a stray key
    raw = r.cfn["Resources"]["TokenSigningKey"]
    assert (raw["DeletionPolicy"], raw["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
    alias = res["TokenSigningKeyAlias"]["Properties"]
    assert alias == {"AliasName": "alias/svcauth-token-prod", "TargetKeyId": "TokenSigningKey"}
    env = res["TokenIssuerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_TOKEN_KEY"] == "alias/svcauth-token-prod"


def test_key_policy_lets_only_the_issuer_role_sign(sam):
    policy = key_policy(build(sam, "token"))
    assert sign_decision(policy, ISSUER_ROLE) == "allow"
    # only ES256 over the raw signing input: not a digest chosen by the caller
    assert sign_decision(policy, ISSUER_ROLE, {"kms:MessageType": "DIGEST"}) != "allow"
    assert sign_decision(policy, ISSUER_ROLE, {"kms:SigningAlgorithm": "ECDSA_SHA_384"}) != "allow"
    # everyone else is denied explicitly: the account (so no IAM policy can delegate
    # Sign), the service roles, an administrator, another account
    for principal in (ROOT_ARN, role_arn("AdminServiceRole"), role_arn("TutorServiceRole"),
                      role_arn("Administrator"), role_arn("Authorizer-AuthorizerRole"),
                      "arn:aws:iam::210987654321:role/TokenIssuerFunctionRole"):
        assert sign_decision(policy, principal) == "deny", principal
    # a grant or a later Allow for someone else cannot get past the Deny
    widened = policy + [{"Effect": "Allow", "Principal": {"AWS": role_arn("Administrator")},
                         "Action": "kms:Sign", "Resource": "*"}]
    assert sign_decision(widened, role_arn("Administrator")) == "deny"


def test_negative_control_a_key_policy_delegating_sign_is_caught(sam):
    sam2 = copy.deepcopy(sam)
    stmts = sam2["Resources"]["TokenSigningKey"]["Properties"]["KeyPolicy"]["Statement"]
    stmts[0]["Action"].append("kms:Sign")
    sam2["Resources"]["TokenSigningKey"]["Properties"]["KeyPolicy"]["Statement"] = [
        s for s in stmts if s["Sid"] != "NobodyElseSigns"]
    r = Resolver(transform(sam2, AuthMode="token"), parameter_values(sam2, AuthMode="token"))
    assert sign_decision(key_policy(r), ROOT_ARN) == "allow"


def test_the_account_administers_the_key_and_reads_its_public_key(sam):
    policy = key_policy(build(sam, "token"))
    for action in ("kms:PutKeyPolicy", "kms:DescribeKey", "kms:GetPublicKey", "kms:ScheduleKeyDeletion",
                   "kms:DisableKey", "kms:UpdateAlias", "kms:TagResource"):
        assert evaluate(policy, action, STACK_KEY, {"aws:PrincipalArn": ROOT_ARN}, ROOT_ARN) == "allow", action
    # no way around the Sign restriction through grants, and nothing this key cannot do
    for action in ("kms:CreateGrant", "kms:Verify", "kms:Decrypt", "kms:Encrypt"):
        assert evaluate(policy, action, STACK_KEY, {"aws:PrincipalArn": ROOT_ARN}, ROOT_ARN) != "allow", action
    # the issuer resolves the alias and reads its public key
    for action in ("kms:DescribeKey", "kms:GetPublicKey"):
        assert evaluate(policy, action, STACK_KEY, {"aws:PrincipalArn": ISSUER_ROLE}, ISSUER_ROLE) == "allow"


# ------------------------------------------------------------------ issuer role
def test_issuer_role_signs_with_the_stacks_key_only(sam):
    r = build(sam, "token")
    st = role_statements(r, "TokenIssuerFunctionRole")
    assert r.getatt("TokenSigningKey", "Arn") == STACK_KEY
    assert evaluate(st, "kms:Sign", STACK_KEY, SIGN_CTX) == "allow"
    assert evaluate(st, "kms:Sign", OTHER_KEY, SIGN_CTX) == "implicit-deny"
    assert evaluate(st, "kms:Sign", STACK_KEY, {**SIGN_CTX, "kms:MessageType": "DIGEST"}) == "implicit-deny"
    assert evaluate(st, "kms:DescribeKey", STACK_KEY) == "allow"
    assert evaluate(st, "kms:GetPublicKey", OTHER_KEY) == "implicit-deny"
    for lid in ("TokenIssuerFunctionRole", "TokenIssuerSigningPolicy"):
        for doc in _policy_documents(r.resources()[lid]):
            for s in as_list(doc["Statement"]):
                if any(a.startswith("kms:") and a != "kms:Decrypt" for a in as_list(s.get("Action"))):
                    assert s["Resource"] == STACK_KEY, (lid, s)


def _policy_documents(res: dict) -> list[dict]:
    if res["Type"] == "AWS::IAM::Role":
        return [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
    return [res["Properties"]["PolicyDocument"]]


@pytest.mark.parametrize("mode", TOKEN_MODES)
def test_no_other_role_may_sign_with_any_key(sam, mode):
    r = build(sam, mode)
    for stack in with_nested(r):
        for lid, res in stack.resources("AWS::IAM::Role").items():
            if lid == "TokenIssuerFunctionRole":
                continue
            st = role_statements(stack, lid)
            for key in (STACK_KEY, OTHER_KEY):
                assert evaluate(st, "kms:Sign", key, SIGN_CTX) == "implicit-deny", (lid, key)


def test_issuer_reads_documents_markers_and_the_key_set_and_writes_nothing(sam):
    st = role_statements(build(sam, "token"), "TokenIssuerFunctionRole")
    for action, name in (("ssm:GetParameter", "/svcauth/dev/keys/tutor-service"),
                         ("ssm:GetParameters", "/svcauth/dev/revoked/kid_0123456789abcdef"),
                         ("ssm:GetParameter", "/svcauth/dev/token/jwks")):
        assert evaluate(st, action, _ssm(name)) == "allow", (action, name)
    for action, name in (("ssm:PutParameter", "/svcauth/dev/token/jwks"),  # publishing is svcauth's
                         ("ssm:PutParameter", "/svcauth/dev/keys/tutor-service"),
                         ("ssm:GetParametersByPath", "/svcauth/dev/keys"),
                         ("ssm:GetParameter", "/dev/tutor-service/identity-service-api-key"),  # clear keys
                         ("ssm:GetParameter", "/svcauth/prod/keys/tutor-service"),
                         ("ssm:GetParameter", "/svcauth/dev/token/jwks-other")):
        assert evaluate(st, action, _ssm(name)) == "implicit-deny", (action, name)
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
               "kms:EncryptionContext:PARAMETER_ARN": _ssm("/svcauth/dev/keys/tutor-service")}
    assert evaluate(st, "kms:Decrypt", OTHER_KEY, via_ssm) == "allow"
    assert evaluate(st, "kms:Decrypt", OTHER_KEY, {
        **via_ssm, "kms:EncryptionContext:PARAMETER_ARN": _ssm("/dev/tutor-service/identity-service-api-key")}) != "allow"
    # with a customer managed key for SSM, that key only (explicit Deny of the others)
    cmk = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    st = role_statements(build(sam, "token", SsmKmsKeyArn=cmk), "TokenIssuerFunctionRole")
    assert evaluate(st, "kms:Decrypt", cmk, via_ssm) == "allow"
    assert evaluate(st, "kms:Decrypt", OTHER_KEY, via_ssm) == "deny"


def test_issuer_environment_follows_the_contract(sam):
    r = build(sam, "token", TokenLifetimeSecs=900)
    env = r.resources()["TokenIssuerFunction"]["Properties"]["Environment"]["Variables"]
    assert env == {
        "SVCAUTH_TOKEN_KEY": "alias/svcauth-token-dev",
        "SVCAUTH_TOKEN_ISSUER": "svcauth:dev",
        "SVCAUTH_TOKEN_JWKS_PARAMETER": "/svcauth/dev/token/jwks",
        "SVCAUTH_SSM_PATH": "/svcauth/dev/keys",
        "SVCAUTH_IAM_ROLES": "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,"
                             "AdminServiceRole=admin-service",
        "SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS": "900",
    }
    # the authorizer checks the same issuer and reads the same key set
    auth = r.nested("Authorizer").resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert auth["SVCAUTH_TOKEN_ISSUER"] == env["SVCAUTH_TOKEN_ISSUER"]
    assert auth["SVCAUTH_TOKEN_JWKS_PARAMETER"] == env["SVCAUTH_TOKEN_JWKS_PARAMETER"]
    fn = r.resources()["TokenIssuerFunction"]
    assert fn["Properties"]["Role"] == r.getatt("TokenIssuerFunctionRole", "Arn")
    assert r.cfn["Resources"]["TokenIssuerFunction"]["DependsOn"] == "TokenIssuerSigningPolicy"


# ------------------------------------------------------------------ token API
@pytest.mark.parametrize("mode", TOKEN_MODES)
def test_token_api_routes_and_their_authorization(sam, mode):
    r = build(sam, mode)
    api = r.resources("AWS::ApiGateway::RestApi")["TokenApi"]
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["PRIVATE"], "VpcEndpointIds": [CREATED_VPCE]}
    methods = api_methods(api)
    assert {k: op["security"] for k, op in methods.items()} == {
        ("POST", "/token"): [{"ServiceKeyAuthorizer": []}],
        ("POST", "/token/iam"): [{"AWS_IAM": []}],
        ("GET", "/.well-known/jwks.json"): [{"NONE": []}],
    }
    for op in methods.values():
        # invoked under the Lambda permission, never with the caller's credentials
        assert "credentials" not in op["x-amazon-apigateway-integration"]
        assert "TokenIssuerFunction" in json.dumps(op["x-amazon-apigateway-integration"]["uri"])
    # POST /token: the key-only instance of the authorizer, on x-service-api-key
    auth = security_schemes(api)["ServiceKeyAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert auth["identitySource"] == "method.request.header.x-service-api-key"
    issuer_auth = r.nested("IssuerAuthorizer")
    assert issuer_auth.getatt("AuthorizerFunction", "Arn") in auth["authorizerUri"]
    env = issuer_auth.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_ACCEPT"] == "api-key"
    assert not {"SVCAUTH_TOKEN_ISSUER", "SVCAUTH_TOKEN_JWKS_PARAMETER"} & set(env)
    # the API is named `token` for API scoping (grant POST /token on API token)
    name = r.resources()["TokenApiName"]["Properties"]
    assert (name["Name"], name["Value"], name["Type"]) == ("/svcauth/dev/apis/TokenApi", "token", "String")
    # API Gateway may invoke the key-only authorizer from this API's authorizers only
    perms = [p["Properties"] for p in r.resources("AWS::Lambda::Permission").values()
             if p["Properties"]["FunctionName"] == issuer_auth.getatt("AuthorizerFunction", "Arn")]
    assert [p["SourceArn"] for p in perms] == [f"arn:aws:execute-api:{REGION}:{ACCOUNT}:TokenApi/authorizers/*"]


def test_token_api_resource_policy(sam):
    r = build(sam, "token")
    api = r.resources("AWS::ApiGateway::RestApi")["TokenApi"]
    policy = expand_api_policy(resource_policy(api), "TokenApi")
    here, elsewhere = {"aws:SourceVpce": CREATED_VPCE}, {"aws:SourceVpce": OTHER_VPCE}
    key_route = method_arn("TokenApi", STAGE, "POST", "token")
    iam_route = method_arn("TokenApi", STAGE, "POST", "token/iam")
    jwks = method_arn("TokenApi", STAGE, "GET", ".well-known/jwks.json")
    # the key route and the key set: anyone behind the endpoint (the authorizer decides,
    # or nothing is secret)
    for arn in (key_route, jwks):
        assert evaluate(policy, "execute-api:Invoke", arn, here, None) == "allow", arn
        assert evaluate(policy, "execute-api:Invoke", arn, elsewhere, None) == "deny", arn
        assert evaluate(policy, "execute-api:Invoke", arn, {}, None) == "deny", arn
    # the `*` of /*/POST/token stands for the stage only: /token/iam is not opened
    assert evaluate(policy, "execute-api:Invoke", iam_route, here, None) == "implicit-deny"
    # the IAM route: per the callers' own IAM policies
    for role in ("TutorServiceRole", "TutorFunctionRole", "AdminServiceRole"):
        st = role_statements(r, role)
        assert iam_api_decision(resource_policy(api), st, role_arn(role), iam_route, here) == "allow", role
        assert iam_api_decision(resource_policy(api), st, role_arn(role), iam_route, elsewhere) == "deny", role
    assert iam_api_decision(resource_policy(api), [], role_arn("SomeOtherRole"), iam_route, here) == "deny"
    # no service role may call anything else of the token API with its IAM policy
    st = role_statements(r, "TutorServiceRole")
    assert evaluate(st, "execute-api:Invoke", method_arn("TokenApi", STAGE, "POST", "token/iam/x")) == "implicit-deny"


def test_jwks_route_is_unauthenticated_and_post_routes_are_throttled(sam):
    r = build(sam, "key-or-token", TokenIssueRateLimit=40, TokenIssueBurstLimit=80)
    api = r.resources("AWS::ApiGateway::RestApi")["TokenApi"]
    assert api_methods(api)[("GET", "/.well-known/jwks.json")]["security"] == [{"NONE": []}]
    (stage,) = [s["Properties"] for s in r.resources("AWS::ApiGateway::Stage").values()
                if s["Properties"]["RestApiId"] == "TokenApi"]
    by_path = {(m["ResourcePath"], m["HttpMethod"]): m for m in stage["MethodSettings"]}
    for path in ("/~1token", "/~1token~1iam"):
        m = by_path[(path, "POST")]
        assert (m["ThrottlingRateLimit"], m["ThrottlingBurstLimit"]) == ("40", "80")
        assert m["DataTraceEnabled"] is False and m["LoggingLevel"] == "ERROR"
    assert by_path[("/*", "*")]["DataTraceEnabled"] is False
    assert stage["AccessLogSetting"]["DestinationArn"] == r.getatt("ApiAccessLogGroup", "Arn")
    assert stage["TracingEnabled"] is True
    # KMS signs about 300 ECC operations per second per account and Region
    assert int(load_template()["Parameters"]["TokenIssueRateLimit"]["MaxValue"]) < 300


# ------------------------------------------------------------------ AuthMode wiring
MODE_AUTH = {
    # mode: (identity source, TTL, SVCAUTH_ACCEPT, SVCAUTH_TOKEN_MIN_REMAINING_SECS)
    "api-key": ("method.request.header.x-service-api-key", 300, "api-key", None),
    "both": ("method.request.header.x-service-api-key", 300, "api-key", None),
    "token": ("method.request.header.Authorization", 60, "token", "60"),
    "key-or-token": (None, 0, "api-key,token", "0"),
}


@pytest.mark.parametrize("mode", list(MODE_AUTH))
def test_each_auth_mode_sets_identity_source_ttl_and_what_the_authorizer_accepts(sam, mode):
    source, ttl, accept, min_remaining = MODE_AUTH[mode]
    r = build(sam, mode)
    for api_id in ("IdentityKeyApi", "TutorKeyApi"):
        api = r.resources("AWS::ApiGateway::RestApi")[api_id]
        for route, op in api_methods(api).items():
            assert op["security"] == [{mode: []}, {"api_key": []}], (api_id, route)
        auth = security_schemes(api)[mode]["x-amazon-apigateway-authorizer"]
        assert auth.get("identitySource") == source, api_id
        assert int(auth["authorizerResultTtlInSeconds"]) == ttl, api_id
        assert "function:Authorizer-AuthorizerFunction/invocations" in auth["authorizerUri"]
    env = r.nested("Authorizer").resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_ACCEPT"] == accept
    assert env.get("SVCAUTH_TOKEN_MIN_REMAINING_SECS") == min_remaining
    if min_remaining is not None:
        # a cached answer never outlives its token
        assert int(min_remaining) >= ttl


def test_token_mode_ttl_is_its_own_parameter_and_the_authorizer_follows_it(sam):
    r = build(sam, "token", TokenResultTtl=30, AuthorizerResultTtl=600)
    auth = security_schemes(r.resources("AWS::ApiGateway::RestApi")["IdentityKeyApi"])["token"]
    assert int(auth["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == 30
    env = r.nested("Authorizer").resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_TOKEN_MIN_REMAINING_SECS"] == "30"
    # the token API's key route keeps the key TTL
    key = security_schemes(r.resources("AWS::ApiGateway::RestApi")["TokenApi"])["ServiceKeyAuthorizer"]
    assert int(key["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == 600
    # the longest cache is at most half the shortest token lifetime
    p = load_template()["Parameters"]
    assert 2 * int(p["TokenResultTtl"]["MaxValue"]) <= int(p["TokenLifetimeSecs"]["MinValue"])


def test_negative_control_an_authorizer_accepting_keys_behind_the_token_header_is_caught(sam):
    """A cached answer keyed on Authorization must not rest on a key: the next caller
    with the same Authorization value would get it."""
    sam2 = copy.deepcopy(sam)
    sam2["Resources"]["Authorizer"]["Properties"]["Parameters"]["Accept"] = "api-key,token"
    r = Resolver(transform(sam2, AuthMode="token"), parameter_values(sam2, AuthMode="token"))
    env = r.nested("Authorizer").resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    with pytest.raises(AssertionError):
        assert env["SVCAUTH_ACCEPT"] == MODE_AUTH["token"][2]


def test_each_authorizer_permission_is_one_per_api(sam):
    r = build(sam, "token")
    fn = r.nested("Authorizer").getatt("AuthorizerFunction", "Arn")
    perms = sorted(p["Properties"]["SourceArn"] for p in r.resources("AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == fn)
    assert perms == [f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/authorizers/*"
                     for api in ("IdentityKeyApi", "TutorKeyApi")]
    for lid in r.cfn["Resources"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", lid), lid


@pytest.mark.parametrize("mode", TOKEN_MODES + ("api-key",))
def test_authorizer_reads_the_key_set_only_where_it_accepts_tokens(sam, mode):
    r = build(sam, mode)
    st = role_statements(r.nested("Authorizer"), "AuthorizerRole")
    jwks = _ssm("/svcauth/dev/token/jwks")
    assert evaluate(st, "ssm:GetParameter", jwks) == ("allow" if mode in TOKEN_MODES else "implicit-deny")
    assert evaluate(st, "ssm:PutParameter", jwks) == "implicit-deny"
    assert evaluate(st, "ssm:GetParameter", _ssm("/svcauth/prod/token/jwks")) == "implicit-deny"
    if mode in TOKEN_MODES:
        issuer = role_statements(r.nested("IssuerAuthorizer"), "AuthorizerRole")
        assert evaluate(issuer, "ssm:GetParameter", jwks) == "implicit-deny"


def test_authorizer_application_takes_the_token_settings():
    app = ROOT / "authorizer" / "template.yaml"
    sam = load_template(app)
    params = {"Accept": "token", "TokenIssuer": "svcauth:prod", "TokenJwksParameter": "/teams/x/jwks",
              "TokenMinRemainingSecs": 45, "StorePath": "/teams/x"}
    r = Resolver(transform(sam, **params), parameter_values(sam, **params), app.parent)
    env = r.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert {k: env[k] for k in env if "ACCEPT" in k or "TOKEN" in k} == {
        "SVCAUTH_ACCEPT": "token", "SVCAUTH_TOKEN_ISSUER": "svcauth:prod",
        "SVCAUTH_TOKEN_JWKS_PARAMETER": "/teams/x/jwks", "SVCAUTH_TOKEN_MIN_REMAINING_SECS": "45"}
    st = role_statements(r, "AuthorizerRole")
    assert evaluate(st, "ssm:GetParameter", _ssm("/teams/x/jwks")) == "allow"
    # the default stays an API-key authorizer with no token settings (consumers unchanged)
    r = Resolver(transform(sam), parameter_values(sam), app.parent)
    env = r.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_ACCEPT"] == "api-key"
    assert not [k for k in env if k.startswith("SVCAUTH_TOKEN_")]


# ------------------------------------------------------------------ callers
@pytest.mark.parametrize("mode", TOKEN_MODES)
def test_tutor_calls_identity_with_tokens_traded_for_its_role(sam, mode):
    r = build(sam, mode)
    env = r.resources()["TutorServiceFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SERVICE_AUTH_MODE"] == "token"
    assert env["SERVICE_TOKEN_URL"] == f"https://TokenApi-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}"
    assert env["SERVICE_TOKEN_PROOF"] == "iam"
    assert env["SERVICE_TOKEN_MIN_REMAINING_SECS"] == MODE_AUTH[mode][3]
    assert env["IDENTITY_SERVICE_URL"] == (
        f"https://IdentityKeyApi-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}")
    # the function's role may trade itself for a token on the IAM route
    st = role_statements(r, "TutorFunctionRole")
    assert evaluate(st, "execute-api:Invoke", method_arn("TokenApi", STAGE, "POST", "token/iam")) == "allow"


# ------------------------------------------------------------------ alarms
def test_token_alarms_exist_in_the_token_modes_and_link_their_runbooks(sam):
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', docs))
    r = build(sam, "token", ForgedTokensAlarmThreshold=3)
    alarms = r.resources("AWS::CloudWatch::Alarm")
    token_alarms = {"TokenKeySetUnavailableAlarm", "ForgedTokensAlarm", "TokenIssuerErrorsAlarm",
                    "TokenApi5xxAlarm"}
    assert token_alarms <= set(alarms)
    assert not token_alarms & set(build(sam, "both").resources("AWS::CloudWatch::Alarm"))
    for lid, alarm in alarms.items():
        text = alarm["Properties"]["AlarmDescription"]
        assert len(text) <= 1024 and "First:" in text, lid
        (anchor,) = re.findall(r"docs/deploy\.md#([a-z0-9-]+)", text)
        assert anchor in anchors, f"{lid}: runbook section #{anchor} is missing from docs/deploy.md"
    forged = alarms["ForgedTokensAlarm"]["Properties"]
    assert forged["Threshold"] == "3"
    assert {q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for q in forged["Metrics"] if "MetricStat" in q} == {
        "bad_signature", "unsupported_alg", "crit_header", "unsupported_header", "unknown_kid"}
    issuer = alarms["TokenIssuerErrorsAlarm"]["Properties"]
    assert {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
            for q in issuer["Metrics"] if "MetricStat" in q} == {("Errors", "TokenIssuerFunction"),
                                                                  ("Throttles", "TokenIssuerFunction")}

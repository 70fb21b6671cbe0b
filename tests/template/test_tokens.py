"""Signed service tokens (issue 10) in the platform (platform/template.yaml) and the
example's token modes (example/template.yaml): the KMS signing key and who may sign
with it, the token issuer's role, the token API's routes and their authorization, each
AuthMode's identity source and result-cache TTL and which platform authorizer it
imports. Checked on the SAM translator's output, resolved for concrete parameters,
with templatelib's IAM and KMS matchers; negative controls show the checks fail on a
weakened template.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from deployment import (
    EXAMPLE_SAM,
    INSTANCES,
    OTHER_VPCE,
    PLATFORM_SAM,
    STAGE,
    deploy,
    platform_alone,
    role_arn,
    ssm_arn,
    statements_of,
)
from test_observability import forged_token_reasons
from templatelib import (
    ACCOUNT,
    AUTHORIZER_APP,
    CREATED_VPCE,
    MODES,
    PARTITION,
    PLATFORM_STACK,
    REGION,
    ROOT,
    Resolver,
    api_methods,
    as_list,
    evaluate,
    expand_api_policy,
    iam_api_decision,
    kms_decision,
    load_template,
    method_arn,
    parameter_values,
    resource_policy,
    role_statements,
    security_schemes,
    transform,
)

TOKEN_MODES = ("token", "key-or-token")
OTHER_KEY = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/0000aaaa-00aa-00aa-00aa-000000000000"
ROOT_ARN = f"arn:{PARTITION}:iam::{ACCOUNT}:root"
ISSUER_ROLE = role_arn("TokenIssuerFunctionRole")
# what the issuer sends (libs/token-kms: MessageType RAW, ECDSA_SHA_256)
SIGN_CTX = {"kms:SigningAlgorithm": "ECDSA_SHA_256", "kms:MessageType": "RAW"}


def key_policy(r: Resolver) -> list[dict]:
    return as_list(r.resources()["TokenSigningKey"]["Properties"]["KeyPolicy"]["Statement"])


def signing_key(r: Resolver) -> str:
    return r.getatt("TokenSigningKey", "Arn")


def sign_decision(r: Resolver, principal: str, identity: list[dict] | None = None, ctx: dict | None = None,
                  policy: list[dict] | None = None) -> str:
    """Whether `principal` (with these IAM statements) may sign with the stack's key."""
    return kms_decision(policy if policy is not None else key_policy(r), identity or [], principal, "kms:Sign",
                        signing_key(r), {**SIGN_CTX, **(ctx or {})})


# ------------------------------------------------------------------ the platform
@pytest.mark.parametrize("mode", MODES)
def test_the_token_parts_exist_whatever_the_examples_mode(mode):
    d = deploy(mode)
    for lid in ("TokenSigningKey", "TokenSigningKeyAlias", "TokenIssuerFunction", "TokenIssuerFunctionRole",
                "TokenIssuerSigningPolicy", "TokenApi", "TokenApiAuthorizerPermission"):
        assert d.platform.live(lid), (mode, lid)
    # the example's internal APIs keep their logical ids (and so their URLs) from
    # api-key through key-or-token to token: a migration changes how callers prove
    # themselves, not where they call
    assert d.example.live("IdentityKeyApi") == d.example.live("TutorKeyApi") == (mode != "iam")
    # only the token modes let the example's roles trade themselves for tokens
    assert d.example.live("TokenIamInvokePolicy") == (mode in TOKEN_MODES)


# ------------------------------------------------------------------ signing key
def test_signing_key_is_an_es256_key_behind_the_stacks_alias():
    r = platform_alone(stack_name="svcauth-prod", Environment="prod")
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
    # alias names are unique per account and Region: the stack's name is in it
    assert alias == {"AliasName": "alias/svcauth-prod/token-signing", "TargetKeyId": r.ref("TokenSigningKey")}
    env = res["TokenIssuerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_TOKEN_KEY"] == "alias/svcauth-prod/token-signing"


def test_only_the_issuer_role_may_sign():
    d = deploy()
    r = d.platform
    issuer = role_statements(r, "TokenIssuerFunctionRole")
    assert sign_decision(r, ISSUER_ROLE, issuer) == "allow"
    # only ES256 over the raw signing input: not a digest chosen by the caller
    assert sign_decision(r, ISSUER_ROLE, issuer, {"kms:MessageType": "DIGEST"}) != "allow"
    assert sign_decision(r, ISSUER_ROLE, issuer, {"kms:SigningAlgorithm": "ECDSA_SHA_384"}) != "allow"
    # without its IAM grant, not even the issuer (the key policy names no role)
    assert sign_decision(r, ISSUER_ROLE, []) == "deny"
    # everyone else is denied explicitly, whatever their IAM policies say: the account,
    # the service roles, an administrator, the authorizers, another account's role of
    # the same name
    admin = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    for principal in (ROOT_ARN, role_arn("AdminServiceRole"), role_arn("TutorServiceRole"),
                      role_arn("Administrator"), role_arn("KeyAuthorizer-AuthorizerRole"),
                      "arn:aws:iam::210987654321:role/TokenIssuerFunctionRole"):
        assert sign_decision(r, principal, admin) == "deny", principal


def test_negative_control_a_key_policy_without_the_deny_is_caught():
    sam2 = copy.deepcopy(PLATFORM_SAM)
    props = sam2["Resources"]["TokenSigningKey"]["Properties"]
    props["KeyPolicy"]["Statement"] = [s for s in props["KeyPolicy"]["Statement"] if s["Sid"] != "NobodyElseSigns"]
    r = platform_alone(sam2)
    admin = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    assert sign_decision(r, role_arn("Administrator"), admin) == "allow"


def test_the_account_administers_the_key_and_reads_its_public_key():
    r = deploy().platform
    policy, key = key_policy(r), signing_key(r)
    for action in ("kms:PutKeyPolicy", "kms:DescribeKey", "kms:GetPublicKey", "kms:ScheduleKeyDeletion",
                   "kms:DisableKey", "kms:UpdateAlias", "kms:TagResource"):
        assert kms_decision(policy, [], ROOT_ARN, action, key) == "allow", action
    # no way around the Sign restriction through grants, and nothing this key cannot do
    for action in ("kms:CreateGrant", "kms:Verify", "kms:Decrypt", "kms:Encrypt"):
        assert kms_decision(policy, [], ROOT_ARN, action, key) != "allow", action


# ------------------------------------------------------------------ issuer role
def test_issuer_role_signs_and_resolves_the_stacks_key_only():
    r = deploy().platform
    st = role_statements(r, "TokenIssuerFunctionRole")
    key = signing_key(r)
    assert evaluate(st, "kms:Sign", key, SIGN_CTX) == "allow"
    assert evaluate(st, "kms:Sign", OTHER_KEY, SIGN_CTX) == "implicit-deny"
    assert evaluate(st, "kms:Sign", key, {**SIGN_CTX, "kms:MessageType": "DIGEST"}) == "implicit-deny"
    assert evaluate(st, "kms:DescribeKey", key) == "allow"
    # the issuer never reads a public key (svcauth tokens keys add does)
    assert evaluate(st, "kms:GetPublicKey", key) == "implicit-deny"
    for lid in ("TokenIssuerFunctionRole", "TokenIssuerSigningPolicy"):
        for s in statements_of(r.resources()[lid]):
            if any(a.startswith("kms:") and a != "kms:Decrypt" for a in as_list(s.get("Action"))):
                assert s["Resource"] == key, (lid, s)


@pytest.mark.parametrize("mode", TOKEN_MODES)
def test_no_other_role_may_sign_with_any_key(mode):
    d = deploy(mode)
    for stack in d.stacks():
        for lid in stack.resources("AWS::IAM::Role"):
            if stack is d.platform and lid == "TokenIssuerFunctionRole":
                continue
            st = role_statements(stack, lid)
            for key in (signing_key(d.platform), OTHER_KEY):
                assert evaluate(st, "kms:Sign", key, SIGN_CTX) == "implicit-deny", (lid, key)


def test_issuer_reads_exactly_what_its_code_reads_and_writes_nothing():
    """services/token-issuer: the caller's document by name (GetParameter, decrypted),
    its proof key's marker (GetParameters, never decrypted), the key set (GetParameter,
    decrypted)."""
    r = deploy().platform
    st = role_statements(r, "TokenIssuerFunctionRole")
    for action, name in (("ssm:GetParameter", "/svcauth/dev/keys/tutor-service"),
                         ("ssm:GetParameters", "/svcauth/dev/revoked/kid_0123456789abcdef"),
                         ("ssm:GetParametersByPath", "/svcauth/dev/brakes/tutor-service"),
                         ("ssm:GetParameter", "/svcauth/dev/token/jwks")):
        assert evaluate(st, action, ssm_arn(name)) == "allow", (action, name)
    for action, name in (("ssm:PutParameter", "/svcauth/dev/token/jwks"),  # publishing is svcauth's
                         ("ssm:PutParameter", "/svcauth/dev/keys/tutor-service"),
                         ("ssm:GetParametersByPath", "/svcauth/dev/keys"),
                         ("ssm:GetParameters", "/svcauth/dev/keys/tutor-service"),  # never in batches
                         ("ssm:GetParameter", "/svcauth/dev/revoked/kid_0123456789abcdef"),
                         ("ssm:GetParameter", "/dev/tutor-service/identity-service-api-key"),  # clear keys
                         ("ssm:GetParameter", "/svcauth/prod/keys/tutor-service"),
                         ("ssm:GetParameter", "/svcauth/dev/token/jwks-other")):
        assert evaluate(st, action, ssm_arn(name)) == "implicit-deny", (action, name)
    store = r.getatt("StoreKey", "Arn")
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
    for name in ("/svcauth/dev/keys/tutor-service", "/svcauth/dev/token/jwks"):
        ctx = {**via_ssm, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn(name)}
        assert evaluate(st, "kms:Decrypt", store, ctx) == "allow", name
        # the store key only: any other (aws/ssm included) is explicitly denied
        assert evaluate(st, "kms:Decrypt", OTHER_KEY, ctx) == "deny", name
    for name in ("/dev/tutor-service/identity-service-api-key", "/svcauth/dev/revoked/k", "/svcauth/dev/apis/a"):
        ctx = {**via_ssm, "kms:EncryptionContext:PARAMETER_ARN": ssm_arn(name)}
        assert evaluate(st, "kms:Decrypt", store, ctx) != "allow", name


def test_issuer_environment_follows_the_contract():
    r = platform_alone(TokenLifetimeSecs=900)
    env = r.resources()["TokenIssuerFunction"]["Properties"]["Environment"]["Variables"]
    assert env == {
        "SVCAUTH_TOKEN_KEY": f"alias/{PLATFORM_STACK}/token-signing",
        "SVCAUTH_TOKEN_ISSUER": "svcauth:dev",
        "SVCAUTH_TOKEN_JWKS_PARAMETER": "/svcauth/dev/token/jwks",
        "SVCAUTH_SSM_PATH": "/svcauth/dev/keys",
        "SVCAUTH_IAM_ROLES": "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,"
                             "AdminServiceRole=admin-service",
        "SVCAUTH_TOKEN_DEFAULT_LIFETIME_SECS": "900",
        "SVCAUTH_TOKEN_MIN_REMAINING_SECS": "60",
    }
    # no token is issued that the token-only authorizer would refuse as too short-lived
    token_only = r.nested("TokenAuthorizer").resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert token_only["SVCAUTH_TOKEN_MIN_REMAINING_SECS"] == env["SVCAUTH_TOKEN_MIN_REMAINING_SECS"]
    # the token-taking authorizers check the same issuer and read the same key set
    for instance in ("TokenAuthorizer", "KeyOrTokenAuthorizer"):
        auth = r.nested(instance).resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
        assert auth["SVCAUTH_TOKEN_ISSUER"] == env["SVCAUTH_TOKEN_ISSUER"], instance
        assert auth["SVCAUTH_TOKEN_JWKS_PARAMETER"] == env["SVCAUTH_TOKEN_JWKS_PARAMETER"], instance
    fn = r.resources()["TokenIssuerFunction"]
    assert fn["Properties"]["Role"] == r.getatt("TokenIssuerFunctionRole", "Arn")
    assert r.cfn["Resources"]["TokenIssuerFunction"]["DependsOn"] == "TokenIssuerSigningPolicy"
    # no role may trade itself for a token until the operator names it
    env = platform_alone(TokenIamRoles="").resources()["TokenIssuerFunction"]["Properties"]["Environment"]
    assert "SVCAUTH_IAM_ROLES" not in env["Variables"]


# ------------------------------------------------------------------ token API
def test_token_api_routes_and_their_authorization():
    r = deploy().platform
    api = r.resources("AWS::ApiGateway::RestApi")["TokenApi"]
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["PRIVATE"], "VpcEndpointIds": [CREATED_VPCE]}
    methods = api_methods(api)
    assert {k: op["security"] for k, op in methods.items()} == {
        ("POST", "/token"): [{"KeyAuthorizer": []}],
        ("POST", "/token/iam"): [{"AWS_IAM": []}],
        ("GET", "/.well-known/jwks.json"): [{"NONE": []}],
    }
    for op in methods.values():
        # invoked under the Lambda permission, never with the caller's credentials
        assert "credentials" not in op["x-amazon-apigateway-integration"]
        assert "TokenIssuerFunction" in json.dumps(op["x-amazon-apigateway-integration"]["uri"])
    # POST /token: the key-only instance, on x-service-api-key
    auth = security_schemes(api)["KeyAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert auth["identitySource"] == "method.request.header.x-service-api-key"
    key_auth = r.nested("KeyAuthorizer")
    assert key_auth.getatt("AuthorizerFunction", "Arn") in auth["authorizerUri"]
    env = key_auth.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_ACCEPT"] == "api-key"
    assert not {"SVCAUTH_TOKEN_ISSUER", "SVCAUTH_TOKEN_JWKS_PARAMETER"} & set(env)
    # API Gateway may invoke it from this API's authorizers only
    perms = [p["Properties"] for p in r.resources("AWS::Lambda::Permission").values()
             if p["Properties"]["FunctionName"] == key_auth.getatt("AuthorizerFunction", "Arn")]
    assert [p["SourceArn"] for p in perms] == [f"arn:aws:execute-api:{REGION}:{ACCOUNT}:TokenApi/authorizers/*"]


def test_token_api_resource_policy():
    d = deploy("token")
    api = d.platform.resources("AWS::ApiGateway::RestApi")["TokenApi"]
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
    # the IAM route: per the callers' own IAM policies (the example's roles)
    for role in ("TutorServiceRole", "TutorFunctionRole", "AdminServiceRole"):
        st = d.role(role)
        assert iam_api_decision(resource_policy(api), st, role_arn(role), iam_route, here) == "allow", role
        assert iam_api_decision(resource_policy(api), st, role_arn(role), iam_route, elsewhere) == "deny", role
    assert iam_api_decision(resource_policy(api), [], role_arn("SomeOtherRole"), iam_route, here) == "deny"
    # no service role may call anything else of the token API with its IAM policy
    st = d.role("TutorServiceRole")
    assert evaluate(st, "execute-api:Invoke", method_arn("TokenApi", STAGE, "POST", "token/iam/x")) == "implicit-deny"


def test_jwks_route_is_unauthenticated_and_post_routes_are_throttled():
    r = platform_alone(TokenIssueRateLimit=40, TokenIssueBurstLimit=80)
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
    assert int(PLATFORM_SAM["Parameters"]["TokenIssueRateLimit"]["MaxValue"]) < 300


# ------------------------------------------------------------------ AuthMode wiring
MODE_AUTH = {
    # mode: (identity source, TTL, platform instance, its SVCAUTH_ACCEPT, SVCAUTH_TOKEN_MIN_REMAINING_SECS)
    "api-key": ("method.request.header.x-service-api-key", 300, "KeyAuthorizer", "api-key", None),
    "both": ("method.request.header.x-service-api-key", 300, "KeyAuthorizer", "api-key", None),
    "token": ("method.request.header.Authorization", 60, "TokenAuthorizer", "token", "60"),
    "key-or-token": (None, 0, "KeyOrTokenAuthorizer", "api-key,token", "0"),
}


@pytest.mark.parametrize("mode", list(MODE_AUTH))
def test_each_auth_mode_imports_the_authorizer_that_matches_its_identity_source(mode):
    source, ttl, instance, accept, min_remaining = MODE_AUTH[mode]
    d = deploy(mode)
    for api_id in ("IdentityKeyApi", "TutorKeyApi"):
        api = d.example.resources("AWS::ApiGateway::RestApi")[api_id]
        for route, op in api_methods(api).items():
            assert op["security"] == [{mode: []}, {"api_key": []}], (api_id, route)
        auth = security_schemes(api)[mode]["x-amazon-apigateway-authorizer"]
        assert auth.get("identitySource") == source, api_id
        assert int(auth["authorizerResultTtlInSeconds"]) == ttl, api_id
        assert f"{d.function_arn(instance)}/invocations" in auth["authorizerUri"], api_id
    env = d.env(instance)
    assert env["SVCAUTH_ACCEPT"] == accept
    assert env.get("SVCAUTH_TOKEN_MIN_REMAINING_SECS") == min_remaining
    if min_remaining is not None:
        # a cached answer never outlives its token
        assert int(min_remaining) >= ttl


def test_the_platforms_instances_accept_what_their_names_say():
    d = deploy()
    for instance, accept in INSTANCES.items():
        assert d.env(instance)["SVCAUTH_ACCEPT"] == accept, instance


def test_the_token_ttl_is_bounded_by_what_the_token_authorizer_refuses():
    d = deploy("token", TokenResultTtl=30, AuthorizerResultTtl=600)
    auth = security_schemes(d.example.resources("AWS::ApiGateway::RestApi")["IdentityKeyApi"])["token"]
    assert int(auth["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == 30
    # the platform's TokenResultTtl (same parameter name, both set here) is the token
    # authorizer's minimum remaining lifetime, and the export consumers read
    assert d.env("TokenAuthorizer")["SVCAUTH_TOKEN_MIN_REMAINING_SECS"] == "30"
    assert d.platform.exports()[f"{PLATFORM_STACK}-TokenResultTtl"] == "30"
    # the token API's key route keeps the key TTL
    key = security_schemes(d.platform.resources("AWS::ApiGateway::RestApi")["TokenApi"])["KeyAuthorizer"]
    assert int(key["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == 600
    # the longest cache is at most half the shortest token lifetime, and no attaching
    # template may cache a token answer longer than the platform's maximum
    p = PLATFORM_SAM["Parameters"]
    assert 2 * int(p["TokenResultTtl"]["MaxValue"]) <= int(p["TokenLifetimeSecs"]["MinValue"])
    assert int(EXAMPLE_SAM["Parameters"]["TokenResultTtl"]["MaxValue"]) <= int(p["TokenResultTtl"]["MaxValue"])


def test_negative_control_an_authorizer_accepting_keys_behind_the_token_header_is_caught():
    """A cached answer keyed on Authorization must not rest on a key: the next caller
    with the same Authorization value would get it."""
    sam2 = copy.deepcopy(PLATFORM_SAM)
    sam2["Resources"]["TokenAuthorizer"]["Properties"]["Parameters"]["Accept"] = "api-key,token"
    d = deploy("token", platform_sam=sam2)
    with pytest.raises(AssertionError):
        assert d.env("TokenAuthorizer")["SVCAUTH_ACCEPT"] == MODE_AUTH["token"][3]


@pytest.mark.parametrize("mode", list(MODE_AUTH))
def test_each_example_api_has_one_invoke_permission_scoped_to_itself(mode):
    d = deploy(mode)
    instance = MODE_AUTH[mode][2]
    perms = sorted((p["Properties"]["FunctionName"], p["Properties"]["SourceArn"])
                   for p in d.example.resources("AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
                   and "/authorizers/" in p["Properties"]["SourceArn"])
    assert perms == [(d.function_arn(instance), f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api}/authorizers/*")
                     for api in ("IdentityKeyApi", "TutorKeyApi")]
    for lid in d.example.cfn["Resources"]:
        assert re.fullmatch(r"[A-Za-z0-9]+", lid), lid


@pytest.mark.parametrize("instance", list(INSTANCES))
def test_authorizer_reads_the_key_set_only_where_it_accepts_tokens(instance):
    d = deploy()
    st = role_statements(d.authorizer(instance), "AuthorizerRole")
    jwks = ssm_arn("/svcauth/dev/token/jwks")
    takes_tokens = "token" in INSTANCES[instance]
    assert evaluate(st, "ssm:GetParameter", jwks) == ("allow" if takes_tokens else "implicit-deny")
    via = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": jwks}
    assert evaluate(st, "kms:Decrypt", d.platform.getatt("StoreKey", "Arn"), via) == (
        "allow" if takes_tokens else "implicit-deny")
    assert evaluate(st, "ssm:PutParameter", jwks) == "implicit-deny"
    assert evaluate(st, "ssm:GetParameter", ssm_arn("/svcauth/prod/token/jwks")) == "implicit-deny"


def test_authorizer_application_takes_the_token_settings():
    sam = load_template(AUTHORIZER_APP)
    params = {"Accept": "token", "TokenIssuer": "svcauth:prod", "TokenJwksParameter": "/teams/x/jwks",
              "TokenMinRemainingSecs": 45, "StorePath": "/teams/x"}
    r = Resolver(transform(sam, **params), parameter_values(sam, **params), AUTHORIZER_APP.parent)
    env = r.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert {k: env[k] for k in env if "ACCEPT" in k or "TOKEN" in k} == {
        "SVCAUTH_ACCEPT": "token", "SVCAUTH_TOKEN_ISSUER": "svcauth:prod",
        "SVCAUTH_TOKEN_JWKS_PARAMETER": "/teams/x/jwks", "SVCAUTH_TOKEN_MIN_REMAINING_SECS": "45"}
    st = role_statements(r, "AuthorizerRole")
    assert evaluate(st, "ssm:GetParameter", ssm_arn("/teams/x/jwks")) == "allow"
    # the default stays an API-key authorizer with no token settings (consumers unchanged)
    r = Resolver(transform(sam), parameter_values(sam), AUTHORIZER_APP.parent)
    env = r.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_ACCEPT"] == "api-key"
    assert not [k for k in env if k.startswith("SVCAUTH_TOKEN_")]


# ------------------------------------------------------------------ callers
@pytest.mark.parametrize("mode", TOKEN_MODES)
def test_tutor_calls_identity_with_tokens_traded_for_its_role(mode):
    d = deploy(mode)
    env = d.example.resources()["TutorServiceFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SERVICE_AUTH_MODE"] == "token"
    assert env["SERVICE_TOKEN_URL"] == f"https://TokenApi-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}"
    assert env["SERVICE_TOKEN_URL"] == d.platform.exports()[f"{PLATFORM_STACK}-TokenApiUrl"]
    assert env["SERVICE_TOKEN_PROOF"] == "iam"
    assert env["SERVICE_TOKEN_MIN_REMAINING_SECS"] == MODE_AUTH[mode][4]
    assert env["IDENTITY_SERVICE_URL"] == (
        f"https://IdentityKeyApi-{CREATED_VPCE}.execute-api.{REGION}.amazonaws.com/{STAGE}")
    # the function's role may trade itself for a token on the IAM route
    st = d.role("TutorFunctionRole")
    assert evaluate(st, "execute-api:Invoke", method_arn("TokenApi", STAGE, "POST", "token/iam")) == "allow"


# ------------------------------------------------------------------ alarms
def test_token_alarms_exist_and_link_their_runbooks():
    docs = (ROOT / "docs" / "operate.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', docs))
    r = platform_alone(ForgedTokensAlarmThreshold=3)
    alarms = r.resources("AWS::CloudWatch::Alarm")
    token_alarms = {"TokenKeySetUnavailableAlarm", "ForgedTokensAlarm", "TokenIssuerErrorsAlarm",
                    "TokenApi5xxAlarm"}
    assert token_alarms <= set(alarms)
    for lid, alarm in alarms.items():
        text = alarm["Properties"]["AlarmDescription"]
        assert len(text) <= 1024 and "First:" in text, lid
        (anchor,) = re.findall(r"docs/operate\.md#([a-z0-9-]+)", text)
        assert anchor in anchors, f"{lid}: runbook section #{anchor} is missing from docs/operate.md"
    forged = alarms["ForgedTokensAlarm"]["Properties"]
    assert forged["Threshold"] == "3"
    stats = [q["MetricStat"]["Metric"] for q in forged["Metrics"] if "MetricStat" in q]
    # exactly the reasons service_auth::refusal marks as forgery signals
    assert {m["Dimensions"][0]["Value"] for m in stats} == forged_token_reasons()
    # both token-taking instances, each in its own namespace
    assert {m["Namespace"] for m in stats} == {f"svcauth/{PLATFORM_STACK}/TokenAuthorizer",
                                              f"svcauth/{PLATFORM_STACK}/KeyOrTokenAuthorizer"}
    issuer = alarms["TokenIssuerErrorsAlarm"]["Properties"]
    assert {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
            for q in issuer["Metrics"] if "MetricStat" in q} == {("Errors", "TokenIssuerFunction"),
                                                                  ("Throttles", "TokenIssuerFunction")}

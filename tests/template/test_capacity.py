"""The authorizer's capacity under a flood (issue 11 item 3, docs/deploy.md "Capacity").

Reserved concurrency caps how many instances a flood of invented keys can start, and
with them the cold starts that read SSM; the key id index lets a cold instance answer
with two SSM calls. Both checked on the template as the SAM translator transforms it.
"""

from __future__ import annotations

from templatelib import ACCOUNT, PARTITION, REGION, ROOT, Resolver, evaluate, load_template
from templatelib import parameter_values, role_statements, transform

APP = ROOT / "authorizer" / "template.yaml"


def resolve(**params) -> Resolver:
    sam = load_template(APP)
    return Resolver(transform(sam, **params), parameter_values(sam, **params), APP.parent)


def _function(r: Resolver) -> dict:
    return r.resolve(r.resources()["AuthorizerFunction"]["Properties"])


def test_reserved_concurrency_defaults_to_what_ssm_lets_start_in_one_second():
    sam = load_template(APP)
    param = sam["Parameters"]["ReservedConcurrency"]
    # 40 SSM calls/s (the account default) / 2 calls per cold start
    assert param["Default"] == 20
    assert (param["MinValue"], param["Type"]) == (0, "Number")
    assert _function(resolve())["ReservedConcurrentExecutions"] == "20"


def test_reserved_concurrency_follows_the_parameter_and_zero_leaves_it_unreserved():
    assert _function(resolve(ReservedConcurrency=75))["ReservedConcurrentExecutions"] == "75"
    assert "ReservedConcurrentExecutions" not in _function(resolve(ReservedConcurrency=0))


def test_the_role_reads_the_key_id_index_and_cannot_write_it():
    r = resolve(StorePath="/teams/billing")
    st = role_statements(r, "AuthorizerRole")
    entry = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/teams/billing/index/kid_0123456789abcdef"
    assert evaluate(st, "ssm:GetParameters", entry) == "allow"
    assert evaluate(st, "ssm:PutParameter", entry) == "implicit-deny"
    other = entry.replace("/teams/billing/", "/svcauth/dev/")
    assert evaluate(st, "ssm:GetParameters", other) == "implicit-deny"
    # the first call of a cold instance: index entry, marker and API name together
    for name in ("index/kid_0123456789abcdef", "revoked/kid_0123456789abcdef", "apis/a1b2c3d4e5"):
        arn = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/teams/billing/{name}"
        assert evaluate(st, "ssm:GetParameters", arn) == "allow", name


def test_the_root_stack_passes_its_reserved_concurrency_to_every_nested_authorizer():
    root = load_template()
    param = root["Parameters"]["AuthorizerReservedConcurrency"]
    assert (param["Default"], param["MinValue"]) == (20, 0)
    apps = [
        (name, res)
        for name, res in root["Resources"].items()
        if res["Type"] == "AWS::Serverless::Application"
        and res["Properties"]["Location"] == "authorizer/template.yaml"
    ]
    assert len(apps) >= 2, apps
    for name, res in apps:
        assert res["Properties"]["Parameters"]["ReservedConcurrency"] == {
            "Ref": "AuthorizerReservedConcurrency"
        }, name

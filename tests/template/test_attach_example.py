"""The attach-your-API example registers its API's name for the authorizer's API
scoping (issue 9 item 4): a String parameter `{SvcauthApiPath}/{apiId}` whose value is
the name callers are granted on. Without it the authorizer allows nobody there."""

from __future__ import annotations

from templatelib import ROOT, Resolver, load_template, parameter_values, transform

from test_template import EXAMPLE_AUTHORIZER, EXISTING_VPCE

EXAMPLE = ROOT / "docs" / "examples" / "attach-authorizer.yaml"


def _resolved(**extra) -> Resolver:
    sam = load_template(EXAMPLE)
    params = {"AuthorizerFunctionArn": EXAMPLE_AUTHORIZER, "ExecuteApiEndpointId": EXISTING_VPCE, **extra}
    return Resolver(transform(sam, **params), parameter_values(sam, **params))


def test_attach_example_registers_its_api_name_under_its_api_id():
    r = _resolved()
    (api_id,) = r.resources("AWS::ApiGateway::RestApi").keys()
    (param,) = [p["Properties"] for p in r.resources("AWS::SSM::Parameter").values()]
    assert param["Type"] == "String"
    assert param["Name"] == f"/svcauth/dev/apis/{api_id}"
    assert param["Value"] == "billing"


def test_attach_example_api_name_and_path_are_parameters():
    r = _resolved(ApiName="payments", SvcauthApiPath="/svcauth/prod/apis")
    (api_id,) = r.resources("AWS::ApiGateway::RestApi").keys()
    (param,) = [p["Properties"] for p in r.resources("AWS::SSM::Parameter").values()]
    assert param["Name"] == f"/svcauth/prod/apis/{api_id}"
    assert param["Value"] == "payments"

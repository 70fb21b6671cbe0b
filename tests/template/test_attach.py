"""Another team's API attached to the platform (issue 16 §1): the attach examples
(docs/examples/attach-authorizer.yaml, one flavour per API; authorizer/examples/
consumer.yaml, every flavour on one API) are transformed together with a transformed
platform and resolved against its exports. In each flavour the consumer's methods use
the ARN the platform exports, and API Gateway may invoke that function from the
consumer's own API only; the platform's exports do not depend on any other stack's
mode, so no mode of the example can remove what a consumer imports."""

from __future__ import annotations

import pytest

from deployment import INSTANCES, OTHER_VPCE, STAGE, deploy, platform_alone
from templatelib import (
    ACCOUNT,
    ATTACH_EXAMPLE,
    CONSUMER,
    CREATED_VPCE,
    MODES,
    REGION,
    Resolver,
    api_methods,
    attached,
    evaluate,
    expand_api_policy,
    load_template,
    method_arn,
    resource_policy,
    security_schemes,
)

# flavour -> (identity source, result TTL) the authorizer was built for
FLAVOURS = {
    "KeyAuthorizer": ("method.request.header.x-service-api-key", "300"),
    "TokenAuthorizer": ("method.request.header.Authorization", "60"),
    "KeyOrTokenAuthorizer": (None, "0"),
}


def _authorizer_permissions(consumer: Resolver) -> list[dict]:
    return [p["Properties"] for p in consumer.resources("AWS::Lambda::Permission").values()
            if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
            and "/authorizers/" in p["Properties"]["SourceArn"]]


def _scoped_to(api_id: str) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/authorizers/*"


def test_the_attach_example_offers_every_flavour_the_platform_exports():
    flavours = load_template(ATTACH_EXAMPLE)["Parameters"]["Authorizer"]["AllowedValues"]
    assert set(flavours) == set(INSTANCES) == set(FLAVOURS)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_the_consumer_uses_the_exported_arn_with_a_permission_scoped_to_its_own_api(flavour):
    platform = platform_alone()
    consumer = attached(ATTACH_EXAMPLE, platform, Authorizer=flavour)
    exported = platform.exports()[f"{platform.stack_name}-{flavour}Arn"]
    assert exported == platform.nested(flavour).getatt("AuthorizerFunction", "Arn")
    (lid, api), = consumer.resources("AWS::ApiGateway::RestApi").items()
    api_id = consumer.ref(lid)  # its physical id
    methods = api_methods(api)
    assert methods
    for op in methods.values():
        assert op["security"] == [{flavour: []}]
    auth = security_schemes(api)[flavour]["x-amazon-apigateway-authorizer"]
    assert auth["type"] == "request"
    assert auth["authorizerUri"] == (f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                                     f"{exported}/invocations")
    source, ttl = FLAVOURS[flavour]
    assert auth.get("identitySource") == source
    assert str(auth["authorizerResultTtlInSeconds"]) == ttl
    # exactly one lambda:InvokeFunction, for API Gateway, on the chosen function, from
    # this API's authorizers only
    assert _authorizer_permissions(consumer) == [{
        "Action": "lambda:InvokeFunction", "FunctionName": exported,
        "Principal": "apigateway.amazonaws.com", "SourceArn": _scoped_to(api_id)}]
    # private, behind the platform's endpoint
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["PRIVATE"], "VpcEndpointIds": [CREATED_VPCE]}
    policy = expand_api_policy(resource_policy(api), api_id)
    arn = method_arn(api_id, STAGE, "GET", "internal/billing/invoices")
    assert evaluate(policy, "execute-api:Invoke", arn, {"aws:SourceVpce": CREATED_VPCE}) == "allow"
    assert evaluate(policy, "execute-api:Invoke", arn, {"aws:SourceVpce": OTHER_VPCE}) == "deny"
    # registering the API is the operator's act, after the deploy
    assert not consumer.resources("AWS::SSM::Parameter")
    command = consumer.resolve(consumer.cfn["Outputs"]["RegisterApiCommand"]["Value"])
    assert command == (f"svcauth apis register --env dev --kms-key-id {platform.getatt('StoreKey', 'Arn')} "
                       f"--api-id {api_id} --name billing")


def test_the_consumer_with_every_flavour_on_one_api():
    platform = platform_alone()
    consumer = attached(CONSUMER, platform)
    (lid, api), = consumer.resources("AWS::ApiGateway::RestApi").items()
    api_id = consumer.ref(lid)
    by_route = {route: op["security"] for route, op in api_methods(api).items()}
    assert by_route == {("GET", "/internal/billing/invoices"): [{"KeyAuthorizer": []}],
                        ("GET", "/internal/billing/invoices/{id}"): [{"TokenAuthorizer": []}],
                        ("POST", "/internal/billing/invoices"): [{"KeyOrTokenAuthorizer": []}]}
    schemes = security_schemes(api)
    permissions = _authorizer_permissions(consumer)
    for flavour, (source, ttl) in FLAVOURS.items():
        exported = platform.exports()[f"{platform.stack_name}-{flavour}Arn"]
        auth = schemes[flavour]["x-amazon-apigateway-authorizer"]
        assert f"{exported}/invocations" in auth["authorizerUri"], flavour
        assert auth.get("identitySource") == source, flavour
        assert str(auth["authorizerResultTtlInSeconds"]) == ttl, flavour
        assert [p["SourceArn"] for p in permissions if p["FunctionName"] == exported] == [_scoped_to(api_id)]
    assert len(permissions) == len(FLAVOURS)


@pytest.mark.parametrize("mode", MODES)
def test_no_mode_of_the_example_takes_away_what_a_consumer_imports(mode):
    """In the old single stack, AuthMode iam deleted the authorizer another team's API
    still pointed at: the platform now exports all three whatever the example does."""
    d = deploy(mode)
    consumer = attached(CONSUMER, d.platform)
    for flavour in FLAVOURS:
        assert f"{d.platform.stack_name}-{flavour}Arn" in d.platform.exports(), (mode, flavour)
    assert len(_authorizer_permissions(consumer)) == len(FLAVOURS)


def test_an_import_of_a_name_the_platform_does_not_export_fails():
    """The resolver's ImportValue is strict, like CloudFormation's."""
    platform = platform_alone()
    consumer = attached(ATTACH_EXAMPLE, platform, PlatformStackName="another-platform")
    with pytest.raises(AssertionError, match="no stack exports it"):
        consumer.resources()

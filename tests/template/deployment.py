"""The two applications as the tests deploy them: the platform alone
(platform/template.yaml), and the example (example/template.yaml) deployed against it,
importing its exports, for one AuthMode. The root template.yaml nests the same two;
tests/template/test_nesting.py checks it wires them as these helpers do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from templatelib import (
    ACCOUNT,
    EXAMPLE,
    PARTITION,
    PLATFORM,
    PLATFORM_STACK,
    REGION,
    Resolver,
    as_list,
    load_template,
    parameter_values,
    role_statements,
    transform,
)

EXAMPLE_STACK = "svcauth-example"
EXISTING_VPCE = "vpce-0123456789abcdef0"
OTHER_VPCE = "vpce-0badbadbadbadbad0"
STAGE = "v1"
# The three authorizer instances of the platform and what each accepts.
INSTANCES = {"KeyAuthorizer": "api-key", "TokenAuthorizer": "token", "KeyOrTokenAuthorizer": "api-key,token"}
# The example's roles, standalone (CloudFormation names them; fake ids are logical ids),
# as the platform's TokenIamRoles names them.
IAM_ROLE_MAP = "TutorServiceRole=tutor-service,TutorFunctionRole=tutor-service,AdminServiceRole=admin-service"

PLATFORM_SAM = load_template(PLATFORM)
EXAMPLE_SAM = load_template(EXAMPLE)


def ssm_arn(name: str) -> str:
    return f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{name}"


def role_arn(name: str) -> str:
    return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"


@dataclass
class Deployment:
    platform: Resolver
    example: Resolver

    def stacks(self) -> list[Resolver]:
        """Both stacks and every nested stack of the platform."""
        return [self.platform, self.example] + [self.platform.nested(lid) for lid in self.platform.nested_ids()]

    def authorizer(self, instance: str) -> Resolver:
        """The nested authorizer application of one instance (KeyAuthorizer, ...)."""
        return self.platform.nested(instance)

    def owner(self, logical_id: str) -> Resolver:
        """The stack (platform or example) that defines `logical_id`."""
        (stack,) = [s for s in (self.platform, self.example) if logical_id in s.cfn["Resources"]]
        return stack

    def resource(self, logical_id: str) -> dict:
        return self.owner(logical_id).resources()[logical_id]

    def apis(self) -> dict[str, dict]:
        """Every RestApi of both stacks that exists, by logical id."""
        out = dict(self.platform.resources("AWS::ApiGateway::RestApi"))
        out.update(self.example.resources("AWS::ApiGateway::RestApi"))
        return out

    def role(self, logical_id: str) -> list[dict]:
        """Every statement attached to one of the two stacks' roles."""
        return role_statements(self.owner(logical_id), logical_id)

    def function_arn(self, instance: str) -> str:
        return self.authorizer(instance).getatt("AuthorizerFunction", "Arn")

    def env(self, instance: str) -> dict:
        return self.authorizer(instance).resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]


_CACHE: dict[str, Deployment] = {}
_PLATFORM_PARAMS = set(PLATFORM_SAM["Parameters"])
_EXAMPLE_PARAMS = set(EXAMPLE_SAM["Parameters"])


def split_params(params: dict) -> tuple[dict, dict]:
    """(platform's, example's): each parameter goes to every application declaring it."""
    unknown = set(params) - _PLATFORM_PARAMS - _EXAMPLE_PARAMS
    assert not unknown, f"no application has the parameters {unknown}"
    return ({k: v for k, v in params.items() if k in _PLATFORM_PARAMS},
            {k: v for k, v in params.items() if k in _EXAMPLE_PARAMS})


def platform_alone(sam: dict | None = None, stack_name: str = PLATFORM_STACK, prefix: str = "",
                   **params: Any) -> Resolver:
    sam = sam or PLATFORM_SAM
    params = {"TokenIamRoles": IAM_ROLE_MAP, **params}
    return Resolver(transform(sam, **params), parameter_values(sam, **params), PLATFORM.parent,
                    prefix=prefix, stack_name=stack_name)


def example_on(platform: Resolver, mode: str, sam: dict | None = None, stack_name: str = EXAMPLE_STACK,
               prefix: str = "", **params: Any) -> Resolver:
    sam = sam or EXAMPLE_SAM
    params = {"AuthMode": mode, "PlatformStackName": platform.stack_name, **params}
    return Resolver(transform(sam, **params), parameter_values(sam, **params), EXAMPLE.parent,
                    prefix=prefix, stack_name=stack_name, exporters=(platform,))


def deploy(mode: str = "api-key", endpoint: str = "created", platform_sam: dict | None = None,
           example_sam: dict | None = None, **params: Any) -> Deployment:
    """The platform, then the example in `mode` against it. `endpoint`: the platform
    creates its execute-api endpoint, or is given an existing one."""
    if endpoint == "existing":
        params = {"ExecuteApiEndpointId": EXISTING_VPCE, **params}
    key = json.dumps([mode, params], sort_keys=True)
    custom = platform_sam is not None or example_sam is not None
    if custom or key not in _CACHE:
        p, e = split_params(params)
        platform = platform_alone(platform_sam, **p)
        d = Deployment(platform, example_on(platform, mode, example_sam, **e))
        if custom:
            return d
        _CACHE[key] = d
    return _CACHE[key]


def policy_documents(res: dict) -> list[dict]:
    if res["Type"] == "AWS::IAM::Role":
        return [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
    return [res["Properties"]["PolicyDocument"]]


def statements_of(res: dict) -> list[dict]:
    return [s for doc in policy_documents(res) for s in as_list(doc["Statement"])]

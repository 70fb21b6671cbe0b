"""Offline helpers for checking the SAM templates.

* load a SAM template (CloudFormation short-form tags included),
* transform it with the SAM translator (no AWS calls),
* resolve what CloudFormation would resolve for given parameter values
  (Conditions, Fn::If, Ref, Fn::Sub, Fn::GetAtt, Fn::ImportValue, Fn::Split,
  Fn::Select) with fake physical ids, following nested applications with a local
  Location and importing what another resolved stack exports,
* evaluate IAM-style policies with a small matcher (wildcards, the condition
  operators these templates use, explicit deny wins).

The templates: template.yaml (the root, nesting the two applications),
platform/template.yaml (the platform), example/template.yaml (the example services,
one AuthMode at a time), authorizer/template.yaml (the authorizer application the
platform nests three times) and the attach examples.

Run as a script it writes the transformed templates cfn-lint and checkov read:
    python tests/template/templatelib.py OUTDIR
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# SVCAUTH_TEMPLATE points the checks at another copy (e.g. a deliberately broken one).
TEMPLATE = Path(os.environ.get("SVCAUTH_TEMPLATE", ROOT / "template.yaml"))
PLATFORM = ROOT / "platform" / "template.yaml"
EXAMPLE = ROOT / "example" / "template.yaml"
AUTHORIZER_APP = ROOT / "authorizer" / "template.yaml"
ATTACH_EXAMPLE = ROOT / "docs" / "examples" / "attach-authorizer.yaml"
CONSUMER = ROOT / "authorizer" / "examples" / "consumer.yaml"
# Every template scripts/check-template.sh checks.
TEMPLATES = (TEMPLATE, PLATFORM, EXAMPLE, AUTHORIZER_APP, ATTACH_EXAMPLE, CONSUMER)

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "svcauth-test"
PLATFORM_STACK = "svcauth-platform"  # a platform deployed alone (the example's default)
MODES = ("api-key", "iam", "both", "token", "key-or-token")
PLACEHOLDER_CODE = "s3://svcauth-placeholder/code.zip"
CREATED_VPCE = "vpce-0c0ffee0c0ffee000"

# Values for the parameters without a default (what `sam deploy --guided` asks).
SAMPLE_PARAMETERS: dict[str, Any] = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
}


# ----------------------------------------------------------------------- loading
class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.Loader, tag: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag == "Ref":
        return {"Ref": value}
    if tag == "Condition":
        return {"Condition": value}
    if tag == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{tag}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


# -------------------------------------------------------------------- transform
class _NoManagedPolicies:
    """The translator asks for AWS managed policy ARNs only when a function uses
    `Policies: [<name>]`; this template names none."""

    def load(self) -> dict:
        return {}


def parameter_values(template: dict, **overrides: Any) -> dict:
    """Template defaults, then the sample values, then the overrides."""
    values = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    values.update(SAMPLE_PARAMETERS)
    values.update(overrides)
    values = {k: (str(v) if isinstance(v, (int, float)) else v) for k, v in values.items()}
    # A list parameter given as text (a parent stack passes `!Join [",", ...]`) is split,
    # as CloudFormation does.
    for name, spec in template.get("Parameters", {}).items():
        kind = spec.get("Type", "")
        if isinstance(values.get(name), str) and (kind.startswith("List<") or kind == "CommaDelimitedList"):
            values[name] = values[name].split(",")
    return values


def transform(template: dict, **overrides: Any) -> dict:
    """SAM-translate `template` offline for the given parameter values."""
    from samtranslator.translator.transform import transform as sam_transform

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    t = copy.deepcopy(template)
    # The raw transform rejects local code paths (sam build/package would replace them).
    t.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = PLACEHOLDER_CODE
    for res in t["Resources"].values():
        if res.get("Type") == "AWS::Serverless::Function" and "CodeUri" in res.get("Properties", {}):
            res["Properties"]["CodeUri"] = PLACEHOLDER_CODE
    values = {k: v for k, v in parameter_values(template, **overrides).items()
              if k in template.get("Parameters", {})}
    return sam_transform(t, values, _NoManagedPolicies())


# ---------------------------------------------------------------------- resolve
def kms_key_id(physical: str) -> str:
    """A fake but stable KMS key id (a UUID) for a key's physical name."""
    import uuid
    return str(uuid.uuid5(uuid.NAMESPACE_URL, physical))


class Resolver:
    """Resolves a transformed template for concrete parameter values, the way
    CloudFormation would, with fake but stable physical ids.

    `stack_name` is AWS::StackName (a nested stack's is `{parent}-{logical id}-NESTED`);
    `prefix` starts every fake physical id (a nested stack's resources start with its
    logical id, so two instances of one application are told apart; give two stacks
    different prefixes to tell their ids apart); `exporters` are the stacks whose
    exports an Fn::ImportValue may name (a nested stack sees its siblings')."""

    def __init__(self, cfn: dict, params: dict, base_dir: Path | None = None, prefix: str = "",
                 stack_name: str = STACK, exporters: tuple = ()):
        self.cfn = cfn
        self.params = params
        self.prefix = prefix
        self.stack_name = stack_name
        self.exporters = tuple(exporters)
        # where a nested application's local Location (TemplateURL) is relative to
        self.base_dir = base_dir or TEMPLATE.parent
        self._nested: dict[str, Resolver] = {}
        self.conditions: dict[str, bool] = {}
        for name in cfn.get("Conditions", {}):
            self.condition(name)

    # -- conditions
    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self._cond(self.cfn["Conditions"][name]))
        return self.conditions[name]

    def _cond(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self._cond(arg[0])
            if fn == "Fn::And":
                return all(self._cond(x) for x in arg)
            if fn == "Fn::Or":
                return any(self._cond(x) for x in arg)
        return self.resolve(node)

    def live(self, logical_id: str) -> bool:
        res = self.cfn["Resources"].get(logical_id)
        if res is None:
            return False
        cond = res.get("Condition")
        return cond is None or self.condition(cond)

    def resources(self, type_: str | None = None) -> dict[str, dict]:
        """Resources that exist for these parameters, resolved."""
        return {
            lid: self.resolve(res)
            for lid, res in self.cfn["Resources"].items()
            if self.live(lid) and (type_ is None or res["Type"] == type_)
        }

    # -- nested applications
    def nested(self, logical_id: str) -> "Resolver":
        """The nested stack of an AWS::Serverless::Application with a local Location,
        transformed and resolved with the parameters this stack passes it."""
        if logical_id not in self._nested:
            if not self.live(logical_id):
                raise AssertionError(f"{logical_id} does not exist for these parameters")
            props = self.cfn["Resources"][logical_id]["Properties"]
            path = (self.base_dir / props["TemplateURL"]).resolve()
            child = load_template(path)
            params = {k: self.resolve(v) for k, v in props.get("Parameters", {}).items()}
            values = parameter_values(child, **params)
            values = {k: v for k, v in values.items() if k in child.get("Parameters", {})}
            # a sibling's exports, resolved when first imported (never this stack's own)
            siblings = tuple(_Lazy(self, lid) for lid in self.nested_ids() if lid != logical_id)
            self._nested[logical_id] = Resolver(
                transform(child, **params), values, path.parent, prefix=f"{self.prefix}{logical_id}-",
                stack_name=f"{self.stack_name}-{logical_id}-NESTED", exporters=siblings + self.exporters)
        return self._nested[logical_id]

    # -- exports
    def exports(self) -> dict[str, Any]:
        """Export name -> value of this stack's outputs that exist."""
        out = {}
        for name, o in self.cfn.get("Outputs", {}).items():
            if "Export" not in o or ("Condition" in o and not self.condition(o["Condition"])):
                continue
            out[self.resolve(o["Export"]["Name"])] = self.resolve(o["Value"])
        return out

    def import_value(self, name: str) -> Any:
        for exporter in self.exporters:
            stack = exporter.get() if isinstance(exporter, _Lazy) else exporter
            found = stack.exports()
            if name in found:
                return found[name]
        raise AssertionError(f"Fn::ImportValue {name}: no stack exports it")

    def nested_ids(self) -> list[str]:
        return [lid for lid, res in self.cfn["Resources"].items()
                if res["Type"] == "AWS::CloudFormation::Stack" and self.live(lid)]

    # -- values
    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        res = self.cfn["Resources"].get(name)
        if res is None:
            raise KeyError(f"Ref to unknown {name}")
        if not self.live(name):
            raise AssertionError(f"Ref to {name}, which does not exist for these parameters")
        type_ = res["Type"]
        if type_ == "AWS::ApiGateway::Stage":
            return self.resolve(res["Properties"]["StageName"])
        if type_ == "AWS::EC2::VPCEndpoint":
            return CREATED_VPCE
        if type_ == "AWS::Logs::LogGroup":
            return self.resolve(res["Properties"].get("LogGroupName", name))
        if type_ == "AWS::KMS::Alias":
            return self.resolve(res["Properties"]["AliasName"])
        if type_ == "AWS::KMS::Key":
            return kms_key_id(self.prefix + name)
        if type_ == "AWS::IAM::Role" and "RoleName" in res.get("Properties", {}):
            named = self.resolve(res["Properties"]["RoleName"])
            if named is not _NO_VALUE:
                return named
        return self.prefix + name  # RestApi id, role name, function name, table name ...

    def getatt(self, name: str, attr: str) -> str:
        if not self.live(name):
            raise AssertionError(f"GetAtt on {name}, which does not exist for these parameters")
        type_ = self.cfn["Resources"][name]["Type"]
        if type_ == "AWS::CloudFormation::Stack" and attr.startswith("Outputs."):
            child = self.nested(name)
            return child.resolve(child.cfn["Outputs"][attr[len("Outputs."):]]["Value"])
        p, r, a = PARTITION, REGION, ACCOUNT
        logical, name = name, self.prefix + name
        arns = {
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{self.ref(logical)}",
            "AWS::IAM::ManagedPolicy": f"arn:{p}:iam::{a}:policy/{name}",
            "AWS::Lambda::Function": f"arn:{p}:lambda:{r}:{a}:function:{name}",
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name.lower()}",
            "AWS::KMS::Key": f"arn:{p}:kms:{r}:{a}:key/{kms_key_id(name)}",
        }
        if type_ == "AWS::Logs::LogGroup":
            group = self.ref(logical)
            if "LogGroupName" not in self.cfn["Resources"][logical].get("Properties", {}):
                group = f"{self.stack_name}-{logical}-GENERATED"  # CloudFormation names it
            return f"arn:{p}:logs:{r}:{a}:log-group:{group}:*"
        if type_ == "AWS::EC2::VPCEndpoint" and attr == "DnsEntries":
            service = self.resolve(self.cfn["Resources"][logical]["Properties"]["ServiceName"]).rsplit(".", 1)[-1]
            vpce = self.ref(logical)
            return [f"Z7HUB22UULQXV:{vpce}-abcdefgh.{service}.{r}.vpce.amazonaws.com",
                    f"Z7HUB22UULQXV:{vpce}-abcdefgh-{r}a.{service}.{r}.vpce.amazonaws.com"]
        if attr == "Arn" and type_ in arns:
            return arns[type_]
        return f"{name}.{attr}"

    def sub(self, template: str, variables: dict) -> str:
        def repl(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                return str(variables[key])
            if "." in key and not key.startswith("AWS::"):
                res, attr = key.split(".", 1)
                return self.getatt(res, attr)
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", repl, template)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self.resolve(x) for x in node]
            return [x for x in out if x is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::GetAtt":
                return self.getatt(*arg)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(x) for x in self.resolve(parts))
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::ImportValue":
                return self.import_value(self.resolve(arg))
            if key == "Condition":
                return self.condition(arg)
        out = {}
        for k, v in node.items():
            r = self.resolve(v)
            if r is not _NO_VALUE:
                out[k] = r
        return out


_NO_VALUE = object()


class _Lazy:
    """A nested stack of `parent`, resolved when first needed (an import from it)."""

    def __init__(self, parent: Resolver, logical_id: str):
        self.parent, self.logical_id = parent, logical_id

    def get(self) -> Resolver:
        return self.parent.nested(self.logical_id)


def resolve_file(path: Path, prefix: str = "", stack_name: str = STACK, exporters: tuple = (),
                 **params: Any) -> Resolver:
    """`path` transformed and resolved for `params` (defaults for the others)."""
    sam = load_template(path)
    return Resolver(transform(sam, **params), parameter_values(sam, **params), path.parent,
                    prefix=prefix, stack_name=stack_name, exporters=exporters)


def platform_stack(stack_name: str = PLATFORM_STACK, prefix: str = "", **params: Any) -> Resolver:
    """platform/template.yaml deployed alone as `stack_name`."""
    return resolve_file(PLATFORM, prefix=prefix, stack_name=stack_name, **params)


def attached(path: Path, platform: Resolver, stack_name: str = "team-stack", **params: Any) -> Resolver:
    """A template that imports `platform`'s exports (the example, an attach example),
    deployed alone against it."""
    params = {"PlatformStackName": platform.stack_name, **params}
    return resolve_file(path, prefix=f"{stack_name}-", stack_name=stack_name, exporters=(platform,), **params)


# -------------------------------------------------------------------- policies
def as_list(x: Any) -> list:
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcards: `*` is any run of characters (`/` and `:` included), `?` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE if ignore_case else 0
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            expected = [str(e) for e in as_list(expected)]
            present = key in context
            actual = [str(v) for v in as_list(context.get(key))]
            if operator == "StringEquals":
                ok = present and any(a in expected for a in actual)
            elif operator == "StringNotEquals":
                ok = not present or not any(a in expected for a in actual)
            elif operator == "ArnEquals":
                ok = present and any(wildcard_match(e, a) for a in actual for e in expected)
            elif operator == "ArnNotEquals":
                ok = not present or not any(wildcard_match(e, a) for a in actual for e in expected)
            elif operator in ("StringLike", "ArnLike"):
                ok = present and any(wildcard_match(e, a) for a in actual for e in expected)
            elif operator in ("StringNotLike", "ArnNotLike"):
                ok = not present or not any(wildcard_match(e, a) for a in actual for e in expected)
            elif operator == "Bool":
                ok = present and any(a.lower() in [e.lower() for e in expected] for a in actual)
            else:
                raise NotImplementedError(f"condition operator {operator}")
            if not ok:
                return False
    return True


def principal_matches(statement: dict, principal: str | None) -> bool:
    """`principal` is an IAM ARN, a service name, or None (anonymous)."""
    if "Principal" not in statement:
        return True  # identity-based policy
    p = statement["Principal"]
    if p == "*" or (isinstance(p, dict) and "*" in as_list(p.get("AWS"))):
        return True
    if principal is None or not isinstance(p, dict):
        return False
    return principal in as_list(p.get("AWS")) or principal in as_list(p.get("Service"))


def statement_matches(st: dict, action: str, resource: str, context: dict, principal: str | None = None) -> bool:
    if "Action" in st and not any(wildcard_match(a, action, ignore_case=True) for a in as_list(st["Action"])):
        return False
    if "NotAction" in st and any(wildcard_match(a, action, ignore_case=True) for a in as_list(st["NotAction"])):
        return False
    if "Resource" in st and not any(wildcard_match(r, resource) for r in as_list(st["Resource"])):
        return False
    if "NotResource" in st and any(wildcard_match(r, resource) for r in as_list(st["NotResource"])):
        return False
    if not principal_matches(st, principal):
        return False
    return _condition_holds(st.get("Condition", {}), context)


def evaluate(statements: list[dict], action: str, resource: str, context: dict | None = None,
             principal: str | None = None) -> str:
    """'deny' (explicit), 'allow', or 'implicit-deny'."""
    context = context or {}
    matching = [s for s in statements if statement_matches(s, action, resource, context, principal)]
    if any(s["Effect"] == "Deny" for s in matching):
        return "deny"
    if any(s["Effect"] == "Allow" for s in matching):
        return "allow"
    return "implicit-deny"


def role_statements(r: Resolver, role_id: str) -> list[dict]:
    """Every identity-policy statement attached to a role in the template, resolved."""
    statements: list[dict] = []
    role = r.resources()[role_id]
    for pol in role["Properties"].get("Policies", []):
        statements += as_list(pol["PolicyDocument"]["Statement"])
    assert not role["Properties"].get("ManagedPolicyArns"), f"{role_id} has managed policies"
    name = r.ref(role_id)
    for lid, res in r.resources().items():
        if res["Type"] == "AWS::IAM::RolePolicy" and res["Properties"]["RoleName"] == name:
            statements += as_list(res["Properties"]["PolicyDocument"]["Statement"])
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and name in as_list(
            res["Properties"].get("Roles")
        ):
            statements += as_list(res["Properties"]["PolicyDocument"]["Statement"])
    return statements


def expand_api_policy(statements: list[dict], api_id: str) -> list[dict]:
    """API Gateway expands `execute-api:/...` in a resource policy to the API's ARN."""
    prefix = f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{api_id}"
    out = []
    for st in statements:
        st = copy.deepcopy(st)
        st["Resource"] = [
            prefix + x[len("execute-api:"):] if x.startswith("execute-api:") else x
            for x in as_list(st.get("Resource"))
        ]
        out.append(st)
    return out


def method_arn(api_id: str, stage: str, verb: str, path: str) -> str:
    return f"arn:{PARTITION}:execute-api:{REGION}:{ACCOUNT}:{api_id}/{stage}/{verb}/{path.lstrip('/')}"


def iam_api_decision(resource_policy: list[dict], identity: list[dict], caller: str, arn: str,
                     context: dict) -> str:
    """AWS_IAM method, caller in the API's own account (API Gateway's documented
    evaluation): an explicit Deny anywhere wins; otherwise an Allow in the resource
    policy that names the caller (or "*") is enough on its own; an Allow for the
    account root only delegates to the caller's identity policy."""
    stmts_rp = expand_api_policy(resource_policy, arn.split(":")[5].split("/")[0])
    action = "execute-api:Invoke"
    if evaluate(stmts_rp, action, arn, context, caller) == "deny" or evaluate(identity, action, arn, context) == "deny":
        return "deny"
    direct = [s for s in stmts_rp if s["Effect"] == "Allow" and
              principal_matches(s, caller) and s.get("Principal") != {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"}]
    if evaluate(direct, action, arn, context, caller) == "allow":
        return "allow"
    if evaluate(identity, action, arn, context) == "allow":
        return "allow"
    return "deny"


def kms_decision(key_policy: list[dict], identity: list[dict], principal: str, action: str, key_arn: str,
                 context: dict | None = None) -> str:
    """KMS's documented evaluation for a caller in the key's account: an explicit Deny
    in the key policy or the caller's IAM policies wins; an Allow in the key policy that
    names the caller is enough; an Allow for the account root only delegates to the
    caller's IAM policies. `aws:PrincipalArn` is the caller's role ARN."""
    context = {"aws:PrincipalArn": principal, **(context or {})}
    root = f"arn:{PARTITION}:iam::{ACCOUNT}:root"
    if "deny" in (evaluate(key_policy, action, key_arn, context, principal), evaluate(identity, action, key_arn, context)):
        return "deny"
    direct = [s for s in key_policy if s["Effect"] == "Allow" and s.get("Principal") != {"AWS": root}]
    if evaluate(direct, action, key_arn, context, principal) == "allow":
        return "allow"
    delegated = [s for s in key_policy if s["Effect"] == "Allow" and s.get("Principal") == {"AWS": root}]
    if principal == root:
        return "allow" if evaluate(delegated, action, key_arn, context, root) == "allow" else "deny"
    if evaluate(delegated, action, key_arn, context, root) == "allow" and \
            evaluate(identity, action, key_arn, context) == "allow":
        return "allow"
    return "deny"


def key_policy_principals(key_policy: list[dict]) -> set[str]:
    """Every principal an Allow or Deny of a key policy names (`*` included)."""
    out = set()
    for s in key_policy:
        p = s.get("Principal")
        out |= {p} if isinstance(p, str) else {x for v in p.values() for x in as_list(v)}
    return out


# ------------------------------------------------------------------ API bodies
HTTP_VERBS = ("get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method")


def api_methods(api: dict) -> dict[tuple[str, str], dict]:
    """(VERB, path) -> resolved OpenAPI operation of a resolved RestApi."""
    out = {}
    for path, item in api["Properties"]["Body"].get("paths", {}).items():
        for verb, op in item.items():
            if verb in HTTP_VERBS:
                out[(verb.upper(), path)] = op
    return out


def security_schemes(api: dict) -> dict:
    body = api["Properties"]["Body"]
    return body.get("components", {}).get("securitySchemes") or body.get("securityDefinitions", {})


def resource_policy(api: dict) -> list[dict]:
    body = api["Properties"]["Body"]
    pol = body.get("x-amazon-apigateway-policy") or api["Properties"].get("Policy") or {}
    return as_list(pol.get("Statement"))


# ------------------------------------------------------------------------- CLI
def _carry_checkov_skips(sam: dict, cfn: dict) -> None:
    """SAM copies an Api's Metadata to the RestApi but not to the Stage it generates;
    copy the template's written suppressions there so checkov sees the same ones."""
    for lid, res in sam["Resources"].items():
        skips = res.get("Metadata", {}).get("checkov")
        if res.get("Type") != "AWS::Serverless::Api" or not skips:
            continue
        for gen_id, gen in cfn["Resources"].items():
            if gen_id.startswith(lid) and gen["Type"] in ("AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment"):
                gen.setdefault("Metadata", {})["checkov"] = copy.deepcopy(skips)


def _for_lint(sam: dict, cfn: dict, **defaults: Any) -> dict:
    """`cfn` as `sam package` would leave it, its parameters defaulting to the values
    it was transformed with, so cfn-lint and checkov read that variant."""
    for name, value in {**SAMPLE_PARAMETERS, **defaults}.items():
        if name in cfn.get("Parameters", {}):
            cfn["Parameters"][name]["Default"] = ",".join(value) if isinstance(value, list) else value
    _carry_checkov_skips(sam, cfn)
    # A nested application's local template is uploaded.
    for res in cfn["Resources"].values():
        if res["Type"] == "AWS::CloudFormation::Stack" and "://" not in res["Properties"]["TemplateURL"]:
            res["Properties"]["TemplateURL"] = "https://svcauth-placeholder.s3.amazonaws.com/" + res[
                "Properties"]["TemplateURL"].replace("../", "")
    return cfn


def transformed_variants() -> dict[str, tuple[Path, dict]]:
    """Every template, transformed: each AuthMode of the example, each flavour of the
    attach example, one of each other template."""
    variants: dict[str, tuple[Path, dict]] = {}
    for name, path in (("root", TEMPLATE), ("platform", PLATFORM), ("authorizer", AUTHORIZER_APP),
                       ("consumer", CONSUMER)):
        variants[name] = (path, {})
    for mode in MODES:
        variants[f"example-{mode}"] = (EXAMPLE, {"AuthMode": mode})
    for flavour in load_template(ATTACH_EXAMPLE)["Parameters"]["Authorizer"]["AllowedValues"]:
        variants[f"attach-{flavour}"] = (ATTACH_EXAMPLE, {"Authorizer": flavour})
    return variants


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    for name, (path, params) in transformed_variants().items():
        sam = load_template(path)
        cfn = _for_lint(sam, transform(sam, **params), **params)
        out = outdir / f"{name}.json"
        out.write_text(json.dumps(cfn, indent=1, sort_keys=True), encoding="utf-8")
        print(f"transformed {path.relative_to(ROOT)} {params or ''} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

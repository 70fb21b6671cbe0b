"""The root template.yaml deploys the platform and the example with one `sam deploy`
(issue 16 §1): it nests platform/template.yaml and example/template.yaml, the example
takes the platform's stack name from a platform output (so it is created after it and
deleted before it) and imports the rest. Every parameter the root repeats is the one its
application declares, and goes to every application that declares it. The platform is
publishable with `sam publish` once its nested authorizers name the published
authorizer application (scripts/publishable.py)."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
import yaml

from deployment import EXAMPLE_SAM, INSTANCES, PLATFORM_SAM
from templatelib import (
    AUTHORIZER_APP,
    EXAMPLE,
    MODES,
    PLATFORM,
    ROOT,
    TEMPLATE,
    load_template,
    resolve_file,
)

ROOT_SAM = load_template(TEMPLATE)
CHILDREN = {"Platform": PLATFORM_SAM, "Example": EXAMPLE_SAM}
# What CloudFormation checks a parameter value against.
CONSTRAINTS = ("Type", "Default", "AllowedValues", "AllowedPattern", "MinValue", "MaxValue")


def _spec(param: dict) -> dict:
    return {k: param[k] for k in CONSTRAINTS if k in param}


def test_the_root_nests_the_two_applications_by_their_local_templates():
    apps = {lid: res for lid, res in ROOT_SAM["Resources"].items()}
    assert {lid: res["Type"] for lid, res in apps.items()} == {
        "Platform": "AWS::Serverless::Application", "Example": "AWS::Serverless::Application"}
    assert (TEMPLATE.parent / apps["Platform"]["Properties"]["Location"]).resolve() == PLATFORM
    assert (TEMPLATE.parent / apps["Example"]["Properties"]["Location"]).resolve() == EXAMPLE
    # the example after the platform, by the platform's output (not a DependsOn a reader
    # could miss), and the same name the example's exports are looked up by
    assert apps["Example"]["Properties"]["Parameters"]["PlatformStackName"] == {
        "Fn::GetAtt": ["Platform", "Outputs.StackName"]}
    assert PLATFORM_SAM["Outputs"]["StackName"]["Value"] == {"Ref": "AWS::StackName"}


@pytest.mark.parametrize("name", sorted(ROOT_SAM["Parameters"]))
def test_every_root_parameter_is_its_applications_and_reaches_it(name):
    param = ROOT_SAM["Parameters"][name]
    owners = {lid: doc for lid, doc in CHILDREN.items() if name in doc["Parameters"]}
    assert owners, f"{name}: no application declares it"
    for lid, doc in owners.items():
        child = dict(_spec(doc["Parameters"][name]))
        root = dict(_spec(param))
        if child.get("Type", "").startswith("List<") or child.get("Type") == "CommaDelimitedList":
            # passed as text (`!Join`), split again by CloudFormation
            assert root["Type"] == child["Type"], name
            assert ROOT_SAM["Resources"][lid]["Properties"]["Parameters"][name] == {
                "Fn::Join": [",", {"Ref": name}]}, (lid, name)
            continue
        assert root == child, (lid, name)
        passed = ROOT_SAM["Resources"][lid]["Properties"]["Parameters"][name]
        if name == "TokenIamRoles":
            # given, else the example's roles by their names (test below)
            assert passed["Fn::If"][:2] == ["HasTokenIamRoles", {"Ref": name}], passed
            continue
        assert passed == {"Ref": name}, (lid, name)


@pytest.mark.parametrize("mode", MODES)
def test_the_root_deploys_every_mode_and_the_example_imports_from_its_platform(mode):
    root = resolve_file(TEMPLATE, AuthMode=mode)
    platform, example = root.nested("Platform"), root.nested("Example")
    assert example.params["PlatformStackName"] == platform.stack_name
    # every import of the example resolves against the nested platform's exports
    resources = example.resources()
    assert ("IdentityKeyApi" in resources) == (mode != "iam")
    if mode != "iam":
        uri = resources["IdentityKeyApi"]["Properties"]["Body"]["paths"]["/internal/users"]
        assert uri
    outputs = {k: root.resolve(v["Value"]) for k, v in root.cfn["Outputs"].items()
               if "Condition" not in v or root.condition(v["Condition"])}
    assert outputs["TokenApiUrl"] == platform.exports()[f"{platform.stack_name}-TokenApiUrl"]
    if mode != "iam":
        assert outputs["RegisterApisCommand"].startswith("svcauth apis register")


def test_the_roles_the_root_names_to_the_platform_are_the_examples():
    """The platform's issuer maps roles to services before the example exists: the root
    names the roles the example will create (its ServiceRolePrefix), and the example
    prints the same line."""
    root = resolve_file(TEMPLATE, AuthMode="token")
    platform, example = root.nested("Platform"), root.nested("Example")
    issuer = platform.resources()["TokenIssuerFunction"]["Properties"]["Environment"]["Variables"]
    printed = example.resolve(example.cfn["Outputs"]["TokenIamRoles"]["Value"])
    assert issuer["SVCAUTH_IAM_ROLES"] == printed
    # an operator's own list replaces it
    given = resolve_file(TEMPLATE, AuthMode="token", TokenIamRoles="billing-role=billing")
    issuer = given.nested("Platform").resources()["TokenIssuerFunction"]["Properties"]["Environment"]["Variables"]
    assert issuer["SVCAUTH_IAM_ROLES"] == "billing-role=billing"
    assert printed.startswith(f"{root.stack_name}-tutor-service=tutor-service,")
    backend = example.resources()["IdentityServiceFunction"]["Properties"]["Environment"]["Variables"]
    assert backend["SVCAUTH_IAM_ROLES"] == printed
    # role names fit IAM's 64 characters for any prefix the example accepts
    longest = max(len(r.split("=")[0].replace(root.stack_name, "")) for r in printed.split(","))
    assert int(re.search(r"\{0,(\d+)\}", EXAMPLE_SAM["Parameters"]["ServiceRolePrefix"]["AllowedPattern"]).group(1)) \
        + 1 + longest <= 64


def test_samconfig_deploys_the_root_with_the_capabilities_nesting_needs():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    for env in ("default", "prod"):
        caps = set(config[env]["deploy"]["parameters"]["capabilities"].split())
        # nested applications, and the example's roles named after the stack
        assert {"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"} <= caps, env
        overrides = config[env]["deploy"]["parameters"]["parameter_overrides"]
        for name in re.findall(r'(\w+)="', overrides):
            assert name in ROOT_SAM["Parameters"], (env, name)


def test_the_readme_deploy_command_stays():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "sam build && sam deploy --guided" in readme


# ------------------------------------------------------------------ publishing
def _publishable():
    spec = importlib.util.spec_from_file_location("publishable", ROOT / "scripts" / "publishable.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Tags(yaml.SafeLoader):
    pass


_Tags.add_multi_constructor("!", lambda loader, tag, node: f"{tag}")


def test_the_platform_carries_what_sar_needs_to_publish_it():
    meta = PLATFORM_SAM["Metadata"]["AWS::ServerlessRepo::Application"]
    for field in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion"):
        assert meta.get(field), field
    assert len(meta["Description"]) <= 256
    assert (PLATFORM.parent / meta["LicenseUrl"]).resolve() == ROOT / "LICENSE"
    assert (PLATFORM.parent / meta["ReadmeUrl"]).is_file()
    authorizer = load_template(AUTHORIZER_APP)["Metadata"]["AWS::ServerlessRepo::Application"]
    assert meta["SpdxLicenseId"] == authorizer["SpdxLicenseId"]
    # released together: the platform nests this version of the authorizer
    assert meta["SemanticVersion"] == authorizer["SemanticVersion"]


def test_the_publishable_platform_nests_the_published_authorizer_and_nothing_else_changes():
    pub = _publishable()
    app_id = "arn:aws:serverlessrepo:us-east-1:123456789012:applications/svcauth-authorizer"
    text = PLATFORM.read_text(encoding="utf-8")
    out = pub.publishable(text, app_id, pub.authorizer_version())
    before, after = yaml.load(text, Loader=_Tags), yaml.load(out, Loader=_Tags)  # noqa: S506
    version = load_template(AUTHORIZER_APP)["Metadata"]["AWS::ServerlessRepo::Application"]["SemanticVersion"]
    for instance in INSTANCES:
        assert after["Resources"][instance]["Properties"]["Location"] == {
            "ApplicationId": app_id, "SemanticVersion": version}, instance
        after["Resources"][instance]["Properties"]["Location"] = before["Resources"][instance]["Properties"]["Location"]
    assert after == before
    # no local Location is left: `sam publish` refuses one
    assert "Location: ../" not in out


@pytest.mark.parametrize("bad", ["svcauth-authorizer", "arn:aws:lambda:us-east-1:123456789012:function:x", ""])
def test_the_publishable_platform_refuses_what_is_no_application_id(bad):
    pub = _publishable()
    with pytest.raises(ValueError, match="not a Serverless Application Repository"):
        pub.publishable(PLATFORM.read_text(encoding="utf-8"), bad, "0.2.0")

"""The authorizer as a reusable SAM application (authorizer/template.yaml).

One definition: the platform (platform/template.yaml) nests it three times, once per
credential it accepts, and publishes it for teams that want their own copy. Transformed
offline with the SAM translator, a nested stack with the parameters the parent passes.
"""

from __future__ import annotations

import re
import tomllib

import pytest

from templatelib import (
    ACCOUNT,
    PARTITION,
    REGION,
    ROOT,
    Resolver,
    api_methods,
    as_list,
    evaluate,
    load_template,
    parameter_values,
    role_statements,
    security_schemes,
    transform,
)

APP = ROOT / "authorizer" / "template.yaml"
PLATFORM = ROOT / "platform" / "template.yaml"


def resolve(path, **params) -> Resolver:
    sam = load_template(path)
    return Resolver(transform(sam, **params), parameter_values(sam, **params), path.parent)


def _ssm(name: str) -> str:
    return f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter{name}"


def test_application_is_the_function_its_role_and_its_log_group():
    r = resolve(APP)
    kinds = {lid: res["Type"] for lid, res in r.resources().items()}
    assert kinds == {"AuthorizerFunction": "AWS::Lambda::Function", "AuthorizerRole": "AWS::IAM::Role",
                     "AuthorizerLogGroup": "AWS::Logs::LogGroup"}
    fn = r.resources()["AuthorizerFunction"]["Properties"]
    assert fn["Role"] == r.getatt("AuthorizerRole", "Arn")
    assert fn["LoggingConfig"]["LogGroup"] == r.ref("AuthorizerLogGroup")
    assert (fn["Runtime"], fn["Architectures"], fn["Timeout"]) == ("provided.al2023", ["arm64"], 5)
    # nobody may invoke it until a consumer's API adds its own permission
    assert not r.resources("AWS::Lambda::Permission")
    outputs = {k: r.resolve(v["Value"]) for k, v in r.cfn["Outputs"].items()}
    assert outputs["FunctionArn"] == r.getatt("AuthorizerFunction", "Arn")
    assert outputs["RoleArn"] == r.getatt("AuthorizerRole", "Arn")
    assert outputs["ResultTtl"] == "300"
    assert outputs["ApiRegistryPath"] == "/svcauth/dev/apis"


def test_application_parameters_set_the_store_paths_the_kms_key_and_the_ttl():
    key = f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    r = resolve(APP, StorePath="/teams/billing", SsmKmsKeyArn=key, ResultTtl=60)
    env = r.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_SSM_PATH"] == "/teams/billing/keys"
    assert env["SVCAUTH_API_PATH"] == "/teams/billing/apis"
    st = role_statements(r, "AuthorizerRole")
    assert evaluate(st, "ssm:GetParametersByPath", _ssm("/teams/billing/keys")) == "allow"
    assert evaluate(st, "ssm:GetParameters", _ssm("/teams/billing/revoked/k1")) == "allow"
    assert evaluate(st, "ssm:GetParametersByPath", _ssm("/teams/billing/brakes/tutor-service")) == "allow"
    assert evaluate(st, "ssm:GetParameter", _ssm("/teams/billing/apis/abc123")) == "allow"
    assert evaluate(st, "ssm:GetParametersByPath", _ssm("/svcauth/dev/keys")) == "implicit-deny"
    via = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com",
           "kms:EncryptionContext:PARAMETER_ARN": _ssm("/teams/billing/keys/tutor-service")}
    assert evaluate(st, "kms:Decrypt", key, via) == "allow"
    assert evaluate(st, "kms:Decrypt", key.replace("1234abcd", "ffffffff"), via) == "deny"
    assert r.resolve(r.cfn["Outputs"]["ResultTtl"]["Value"]) == "60"


def test_application_is_ready_for_sam_publish():
    meta = load_template(APP)["Metadata"]["AWS::ServerlessRepo::Application"]
    for field in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "SemanticVersion"):
        assert meta.get(field), field
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["SemanticVersion"])
    assert len(meta["Description"]) <= 256  # the repository's limit
    assert (APP.parent / meta["ReadmeUrl"]).is_file()
    # SAR needs a license file to make an application public (and never changes it after)
    assert (APP.parent / meta["LicenseUrl"]).resolve() == ROOT / "LICENSE"
    cargo = tomllib.loads((ROOT / "authorizer" / "Cargo.toml").read_text(encoding="utf-8"))
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    assert meta["SemanticVersion"] == cargo["package"]["version"]
    assert meta["SpdxLicenseId"] == workspace["workspace"]["package"]["license"]
    # `sam build` builds the function from the cargo workspace root
    fn = load_template(APP)["Resources"]["AuthorizerFunction"]
    assert (APP.parent / fn["Properties"]["CodeUri"] / "Cargo.toml").resolve() == ROOT / "Cargo.toml"
    assert fn["Metadata"] == {**fn["Metadata"], "BuildMethod": "rust-cargolambda",
                              "BuildProperties": {"Binary": "authorizer"}}


def test_the_license_file_is_the_workspaces_license():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    assert workspace["workspace"]["package"]["license"] == "Apache-2.0"
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_the_readme_documents_every_parameter_and_output():
    """authorizer/README.md is the application's page in the Serverless Application
    Repository: a row per parameter with its default, and every output."""
    doc = load_template(APP)
    readme = (APP.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Parameters"):readme.index("## Publish")]
    rows = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `(\w+)` \|([^|]*)\|", section, re.M)}
    assert set(rows) == set(doc["Parameters"])
    for name, param in doc["Parameters"].items():
        default = str(param.get("Default", ""))
        cell = rows[name]
        if default:
            assert cell in (default, f"`{default}`"), (name, cell, default)
        else:
            assert cell.startswith("empty"), (name, cell)
    (outputs,) = re.findall(r"^Outputs: (.*?)\.$", section, re.M | re.S)
    assert re.findall(r"`(\w+)`", outputs) == list(doc["Outputs"])
    # every parameter is also in the console's parameter groups
    groups = doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert sorted(p for g in groups for p in g["Parameters"]) == sorted(doc["Parameters"])


def test_one_definition_of_the_authorizer():
    """No other template defines an authorizer function: the platform nests the
    application, three times, all from this one file."""
    for path in (ROOT / "template.yaml", PLATFORM, ROOT / "example" / "template.yaml"):
        doc = load_template(path)
        binaries = [res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
                    for res in doc["Resources"].values() if res["Type"] == "AWS::Serverless::Function"]
        assert "authorizer" not in binaries, path
    doc = load_template(PLATFORM)
    apps = [res for res in doc["Resources"].values() if res["Type"] == "AWS::Serverless::Application"]
    assert len(apps) == 3
    assert {(PLATFORM.parent / app["Properties"]["Location"]).resolve() for app in apps} == {APP.resolve()}


def test_the_platform_gives_each_instance_its_permission_from_its_own_api_only():
    r = resolve(PLATFORM)
    function_arn = r.nested("KeyAuthorizer").getatt("AuthorizerFunction", "Arn")
    perms = [p["Properties"] for p in r.resources("AWS::Lambda::Permission").values()
             if p["Properties"]["FunctionName"] == function_arn]
    assert perms == [{"Action": "lambda:InvokeFunction", "FunctionName": function_arn,
                      "Principal": "apigateway.amazonaws.com",
                      "SourceArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:TokenApi/authorizers/*"}]
    # the other two are for other stacks' APIs, which grant their own (test_attach.py)
    for instance in ("TokenAuthorizer", "KeyOrTokenAuthorizer"):
        arn = r.nested(instance).getatt("AuthorizerFunction", "Arn")
        assert not [p for p in r.resources("AWS::Lambda::Permission").values()
                    if p["Properties"]["FunctionName"] == arn], instance


def test_every_checkov_suppression_has_a_written_reason():
    doc = load_template(APP)
    for lid, res in doc["Resources"].items():
        for s in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(s.get("comment", "").split()) >= 8, (lid, s)
    assert as_list(doc["Resources"])  # not empty

"""The authorizer's capacity (issue 11 item 3, issue 16 §3; docs/deploy.md "Reserved concurrency").

Reserved concurrency caps how many instances a flood of invented keys can start, and
with them the cold starts that read SSM; but Lambda keeps 100 of an account's quota
unreserved, and a new account's quota is 10 or 50, so any default reservation fails
the first deploy there. The default is none, everywhere an authorizer is deployed. The
key id index lets a cold instance answer with two SSM calls. Checked on the templates as
the SAM translator transforms them.
"""

from __future__ import annotations

import re

from deployment import INSTANCES, PLATFORM_SAM, deploy, platform_alone
from templatelib import (ACCOUNT, AUTHORIZER_APP, PARTITION, REGION, ROOT, TEMPLATE, evaluate, load_template,
                         resolve_file, role_statements)


def _function(r) -> dict:
    return r.resources()["AuthorizerFunction"]["Properties"]


def test_reserved_concurrency_defaults_to_none_everywhere():
    """§3: a reservation in a new account (quota 10 or 50) fails the nested stack."""
    for path in (AUTHORIZER_APP, ROOT / "platform" / "template.yaml", TEMPLATE):
        params = load_template(path)["Parameters"]
        (name,) = [n for n in params if n.endswith("ReservedConcurrency")]
        assert (params[name]["Default"], params[name]["MinValue"], params[name]["Type"]) == (0, 0, "Number"), path
    assert "ReservedConcurrentExecutions" not in _function(resolve_file(AUTHORIZER_APP))
    for instance in INSTANCES:
        assert "ReservedConcurrentExecutions" not in _function(deploy().authorizer(instance)), instance
    # the root template deploys the same
    root = resolve_file(TEMPLATE)
    platform = root.nested("Platform")
    for instance in INSTANCES:
        assert "ReservedConcurrentExecutions" not in _function(platform.nested(instance)), instance


def test_reserved_concurrency_follows_the_parameter_on_every_instance():
    assert _function(resolve_file(AUTHORIZER_APP, ReservedConcurrency=75))["ReservedConcurrentExecutions"] == "75"
    r = platform_alone(AuthorizerReservedConcurrency=20)
    for instance in INSTANCES:
        assert _function(r.nested(instance))["ReservedConcurrentExecutions"] == "20", instance


def test_the_sizing_rule_is_written_where_the_parameter_is_set():
    """100 unreserved plus every instance's reservation: said by the parameters and by
    docs/deploy.md, which also names the three instances."""
    text = PLATFORM_SAM["Parameters"]["AuthorizerReservedConcurrency"]["Description"]
    assert "100 + 3 x N" in text
    assert "100 + N" in load_template(AUTHORIZER_APP)["Parameters"]["ReservedConcurrency"]["Description"]
    deploy_md = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = deploy_md[deploy_md.index("\n## Reserved concurrency"):]
    section = section[:section.index("\n## ", 4)]
    assert re.search(r"keeps\s+100 of the account's concurrency unreserved", section)
    assert "100 + 3 × N + every other reservation" in section
    for instance in INSTANCES:
        assert instance in section, instance


def test_the_role_reads_the_key_id_index_and_cannot_write_it():
    r = resolve_file(AUTHORIZER_APP, StorePath="/teams/billing")
    st = role_statements(r, "AuthorizerRole")
    entry = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/teams/billing/index/kid_0123456789abcdef"
    assert evaluate(st, "ssm:GetParameters", entry) == "allow"
    assert evaluate(st, "ssm:PutParameter", entry) == "implicit-deny"
    other = entry.replace("/teams/billing/", "/svcauth/dev/")
    assert evaluate(st, "ssm:GetParameters", other) == "implicit-deny"
    # the first call of a cold instance: index entry, marker and API registry entry together
    for name in ("index/kid_0123456789abcdef", "revoked/kid_0123456789abcdef", "apis/a1b2c3d4e5"):
        arn = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/teams/billing/{name}"
        assert evaluate(st, "ssm:GetParameters", arn) == "allow", name


def test_the_platform_passes_its_reserved_concurrency_to_every_instance():
    apps = {name: res for name, res in PLATFORM_SAM["Resources"].items()
            if res["Type"] == "AWS::Serverless::Application"}
    assert set(apps) == set(INSTANCES)
    for name, res in apps.items():
        assert res["Properties"]["Location"] == "../authorizer/template.yaml", name
        assert res["Properties"]["Parameters"]["ReservedConcurrency"] == {
            "Ref": "AuthorizerReservedConcurrency"}, name

"""docs/contracts.md's tables say what the templates deploy: the platform's exports, the
token API's routes, the authorizer each AuthMode of the example attaches, and the token
issuer's metric filters. Each row is read and checked against the transformed
templates, and each table against all of what it describes."""

from __future__ import annotations

import re

import pytest

from deployment import INSTANCES, deploy
from templatelib import PLATFORM_STACK, ROOT, Resolver, api_methods, security_schemes

CONTRACTS = ROOT / "docs" / "contracts.md"


def table(heading: str) -> list[dict[str, str]]:
    """The rows of the first table under the `## {heading}` section, by column name,
    with the backticks of each cell removed."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text[text.index(f"## {heading}"):]
    section = section[:section.index("\n## ", 4)]
    lines = [l for l in section.splitlines() if l.startswith("|")]
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines]
    header, rows = cells[0], cells[2:]
    assert rows, heading
    return [dict(zip([h.replace("`", "") for h in header], row)) for row in rows]


def plain(cell: str) -> str:
    return cell.replace("`", "")


def value_of(cell: str, r: Resolver) -> str | None:
    """A cell's value: `-`/`none`/`unset` is None; `Param (n)` is the parameter's value
    in `r` (and n must be its default); a literal is itself."""
    cell = plain(cell)
    if cell in ("-", "none", "unset"):
        return None
    m = re.fullmatch(r"(\w+) \((\d+)\)", cell)
    if m:
        name, default = m.groups()
        assert str(r.params[name]) == default, (name, r.params[name], default)
        return str(r.params[name])
    return re.sub(r" \(.*\)$", "", cell)


def _instance_of(d, uri: str) -> tuple[str, str]:
    """(platform instance, its SVCAUTH_ACCEPT) of the authorizer function in `uri`."""
    (instance,) = [i for i in INSTANCES if f"{d.function_arn(i)}/invocations" in uri]
    return instance, d.env(instance)["SVCAUTH_ACCEPT"]


def test_the_exports_table_is_every_export_of_the_platform():
    r = deploy().platform
    exported = {name[len(PLATFORM_STACK) + 1:] for name in r.exports()}
    # one that exists only with a parameter set
    exported |= {n for n, o in r.cfn["Outputs"].items() if "Export" in o}
    rows = table("Platform exports")
    assert {plain(row["export"]).replace("{stack}-", "") for row in rows} == exported
    for row in rows:
        assert plain(row["export"]).startswith("{stack}-"), row


def test_the_authorizer_table_covers_every_mode_with_key_apis():
    from deployment import EXAMPLE_SAM
    modes = {plain(row["AuthMode"]) for row in table("Authorizers per AuthMode")}
    allowed = set(EXAMPLE_SAM["Parameters"]["AuthMode"]["AllowedValues"])
    assert modes == allowed - {"iam"}


@pytest.mark.parametrize("row", table("Authorizers per AuthMode"), ids=lambda row: plain(row["AuthMode"]))
def test_each_auth_mode_row_is_what_the_templates_deploy(row):
    mode = plain(row["AuthMode"])
    d = deploy(mode)
    for api_id in ("IdentityKeyApi", "TutorKeyApi"):
        api = d.example.resources("AWS::ApiGateway::RestApi")[api_id]
        name = plain(row["authorizer"])
        for route, op in api_methods(api).items():
            assert op["security"][0] == {name: []}, (api_id, route)
        auth = security_schemes(api)[name]["x-amazon-apigateway-authorizer"]
        assert auth.get("identitySource") == value_of(row["identity source"], d.example), api_id
        assert str(auth["authorizerResultTtlInSeconds"]) == value_of(row["result TTL"], d.example), api_id
        instance, accept = _instance_of(d, auth["authorizerUri"])
        assert plain(row["platform authorizer (SVCAUTH_ACCEPT)"]) == f"{instance} ({accept})"
        assert d.env(instance).get("SVCAUTH_TOKEN_MIN_REMAINING_SECS") == value_of(
            row["SVCAUTH_TOKEN_MIN_REMAINING_SECS"], d.platform)


def test_the_token_api_routes_are_the_contracts():
    d = deploy()
    api = d.platform.resources("AWS::ApiGateway::RestApi")["TokenApi"]
    methods = api_methods(api)
    rows = table("Routes (token API)")
    assert {tuple(plain(row["route"]).split(" ", 1)) for row in rows} == set(methods)
    for row in rows:
        op = methods[tuple(plain(row["route"]).split(" ", 1))]
        assert f"function:{d.platform.ref(plain(row['function']))}/invocations" in op[
            "x-amazon-apigateway-integration"]["uri"]
        authorizer = plain(row["authorizer"])
        assert op["security"] == [{authorizer: []}], row["route"]
        scheme = security_schemes(api).get(authorizer, {}).get("x-amazon-apigateway-authorizer")
        if scheme is None:
            assert row["identity source"] == row["result TTL"] == row[
                "platform authorizer (SVCAUTH_ACCEPT)"] == "-", row["route"]
            continue
        assert scheme["identitySource"] == value_of(row["identity source"], d.platform)
        assert str(scheme["authorizerResultTtlInSeconds"]) == value_of(row["result TTL"], d.platform)
        instance, accept = _instance_of(d, scheme["authorizerUri"])
        assert plain(row["platform authorizer (SVCAUTH_ACCEPT)"]) == f"{instance} ({accept})"


def test_the_key_apis_exist_exactly_in_the_modes_of_the_table():
    assert not {"IdentityKeyApi", "TutorKeyApi"} & set(deploy("iam").example.resources("AWS::ApiGateway::RestApi"))


def test_the_issuers_metric_filters_are_the_contracts():
    r = deploy().platform
    filters = {f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
               for f in r.resources("AWS::Logs::MetricFilter").values()}
    rows = _issuer_metric_rows()
    assert {plain(row["metric"]) for row in rows} == set(filters)
    for row in rows:
        f = filters[plain(row["metric"])]
        assert f["LogGroupName"] == r.ref("TokenIssuerLogGroup")
        assert f["FilterPattern"] == plain(row["filter pattern"]), row["metric"]
        (t,) = f["MetricTransformations"]
        assert t["MetricNamespace"] == f"svcauth/{PLATFORM_STACK}/TokenIssuer"
        dims = {d["Key"]: d["Value"] for d in t.get("Dimensions", [])}
        expected = plain(row["dimension"])
        assert dims == ({} if expected == "none" else dict([expected.split(" = ")])), row["metric"]


def _issuer_metric_rows() -> list[dict[str, str]]:
    """The metric table of the token issuer's section (the section's second table)."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text[text.index("## Token issuer"):]
    section = section[section.index("Metrics:"):]
    lines = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]

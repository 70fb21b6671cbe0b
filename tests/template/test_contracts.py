"""docs/contracts.md's token API routes and per-AuthMode authorizer tables say what the
template deploys: each row is read and checked against the transformed template."""

from __future__ import annotations

import re

import pytest

from templatelib import ROOT, Resolver, api_methods, load_template, parameter_values, security_schemes, transform

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
    (and n must be its default); a literal is itself."""
    cell = plain(cell)
    if cell in ("-", "none", "unset"):
        return None
    m = re.fullmatch(r"(\w+) \((\d+)\)", cell)
    if m:
        name, default = m.groups()
        assert str(r.params[name]) == default, (name, r.params[name], default)
        return str(r.params[name])
    return re.sub(r" \(.*\)$", "", cell)


@pytest.fixture(scope="module")
def sam():
    return load_template()


def build(sam, mode: str) -> Resolver:
    return Resolver(transform(sam, AuthMode=mode), parameter_values(sam, AuthMode=mode))


def _accepting_function(r: Resolver, uri: str) -> tuple[str, str]:
    """(nested application, its SVCAUTH_ACCEPT) of the authorizer function in `uri`."""
    (app,) = [lid for lid in r.nested_ids()
              if f"function:{r.nested(lid).ref('AuthorizerFunction')}/invocations" in uri]
    env = r.nested(app).resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    return app, env["SVCAUTH_ACCEPT"]


def test_the_authorizer_table_covers_every_mode_with_key_apis(sam):
    modes = {plain(row["AuthMode"]) for row in table("Authorizers per AuthMode")}
    allowed = set(sam["Parameters"]["AuthMode"]["AllowedValues"])
    assert modes == allowed - {"iam"}


@pytest.mark.parametrize("row", table("Authorizers per AuthMode"), ids=lambda row: plain(row["AuthMode"]))
def test_each_auth_mode_row_is_what_the_template_deploys(sam, row):
    mode = plain(row["AuthMode"])
    r = build(sam, mode)
    for api_id in ("IdentityKeyApi", "TutorKeyApi"):
        api = r.resources("AWS::ApiGateway::RestApi")[api_id]
        name = plain(row["authorizer"])
        for route, op in api_methods(api).items():
            assert op["security"][0] == {name: []}, (api_id, route)
        auth = security_schemes(api)[name]["x-amazon-apigateway-authorizer"]
        assert auth.get("identitySource") == value_of(row["identity source"], r), api_id
        assert str(auth["authorizerResultTtlInSeconds"]) == value_of(row["result TTL"], r), api_id
        app, accept = _accepting_function(r, auth["authorizerUri"])
        assert plain(row["authorizer function (SVCAUTH_ACCEPT)"]) == f"{app} ({accept})"
        env = r.nested(app).resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
        assert env.get("SVCAUTH_TOKEN_MIN_REMAINING_SECS") == value_of(row["SVCAUTH_TOKEN_MIN_REMAINING_SECS"], r)


@pytest.mark.parametrize("mode", ["token", "key-or-token"])
def test_the_token_api_routes_are_the_contracts(sam, mode):
    r = build(sam, mode)
    api = r.resources("AWS::ApiGateway::RestApi")["TokenApi"]
    methods = api_methods(api)
    rows = table("Routes (token API)")
    assert {tuple(plain(row["route"]).split(" ", 1)) for row in rows} == set(methods)
    for row in rows:
        op = methods[tuple(plain(row["route"]).split(" ", 1))]
        assert f"function:{r.ref(plain(row['function']))}/invocations" in op["x-amazon-apigateway-integration"]["uri"]
        authorizer = plain(row["authorizer"])
        assert op["security"] == [{authorizer: []}], row["route"]
        scheme = security_schemes(api).get(authorizer, {}).get("x-amazon-apigateway-authorizer")
        if scheme is None:
            assert row["identity source"] == row["result TTL"] == row[
                "authorizer function (SVCAUTH_ACCEPT)"] == "-", row["route"]
            continue
        assert scheme["identitySource"] == value_of(row["identity source"], r)
        assert str(scheme["authorizerResultTtlInSeconds"]) == value_of(row["result TTL"], r)
        app, accept = _accepting_function(r, scheme["authorizerUri"])
        assert plain(row["authorizer function (SVCAUTH_ACCEPT)"]) == f"{app} ({accept})"


def test_the_key_apis_exist_exactly_in_the_modes_of_the_table(sam):
    r = build(sam, "iam")
    assert not {"IdentityKeyApi", "TutorKeyApi", "TokenApi"} & set(r.resources("AWS::ApiGateway::RestApi"))

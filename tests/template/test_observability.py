"""The dashboards and the alarms read only metrics that exist, and only their own.

The authorizer's own metrics are read from its Rust source (every `metrics::counter!`,
`gauge!` and `histogram!` call, with its label keys: EMF makes each label a dimension,
and CloudWatch matches a metric only on its exact dimension set). Every metric an alarm
or a dashboard widget reads in an authorizer's namespace must be one of those, with
exactly those dimensions and a dimension value the source can produce. Metrics in
AWS/Lambda and AWS/ApiGateway must be ones those services publish, on resources of the
same stack. Each authorizer instance of each platform stack emits into a namespace of
its own (SVCAUTH_METRICS_NAMESPACE = svcauth/{stack}/{instance}, configuration only),
so no alarm reads another stack's or another instance's refusals (issue 16 §3).
Negative controls show a misspelt metric, a shared namespace and an alarm that ignores
refusals are caught.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from deployment import INSTANCES, PLATFORM_SAM, deploy, example_on, platform_alone
from templatelib import ROOT, Resolver, as_list

# Where the authorizer's metrics can be emitted from: the binary and the libraries it links.
RUST_SOURCES = [ROOT / "authorizer" / "src", ROOT / "libs"]

# What the AWS services publish (AWS documentation), by namespace: metric -> dimension sets.
AWS_METRICS = {
    "AWS/Lambda": {name: {frozenset({"FunctionName"})} for name in (
        "Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions")},
    "AWS/ApiGateway": {name: {frozenset({"ApiName", "Stage"}), frozenset({"ApiName"})} for name in (
        "4XXError", "5XXError", "Latency", "IntegrationLatency", "Count")},
}
# CloudWatch: an alarm on metric math reads at most 10 metrics (a hard limit).
ALARM_METRICS_LIMIT = 10


# ------------------------------------------------------------------ the source
def _rust_files() -> list[Path]:
    files: list[Path] = []
    for base in RUST_SOURCES:
        files += [p for p in base.rglob("*.rs") if "/target/" not in str(p) and "/tests/" not in str(p)]
    return files


def _macro_args(text: str, start: int) -> str:
    """The text between the parenthesis at `start` and its match."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    raise ValueError("unbalanced macro call")


def emitted_metrics(files: list[Path] | None = None) -> tuple[dict[str, set[frozenset]], set[str]]:
    """(metric name -> label-key sets, every string literal) from the Rust source."""
    files = files if files is not None else _rust_files()
    texts = {p: p.read_text(encoding="utf-8") for p in files}
    consts: dict[str, str] = {}
    literals: set[str] = set()
    for text in texts.values():
        for m in re.finditer(r'const\s+([A-Z_][A-Z0-9_]*)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]*)"', text):
            consts[m.group(1)] = m.group(2)
        literals.update(re.findall(r'"((?:[^"\\]|\\.)*)"', text))
    metrics: dict[str, set[frozenset]] = {}
    for path, text in texts.items():
        for m in re.finditer(r"\b(?:metrics::)?(?:counter|gauge|histogram)!\s*\(", text):
            args = _macro_args(text, m.end() - 1)
            first = args.split(",", 1)[0].strip()
            if not first.startswith('"'):
                first = first.rsplit("::", 1)[-1]  # a const by its path: crate::source::LOADS_METRIC
            if first.startswith('"'):
                name = first.strip('"')
            elif first in consts:
                name = consts[first]
            else:
                raise AssertionError(f"{path}: metric name {first!r} is neither a literal nor a const &str")
            labels = frozenset(re.findall(r'"([^"]+)"\s*=>', args))
            metrics.setdefault(name, set()).add(labels)
    return metrics, literals


# ------------------------------------------------------------------ the template
def _search_reads(expression: str) -> list[tuple[str, str, frozenset, dict]]:
    """(namespace, metric, dimension keys, fixed dimension values) of SEARCH() calls."""
    out = []
    for m in re.finditer(r"SEARCH\('\{([^}]*)\}([^']*)'", expression):
        schema = [x.strip() for x in m.group(1).split(",")]
        terms = m.group(2)
        names = re.findall(r'MetricName="([^"]+)"', terms)
        assert len(names) == 1, f"a SEARCH must name exactly one MetricName: {expression}"
        fixed: dict[str, set] = {}
        for k, v in re.findall(r'(\w+)="([^"]+)"', terms):
            if k != "MetricName":
                fixed.setdefault(k, set()).add(v)
        out.append((schema[0], names[0], frozenset(schema[1:]), fixed))
    return out


def metric_reads(r: Resolver) -> list[tuple[str, str, str, frozenset, dict]]:
    """(where, namespace, metric, dimension keys, {dimension: values}) of every metric
    an alarm or a dashboard widget reads, resolved for `r`'s parameters."""
    reads = []
    for lid, res in r.resources("AWS::CloudWatch::Alarm").items():
        p = res["Properties"]
        stats = []
        if "MetricName" in p:
            stats.append((p["Namespace"], p["MetricName"], p.get("Dimensions", [])))
        for q in p.get("Metrics", []):
            if "MetricStat" in q:
                m = q["MetricStat"]["Metric"]
                stats.append((m["Namespace"], m["MetricName"], m.get("Dimensions", [])))
            else:
                assert "SEARCH" not in q["Expression"], f"{lid}: alarms cannot use SEARCH"
        for ns, name, dims in stats:
            reads.append((lid, ns, name, frozenset(d["Name"] for d in dims),
                          {d["Name"]: {d["Value"]} for d in dims}))
    for lid, res in r.resources("AWS::CloudWatch::Dashboard").items():
        body = json.loads(res["Properties"]["DashboardBody"])
        for w in body["widgets"]:
            where = f"{lid}: {w['properties'].get('title')}"
            for line in w["properties"].get("metrics", []):
                if isinstance(line[0], dict):
                    for ns, name, keys, fixed in _search_reads(line[0]["expression"]):
                        reads.append((where, ns, name, keys, fixed))
                    continue
                parts = [x for x in line if not isinstance(x, dict)]
                assert "." not in parts, f"{where}: write every metric line in full"
                ns, name, rest = parts[0], parts[1], parts[2:]
                dims = dict(zip(rest[::2], rest[1::2]))
                reads.append((where, ns, name, frozenset(dims), {k: {v} for k, v in dims.items()}))
    return reads


def namespaces(platform: Resolver) -> dict[str, str]:
    """Instance -> SVCAUTH_METRICS_NAMESPACE of each of the platform's authorizers, as
    deployed (the application sets the variable from its MetricsNamespace parameter)."""
    out = {}
    for instance in platform.nested_ids():
        child = platform.nested(instance)
        raw = child.cfn["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
        assert raw["SVCAUTH_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
        out[instance] = child.resources()["AuthorizerFunction"]["Properties"]["Environment"]["Variables"][
            "SVCAUTH_METRICS_NAMESPACE"]
    return out


def filtered_metrics(r: Resolver) -> dict[str, dict[str, set[frozenset]]]:
    """namespace -> metric -> dimension-key sets of the stack's log metric filters."""
    out: dict[str, dict[str, set[frozenset]]] = {}
    for f in r.resources("AWS::Logs::MetricFilter").values():
        for t in f["Properties"]["MetricTransformations"]:
            keys = frozenset(d["Key"] for d in t.get("Dimensions", []))
            out.setdefault(t["MetricNamespace"], {}).setdefault(t["MetricName"], set()).add(keys)
    return out


def check_reads(r: Resolver, metrics: dict[str, set[frozenset]], literals: set[str],
                ours: set[str] = frozenset()) -> list[str]:
    """Problems with what `r`'s alarms and widgets read; empty when all is well. `ours`:
    the authorizer namespaces of the stack (the platform's three); the stack's own log
    metric filters count as metrics that exist."""
    problems = []
    filtered = filtered_metrics(r)
    functions = {r.ref(lid) for lid in r.resources("AWS::Lambda::Function")}
    for app in r.nested_ids():
        child = r.nested(app)
        functions |= {child.ref(lid) for lid in child.resources("AWS::Lambda::Function")}
    api_names = {r.resolve(api["Properties"]["Name"]) for lid, api in r.cfn["Resources"].items()
                 if api["Type"] == "AWS::ApiGateway::RestApi"}
    for where, ns, name, keys, values in metric_reads(r):
        if ns in ours:
            if name not in metrics:
                problems.append(f"{where}: {ns}/{name} is not emitted by the authorizer")
            elif keys not in metrics[name]:
                problems.append(f"{where}: {ns}/{name} is emitted with dimensions "
                                f"{sorted(map(sorted, metrics[name]))}, not {sorted(keys)}")
            for k, vs in values.items():
                for v in vs:
                    if v not in literals:
                        problems.append(f"{where}: {name} {k}={v} is no value the source produces")
        elif ns in filtered:
            if keys not in filtered[ns].get(name, set()):
                problems.append(f"{where}: no metric filter of this stack makes {ns}/{name} {sorted(keys)}")
        elif ns in AWS_METRICS:
            if keys not in AWS_METRICS[ns].get(name, set()):
                problems.append(f"{where}: {ns} publishes no {name} with dimensions {sorted(keys)}")
            for v in values.get("FunctionName", set()):
                if v not in functions:
                    problems.append(f"{where}: FunctionName {v} is not a function of this stack")
            for v in values.get("ApiName", set()):
                if v not in api_names:
                    problems.append(f"{where}: ApiName {v} is not an API of this stack")
        else:
            problems.append(f"{where}: namespace {ns} is neither this stack's authorizers' nor AWS's")
    return problems


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def source():
    return emitted_metrics()


def platform_problems(r: Resolver, source) -> list[str]:
    return check_reads(r, *source, ours=set(namespaces(r).values()))


# ------------------------------------------------------------------ tests
def test_the_source_parser_finds_the_authorizers_metrics(source):
    metrics, literals = source
    # the decision metrics the handler emits, with their label keys
    assert frozenset({"Outcome", "Service"}) in metrics["Decisions"]
    assert frozenset({"Reason"}) in metrics["Unauthorized"]
    assert {"store_unavailable", "unknown_key", "malformed_key"} <= literals


def test_the_source_parser_resolves_const_names(tmp_path):
    f = tmp_path / "x.rs"
    f.write_text('pub const LOADS: &str = "KeyStoreLoads";\n'
                 'fn f() { metrics::counter!(LOADS, "Result" => r).increment(1);\n'
                 '  metrics::histogram!("LoadMs").record(1.0); }\n')
    metrics, _ = emitted_metrics([f])
    assert metrics == {"KeyStoreLoads": {frozenset({"Result"})}, "LoadMs": {frozenset()}}


def test_every_metric_the_platform_reads_is_one_that_exists(source):
    r = deploy().platform
    assert metric_reads(r)
    assert platform_problems(r, source) == []


@pytest.mark.parametrize("mode", ["api-key", "iam", "both", "token", "key-or-token"])
def test_every_metric_the_example_reads_is_one_of_its_own_apis(source, mode):
    r = deploy(mode).example
    assert metric_reads(r)
    # nothing of the authorizers: their alarms and widgets are the platform's
    assert check_reads(r, *source) == []


def test_negative_control_a_misspelt_metric_or_dimension_is_caught(source):
    for change in ({"MetricName": "Unauthorised"}, {"Dimensions": [{"Name": "Cause", "Value": "store_unavailable"}]},
                   {"Dimensions": [{"Name": "Reason", "Value": "store_unavailible"}]}):
        sam2 = copy.deepcopy(PLATFORM_SAM)
        for q in sam2["Resources"]["AuthorizerStoreUnavailableAlarm"]["Properties"]["Metrics"]:
            if "MetricStat" in q:
                q["MetricStat"]["Metric"].update(change)
        problems = platform_problems(platform_alone(sam2), source)
        assert any("AuthorizerStoreUnavailableAlarm" in p for p in problems), change
    sam2 = copy.deepcopy(PLATFORM_SAM)
    body = sam2["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body[0] = body[0].replace('MetricName=\\"Decisions\\"', 'MetricName=\\"Decision\\"')
    assert any("Decision is not emitted" in p for p in platform_problems(platform_alone(sam2), source))


def test_each_instance_of_each_stack_has_a_namespace_of_its_own():
    """Metrics without a dimension in one namespace are shared by every stack and every
    instance that emits them: each instance's namespace names its stack and itself."""
    a, b = platform_alone(stack_name="svcauth-a", prefix="a-"), platform_alone(stack_name="svcauth-b", prefix="b-")
    ns_a, ns_b = namespaces(a), namespaces(b)
    assert set(ns_a) == set(INSTANCES)
    assert ns_a == {i: f"svcauth/svcauth-a/{i}" for i in INSTANCES}
    assert len(set(ns_a.values())) == len(INSTANCES)
    assert not set(ns_a.values()) & set(ns_b.values())
    # the code's own default is for an authorizer deployed on its own
    config = (ROOT / "authorizer" / "src" / "config.rs").read_text(encoding="utf-8")
    assert '"ServiceAuth"' in config and "SVCAUTH_METRICS_NAMESPACE" in config


def _identities(r: Resolver) -> set[tuple]:
    """(namespace, metric, dimensions) of every metric r's alarms and widgets read;
    a SEARCH stands for its whole schema."""
    return {(ns, name, tuple(sorted((k, tuple(sorted(v))) for k, v in values.items())))
            for _where, ns, name, _keys, values in metric_reads(r)}


def test_two_stacks_in_one_account_read_none_of_each_others_metrics():
    """§3: every alarm and widget reads only its own stack's (and instance's) metrics."""
    a = platform_alone(stack_name="svcauth-a", prefix="a-", Environment="dev")
    b = platform_alone(stack_name="svcauth-b", prefix="b-", Environment="dev")
    assert not _identities(a) & _identities(b)
    # the example's are by ApiName, which carries its stack's name
    ea = example_on(a, "both", stack_name="svcauth-example-a")
    eb = example_on(b, "both", stack_name="svcauth-example-b")
    assert not _identities(ea) & _identities(eb)


def _alarm_namespaces(alarm: dict) -> set[str]:
    props = alarm["Properties"]
    stats = [props] if "Namespace" in props else [q["MetricStat"]["Metric"] for q in props["Metrics"]
                                                  if "MetricStat" in q]
    return {m["Namespace"] for m in stats}


def test_each_alarm_reads_the_namespaces_this_stacks_instances_emit(source):
    r = deploy().platform
    ours = set(namespaces(r).values())
    read = set()
    for lid, alarm in r.resources("AWS::CloudWatch::Alarm").items():
        assert _alarm_namespaces(alarm) <= ours | {"AWS/Lambda", "AWS/ApiGateway"}, lid
        read |= _alarm_namespaces(alarm) & ours
    assert read == ours
    # negative control: an instance emitting into the namespace every authorizer used to
    # share leaves the alarms reading a namespace nobody emits
    sam2 = copy.deepcopy(PLATFORM_SAM)
    sam2["Resources"]["KeyAuthorizer"]["Properties"]["Parameters"]["MetricsNamespace"] = "ServiceAuth"
    r2 = platform_alone(sam2)
    assert namespaces(r2)["KeyAuthorizer"] == "ServiceAuth"
    assert any(f"svcauth/{r2.stack_name}/KeyAuthorizer is neither" in p for p in platform_problems(r2, source))


def test_the_alarms_the_issue_asks_for():
    d = deploy("both")
    assert set(d.platform.resources("AWS::CloudWatch::Alarm")) == {
        "AuthorizerStoreUnavailableAlarm", "AuthorizerRejectedParameterAlarm",
        "AuthorizerGuessedKeysAlarm", "AuthorizerErrorsAlarm", "AuthorizerThrottlesAlarm",
        "TokenKeySetUnavailableAlarm", "ForgedTokensAlarm", "TokenIssuerErrorsAlarm", "TokenApi5xxAlarm"}
    assert set(d.example.resources("AWS::CloudWatch::Alarm")) == {
        "IdentityKeyApi5xxAlarm", "TutorKeyApi5xxAlarm", "IdentityIamApi5xxAlarm", "TutorIamApi5xxAlarm"}
    alarms = d.platform.resources("AWS::CloudWatch::Alarm")
    store = alarms["AuthorizerStoreUnavailableAlarm"]["Properties"]
    stats = [q["MetricStat"] for q in store["Metrics"] if "MetricStat" in q]
    assert {(s["Metric"]["MetricName"], json.dumps(s["Metric"]["Dimensions"])) for s in stats} == {
        ("Unauthorized", json.dumps([{"Name": "Reason", "Value": "store_unavailable"}]))}
    assert {s["Metric"]["Namespace"] for s in stats} == set(namespaces(d.platform).values())
    assert store["Threshold"] == 1 and {s["Period"] for s in stats} == {60}
    # Issue 9 item 5: one unusable parameter refuses only its service, and pages.
    rejected = alarms["AuthorizerRejectedParameterAlarm"]["Properties"]
    stats = [q["MetricStat"]["Metric"] for q in rejected["Metrics"] if "MetricStat" in q]
    assert {(m["MetricName"], m.get("Dimensions")) for m in stats} == {("KeyStoreRejectedParameters", None)}
    assert rejected["Threshold"] == 1 and rejected["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert set(deploy("iam").example.resources("AWS::CloudWatch::Alarm")) == {
        "IdentityIamApi5xxAlarm", "TutorIamApi5xxAlarm"}


def test_no_alarm_reads_more_metrics_than_cloudwatch_allows():
    d = deploy("both")
    for r in (d.platform, d.example):
        for lid, alarm in r.resources("AWS::CloudWatch::Alarm").items():
            stats = [q for q in alarm["Properties"].get("Metrics", []) if "MetricStat" in q]
            assert len(stats) <= ALARM_METRICS_LIMIT, lid


def test_no_alarm_expression_passes_a_scalar_to_a_function():
    """§3: metric math's MAX takes time series, not scalars: `MAX([0, ...])` is refused
    by CloudWatch. An alarm on a difference needs no clamp when its threshold is >= 1."""
    for alarm in deploy().platform.resources("AWS::CloudWatch::Alarm").values():
        for q in alarm["Properties"].get("Metrics", []):
            expr = q.get("Expression", "")
            assert not re.search(r"\[\s*-?\d", expr), expr
            assert "MAX(" not in expr, expr
            if "-" in expr:
                assert float(alarm["Properties"]["Threshold"]) >= 1


# ------------------------------------------------------------------ refusals in the source
AUTHORIZER_SRC = ROOT / "authorizer" / "src"
# The functions that audit a decision: each counts `Unauthorized{Reason}` and `Refusals`.
AUDIT_CALL = re.compile(r"\b(?:audit|audit_token)\s*\(")


def _blank_strings_and_comments(text: str) -> str:
    """`text` with string literals, char literals and comments blanked (same length),
    so braces and names inside them do not count."""
    out = list(text)
    for m in re.finditer(r'//[^\n]*|"(?:[^"\\]|\\.)*"', text):
        for i in range(m.start() + (0 if m.group().startswith("//") else 1),
                       m.end() - (0 if m.group().startswith("//") else 1)):
            if out[i] != "\n":
                out[i] = " "
    return "".join(out)


def _strip_groups(span: str) -> str:
    """`span` without its complete `{...}` groups (sibling blocks and patterns)."""
    prev = None
    while prev != span:
        prev, span = span, re.sub(r"\{[^{}]*\}", "", span)
    return span


def _enclosing_blocks(code: str, pos: int) -> list[int]:
    """Positions of the `{` of every block around `pos`, innermost first."""
    opens, depth = [], 0
    for i in range(pos - 1, -1, -1):
        if code[i] == "}":
            depth += 1
        elif code[i] == "{":
            if depth == 0:
                opens.append(i)
            else:
                depth -= 1
    return opens


def unaudited_refusals(text: str, name: str = "source") -> list[str]:
    """Where `text` answers 401 (`Err(Unauthorized)`) without first auditing the
    decision (`audit`/`audit_token`, which count it in `Refusals`) on the same path:
    in the 401's own block, or before it at the same level of an enclosing block up to
    the function's body (a sibling branch's audit does not count). Also any other use
    of the `Unauthorized` value, which this check cannot follow."""
    code = _blank_strings_and_comments(text)
    problems = []
    for m in re.finditer(r"Err\(Unauthorized\)", code):
        line = code.count("\n", 0, m.start()) + 1
        end, audited = m.start(), False
        for brace in _enclosing_blocks(code, m.start()):
            if AUDIT_CALL.search(_strip_groups(code[brace + 1:end])):
                audited = True
                break
            head = code[max(code.rfind(";", 0, brace), code.rfind("}", 0, brace)) + 1:brace]
            if re.search(r"\bfn\s+\w+", head):
                break  # the function's body: the path starts here
            end = brace
        if not audited:
            problems.append(f"{name}:{line}: Err(Unauthorized) with no audit before it on its path")
    # Every other mention of the unit struct is a type, its definition or an import.
    rest = re.sub(r"\b(?:pub\s+)?use\s+[^;]*;", "", code)
    rest = re.sub(r"Err\(Unauthorized\)|struct Unauthorized\b|From<Unauthorized>|_: Unauthorized\b"
                  r"|,\s*Unauthorized>", "", rest)
    for m in re.finditer(r"(?<!::)\bUnauthorized\b", rest):
        line = rest.count("\n", 0, m.start()) + 1
        problems.append(f"{name}:{line}: a use of Unauthorized this check cannot follow")
    return problems


# The one table of the authorizer's refusal reasons (service_auth::refusal::Reason): one
# row per reason, `Variant => "code", Path, forgery: bool;`. Every list of reason codes
# below is derived from it.
REFUSAL_TABLE = ROOT / "libs" / "service-auth" / "src" / "refusal.rs"


def refusal_reasons(text: str | None = None) -> dict[str, tuple[str, bool]]:
    """code -> (path: ApiKey, Token or Any; counted by the forged-token alarm) of every
    row of the reason table."""
    text = text if text is not None else REFUSAL_TABLE.read_text(encoding="utf-8")
    table = text[text.index("\nreasons! {"):]
    table = table[:table.index("\n}\n")]
    rows = re.findall(r'^\s*[A-Z]\w* => "([a-z_]+)", (ApiKey|Token|Any), forgery: (true|false);$', table, re.M)
    # every row was read: each is one `=>` line, none skipped for a format this misses
    assert len(rows) == table.count("=>") and rows, "a row of the reason table is not `V => \"code\", Path, forgery: b;`"
    out = {code: (path, forged == "true") for code, path, forged in rows}
    assert len(out) == len(rows), "a code is in the table twice"
    return out


def key_reasons() -> set[str]:
    """Every reason code the API-key path can refuse with."""
    return {c for c, (path, _) in refusal_reasons().items() if path in ("ApiKey", "Any")}


def token_reasons() -> set[str]:
    """Every reason code the token path (or the choice between credentials) can refuse
    with."""
    return {c for c, (path, _) in refusal_reasons().items() if path in ("Token", "Any")}


def forged_token_reasons() -> set[str]:
    """The reasons the forged-token alarm counts."""
    return {c for c, (_, forged) in refusal_reasons().items() if forged}


def test_the_reason_code_readers_find_the_codes_of_both_paths():
    keys, tokens = key_reasons(), token_reasons()
    assert {"missing_key", "unknown_key", "store_unavailable", "malformed_method_arn"} <= keys
    assert {"bad_signature", "expires_within_cache_ttl", "braked", "missing_token",
            "duplicate_authorization", "ambiguous_credentials", "missing_credentials",
            "token_verifier_unconfigured"} <= tokens
    assert "wrong_typ" in tokens and "wrong_typ" not in forged_token_reasons()
    # the reason types map onto the table: none of them writes a code of its own
    for path in (ROOT / "libs" / "service-auth" / "src" / "decision.rs",
                 ROOT / "libs" / "service-token" / "src" / "verify.rs",
                 AUTHORIZER_SRC / "token.rs", AUTHORIZER_SRC / "handler.rs"):
        text = path.read_text(encoding="utf-8")
        written = set(re.findall(r'(?:=>|\b(?:refuse|Refuse|Refusal::reason)\(|\breason:)\s*"([a-z_]+)"', text))
        assert not written & (keys | tokens), f"{path.name} writes reason codes: {sorted(written & (keys | tokens))}"
    # the contract lists every one of them
    contracts = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = contracts[contracts.index("### Reason codes"):contracts.index("## Authorizer response context")]
    assert keys | tokens <= set(re.findall(r"`([a-z_]+)`", section))


def _enclosing_fn(raw: str, pos: int) -> str:
    """The name of the last `fn` declared before `pos` (the function holding it)."""
    names = [m for m in re.finditer(r"\bfn\s+([a-z_][a-z0-9_]*)", raw) if m.start() < pos]
    assert names, pos
    return names[-1].group(1)


def _fn_body(raw: str, name: str) -> str:
    """The text of `fn name` up to the next top-level `fn`."""
    m = re.search(rf"\nfn\s+{name}\b", raw)
    assert m, name
    rest = raw[m.end():]
    nxt = re.search(r"\n(?:pub(?:\([a-z]+\))?\s+)?(?:async\s+)?fn\s", rest)
    return rest[: nxt.start()] if nxt else rest


def test_every_401_of_the_authorizer_counts_a_refusal(source):
    metrics, _ = source
    assert metrics["Refusals"] == {frozenset()}  # one metric, no dimension
    # the auditing functions count each 401 twice: by reason, and in the one sum
    raw = (AUTHORIZER_SRC / "handler.rs").read_text(encoding="utf-8")
    handler = _blank_strings_and_comments(raw)  # same positions, braces of strings blanked
    by_reason = [m.start() for m in re.finditer(r'counter!\(\s*"Unauthorized"', raw)]
    assert by_reason
    # Both auditing functions, audit (keys) and audit_token (tokens, credentials), count
    # their refusals themselves or through a function that holds a counting site.
    counting_fns = {_enclosing_fn(raw, pos) for pos in by_reason}
    for auditor in ("audit", "audit_token"):
        body = _fn_body(raw, auditor)
        assert auditor in counting_fns or any(re.search(rf"\b{f}\(", body) for f in counting_fns), auditor
    for path in AUTHORIZER_SRC.glob("*.rs"):  # nowhere else
        assert path.name == "handler.rs" or not re.search(r'counter!\(\s*"Unauthorized"', path.read_text(encoding="utf-8"))
    for pos in by_reason:
        block = raw[_enclosing_blocks(handler, pos)[0]:]
        block = block[:block.index("}")]
        assert re.search(r"counter!\(\s*(?:REFUSALS_METRIC|\"Refusals\")\s*\)\s*\.increment\(1\)", block), block
    problems = []
    for path in sorted(AUTHORIZER_SRC.glob("*.rs")):
        problems += unaudited_refusals(path.read_text(encoding="utf-8"), path.name)
    assert problems == []


def test_negative_control_an_unaudited_401_is_caught():
    ok = """fn run(v: V) -> Result<R, Unauthorized> {
        if v.bad() { audit(&v, &d); return Err(Unauthorized); }
        let refuse = |r: &str| { audit_token(&v, r); Err(Unauthorized) };
        audit(&v, &d);
        match d { Decision::Unauthorized { .. } => Err(Unauthorized), _ => Ok(r) }
    }"""
    assert unaudited_refusals(ok) == []
    no_audit = "fn run(v: V) -> Result<R, Unauthorized> {\n if v.bad() { return Err(Unauthorized); }\n Ok(r)\n}"
    assert len(unaudited_refusals(no_audit)) == 1
    sibling = ("fn run(v: V) -> Result<R, Unauthorized> {\n if a { audit(&v, &d); return Err(Unauthorized); }\n"
               " if b { return Err(Unauthorized); }\n Ok(r)\n}")
    assert [p.split(":")[1] for p in unaudited_refusals(sibling)] == ["3"]
    in_string = 'fn run() -> Result<R, Unauthorized> {\n tracing::info!("audit(x)"); Err(Unauthorized)\n}'
    assert len(unaudited_refusals(in_string)) == 1
    other_use = "fn run() -> Result<R, Unauthorized> {\n x.ok_or(Unauthorized)\n}"
    assert len(unaudited_refusals(other_use)) == 1


def _alarm_value(alarm: dict, values: dict[str, float]) -> float:
    """The alarm's metric-math result for the given value of each metric id."""
    (result,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    expr = result["Expression"]
    assert re.fullmatch(r"[A-Za-z0-9_(),\[\] +\-\n]+", expr), expr
    py = re.sub(r"FILL\((\w+), 0\)", lambda m: f"v.get({m.group(1)!r}, 0)", expr)
    assert re.fullmatch(r"[a-z0-9_(),.'\[\] +\-\n]+", py), py
    return eval(py.replace("\n", " "), {"__builtins__": {}}, {"v": values})  # noqa: S307 - checked above


def _authorizer_functions(platform: Resolver) -> dict[str, str]:
    """Instance -> function name of each nested authorizer."""
    return {lid: platform.nested(lid).ref("AuthorizerFunction") for lid in platform.nested_ids()}


def check_errors_alarm(platform: Resolver) -> None:
    """A refusal is a function error (the handler returns "Unauthorized"); the alarm must
    subtract every refusal of every instance, or each 401 would page someone."""
    alarm = platform.resources()["AuthorizerErrorsAlarm"]["Properties"]
    stats = {q["Id"]: q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q}
    errors = {qid: m["Dimensions"][0]["Value"] for qid, m in stats.items()
              if (m["Namespace"], m["MetricName"]) == ("AWS/Lambda", "Errors")}
    assert set(errors.values()) == set(_authorizer_functions(platform).values())
    ns = namespaces(platform)
    refusals = {qid: m["Namespace"] for qid, m in stats.items() if m["Namespace"] in ns.values()}
    assert {(stats[q]["MetricName"], stats[q].get("Dimensions")) for q in refusals} == {("Refusals", None)}
    assert set(refusals.values()) == set(ns.values())
    assert set(stats) == set(errors) | set(refusals)
    # Every error a refusal: silent. One error more than the refusals: it fires.
    for n in (0, 1, 7, 500):
        for instance_errors, instance_refusals in zip(sorted(errors), sorted(refusals)):
            values = {instance_errors: n, instance_refusals: n}
            assert _alarm_value(alarm, values) == 0
            assert _alarm_value(alarm, {**values, instance_errors: n + 1}) == 1  # a crash
        spread = {qid: n for qid in list(errors) + list(refusals)}
        assert _alarm_value(alarm, spread) == 0
    assert _alarm_value(alarm, {}) == 0  # no data: nothing failed
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "docs/operate.md#alarm-authorizer-errors" in alarm["AlarmDescription"]


def test_authorizer_errors_alarm_subtracts_every_refusal(source):
    metrics, _ = source
    assert metrics["Refusals"] == {frozenset()}  # one undimensioned metric per namespace
    check_errors_alarm(deploy().platform)


def test_negative_control_an_errors_alarm_that_ignores_refusals_is_caught():
    sam2 = copy.deepcopy(PLATFORM_SAM)
    props = sam2["Resources"]["AuthorizerErrorsAlarm"]["Properties"]
    (result,) = [q for q in props["Metrics"] if q.get("ReturnData")]
    result["Expression"] = "FILL(keyerrors, 0) + FILL(tokenerrors, 0) + FILL(eithererrors, 0)"
    with pytest.raises(AssertionError):
        check_errors_alarm(platform_alone(sam2))


def test_authorizer_throttles_alarm_watches_every_authorizer_function():
    r = deploy().platform
    alarm = r.resources()["AuthorizerThrottlesAlarm"]["Properties"]
    throttles = {q["Id"]: q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for q in alarm["Metrics"]
                 if "MetricStat" in q and q["MetricStat"]["Metric"]["MetricName"] == "Throttles"}
    assert set(throttles.values()) == set(_authorizer_functions(r).values())
    for qid in throttles:
        assert _alarm_value(alarm, {qid: 1}) == 1
    assert _alarm_value(alarm, {}) == 0


def test_token_refusal_widget_shows_every_token_and_credential_reason():
    """The token widget lists every reason only the token path (or the choice between
    credentials) produces, for both token-taking instances; the reasons both paths share
    (store_unavailable, malformed_method_arn) are in the all-reasons widget."""
    r = deploy().platform
    ns = namespaces(r)
    (dash,) = r.resources("AWS::CloudWatch::Dashboard").values()
    widgets = json.loads(dash["Properties"]["DashboardBody"])["widgets"]
    (widget,) = [w for w in widgets if w["properties"]["title"].startswith("Token and credential refusals")]
    searched = set()
    for (line,) in widget["properties"]["metrics"]:
        ((nsp, name, keys, fixed),) = _search_reads(line["expression"])
        assert (name, keys) == ("Unauthorized", frozenset({"Reason"}))
        assert fixed["Reason"] == token_reasons() - key_reasons()
        searched.add(nsp)
    assert searched == {ns["TokenAuthorizer"], ns["KeyOrTokenAuthorizer"]}
    assert {"duplicate_authorization", "empty_authorization", "unsupported_auth_scheme", "missing_token",
            "ambiguous_credentials", "missing_credentials", "expires_within_cache_ttl"} <= token_reasons()


def check_forged_tokens_alarm(platform: Resolver) -> None:
    """The forged-token alarm reads, in each token-taking instance, exactly the reasons
    the reason table marks as forgery signals, and any one of them counts."""
    ns = namespaces(platform)
    alarm = platform.resources()["ForgedTokensAlarm"]["Properties"]
    stats = {q["Id"]: q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q}
    read = {(m["Namespace"], m["MetricName"], m["Dimensions"][0]["Name"], m["Dimensions"][0]["Value"])
            for m in stats.values()}
    assert read == {(ns[i], "Unauthorized", "Reason", reason)
                    for i in ("TokenAuthorizer", "KeyOrTokenAuthorizer") for reason in forged_token_reasons()}
    for qid in stats:
        assert _alarm_value(alarm, {qid: 1}) == 1, qid
    assert _alarm_value(alarm, {}) == 0


def test_forged_tokens_alarm_counts_exactly_the_forgery_signals():
    check_forged_tokens_alarm(deploy().platform)


def test_negative_control_a_forgery_signal_missing_from_the_alarm_is_caught():
    sam2 = copy.deepcopy(PLATFORM_SAM)
    props = sam2["Resources"]["ForgedTokensAlarm"]["Properties"]
    props["Metrics"] = [q for q in props["Metrics"] if q.get("Id") != "t0"]
    (result,) = [q for q in props["Metrics"] if q.get("ReturnData")]
    result["Expression"] = result["Expression"].replace("FILL(t0, 0) + ", "")
    with pytest.raises(AssertionError):
        check_forged_tokens_alarm(platform_alone(sam2))


def test_negative_control_the_reason_table_reader_refuses_a_row_it_cannot_read():
    text = REFUSAL_TABLE.read_text(encoding="utf-8")
    assert refusal_reasons(text)["bad_signature"] == ("Token", True)
    broken = text.replace('BadSignature => "bad_signature", Token, forgery: true;',
                          'BadSignature => "bad_signature", Token, forgery: yes;')
    assert broken != text
    with pytest.raises(AssertionError):
        refusal_reasons(broken)


def test_every_search_query_fits_cloudwatchs_limit():
    """CloudWatch refuses a SEARCH whose query (schema and terms) is over 1024 characters."""
    d = deploy("both")
    for r in (d.platform, d.example):
        (dash,) = r.resources("AWS::CloudWatch::Dashboard").values()
        for w in json.loads(dash["Properties"]["DashboardBody"])["widgets"]:
            for line in w["properties"]["metrics"]:
                if isinstance(line[0], dict):
                    for query in re.findall(r"SEARCH\('([^']*)'", line[0]["expression"]):
                        assert len(query) <= 1024, w["properties"]["title"]


def test_guessed_keys_alarm_counts_unknown_and_malformed_keys_of_the_key_taking_instances():
    r = platform_alone(GuessedKeysAlarmThreshold=7)
    ns = namespaces(r)
    alarm = r.resources()["AuthorizerGuessedKeysAlarm"]["Properties"]
    stats = [q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q]
    assert {(m["Namespace"], m["Dimensions"][0]["Value"]) for m in stats} == {
        (ns[i], reason) for i in ("KeyAuthorizer", "KeyOrTokenAuthorizer") for reason in ("unknown_key", "malformed_key")}
    assert alarm["Threshold"] == "7"


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:us-east-1:123456789012:on-call"])
def test_alarms_notify_the_topic_when_one_is_given(topic):
    d = deploy("both", AlarmTopicArn=topic)
    for r in (d.platform, d.example):
        for lid, alarm in r.resources("AWS::CloudWatch::Alarm").items():
            p = alarm["Properties"]
            if topic:
                assert p["AlarmActions"] == [topic] and p["OKActions"] == [topic], lid
            else:
                assert "AlarmActions" not in p and "OKActions" not in p, lid


def test_every_alarm_says_what_it_means_and_links_its_runbook():
    docs = (ROOT / "docs" / "operate.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', docs))
    d = deploy("both")
    for r in (d.platform, d.example):
        for lid, alarm in r.resources("AWS::CloudWatch::Alarm").items():
            text = alarm["Properties"]["AlarmDescription"]
            assert len(text) <= 1024, lid
            assert "First:" in text, f"{lid}: say the first thing to do"
            (anchor,) = re.findall(r"docs/operate\.md#([a-z0-9-]+)", text)
            assert anchor in anchors, f"{lid}: runbook section #{anchor} is missing from docs/operate.md"


def _widgets_do_not_overlap(widgets: list[dict]) -> None:
    cells = set()
    for w in widgets:
        for x in range(w["x"], w["x"] + w["width"]):
            for y in range(w["y"], w["y"] + w["height"]):
                assert (x, y) not in cells, w["properties"]["title"]
                cells.add((x, y))
        assert w["x"] + w["width"] <= 24


def test_dashboards_show_what_the_issue_asks_for():
    d = deploy("both")
    reads = set()
    for r in (d.platform, d.example):
        (dash,) = r.resources("AWS::CloudWatch::Dashboard").values()
        widgets = json.loads(dash["Properties"]["DashboardBody"])["widgets"]
        _widgets_do_not_overlap(widgets)
        assert all(w["properties"]["region"] == "us-east-1" for w in widgets)
        reads |= {(ns.split("/")[-1] if ns.startswith("svcauth/") else ns, name)
                  for where, ns, name, _k, _v in metric_reads(r) if where.startswith("Dashboard")}
        stats = {o.get("stat") for w in widgets for line in w["properties"]["metrics"] for o in line
                 if isinstance(o, dict)}
        if r is d.platform:
            assert {"p50", "p99"} <= stats
    for instance in INSTANCES:
        assert {(instance, "Decisions"), (instance, "Unauthorized"), (instance, "Refusals")} <= reads, instance
    assert {("AWS/Lambda", "Duration"), ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"),
            ("AWS/ApiGateway", "4XXError"), ("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Latency")} <= reads

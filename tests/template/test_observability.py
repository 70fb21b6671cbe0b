"""The dashboard and the alarms read only metrics that exist.

The authorizer's own metrics are read from its Rust source (every `metrics::counter!`,
`gauge!` and `histogram!` call, with its label keys: EMF makes each label a dimension,
and CloudWatch matches a metric only on its exact dimension set). Every metric an alarm
or a dashboard widget reads in the authorizer's namespace must be one of those, with
exactly those dimensions and a dimension value the source can produce. Metrics in
AWS/Lambda and AWS/ApiGateway must be ones those services publish, on resources of
this stack. A negative control shows a misspelt metric is caught.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from templatelib import ROOT, Resolver, as_list, load_template, parameter_values, transform

# Where the authorizer's metrics can be emitted from: the binary and the libraries it links.
RUST_SOURCES = [ROOT / "authorizer" / "src", ROOT / "libs"]

# What the AWS services publish (AWS documentation), by namespace: metric -> dimension sets.
AWS_METRICS = {
    "AWS/Lambda": {name: {frozenset({"FunctionName"})} for name in (
        "Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions")},
    "AWS/ApiGateway": {name: {frozenset({"ApiName", "Stage"}), frozenset({"ApiName"})} for name in (
        "4XXError", "5XXError", "Latency", "IntegrationLatency", "Count")},
}

STACK_APIS = {"IdentityKeyApi", "TutorKeyApi", "IdentityIamApi", "TutorIamApi", "TokenApi"}


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


def authorizer_namespace(r: Resolver) -> str:
    """SVCAUTH_METRICS_NAMESPACE of the nested authorizer, read from the templates even
    where the application does not exist (AuthMode=iam: the dashboard still reads it)."""
    app = r.cfn["Resources"]["Authorizer"]["Properties"]
    child = load_template((r.base_dir / app["TemplateURL"]).resolve())
    env = child["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["SVCAUTH_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    passed = app.get("Parameters", {}).get("MetricsNamespace")
    return r.resolve(passed) if passed is not None else child["Parameters"]["MetricsNamespace"]["Default"]


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


def check_reads(r: Resolver, metrics: dict[str, set[frozenset]], literals: set[str]) -> list[str]:
    """Problems with what the alarms and widgets read; empty when all is well."""
    problems = []
    ns_ours = authorizer_namespace(r)
    functions = {r.ref(lid) for lid in r.resources("AWS::Lambda::Function")}
    for app in r.nested_ids():
        child = r.nested(app)
        functions |= {child.ref(lid) for lid in child.resources("AWS::Lambda::Function")}
    api_names = {r.resolve(api["Properties"]["Name"]) for lid, api in r.cfn["Resources"].items()
                 if lid in STACK_APIS}
    for where, ns, name, keys, values in metric_reads(r):
        if ns == ns_ours:
            if name not in metrics:
                problems.append(f"{where}: {ns}/{name} is not emitted by the authorizer")
            elif keys not in metrics[name]:
                problems.append(f"{where}: {ns}/{name} is emitted with dimensions "
                                f"{sorted(map(sorted, metrics[name]))}, not {sorted(keys)}")
            for k, vs in values.items():
                for v in vs:
                    if v not in literals:
                        problems.append(f"{where}: {name} {k}={v} is no value the source produces")
        elif ns in AWS_METRICS:
            if keys not in AWS_METRICS[ns].get(name, set()):
                problems.append(f"{where}: {ns} publishes no {name} with dimensions {sorted(keys)}")
            for v in values.get("FunctionName", set()):
                if v not in functions and v not in ("no-authorizer-in-iam-mode", "no-token-issuer-in-this-mode"):
                    problems.append(f"{where}: FunctionName {v} is not a function of this stack")
            for v in values.get("ApiName", set()):
                if v not in api_names:
                    problems.append(f"{where}: ApiName {v} is not an API of this stack")
        else:
            problems.append(f"{where}: unexpected namespace {ns}")
    return problems


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sam():
    return load_template()


@pytest.fixture(scope="module")
def source():
    return emitted_metrics()


def resolved(sam, **params) -> Resolver:
    return Resolver(transform(sam, **params), parameter_values(sam, **params))


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


@pytest.mark.parametrize("mode", ["api-key", "iam", "both", "token", "key-or-token"])
def test_every_metric_read_is_one_that_exists(sam, source, mode):
    r = resolved(sam, AuthMode=mode)
    reads = metric_reads(r)
    assert reads
    assert check_reads(r, *source) == []


def test_negative_control_a_misspelt_metric_or_dimension_is_caught(sam, source):
    for change in ({"MetricName": "Unauthorised"}, {"Dimensions": [{"Name": "Cause", "Value": "store_unavailable"}]},
                   {"Dimensions": [{"Name": "Reason", "Value": "store_unavailible"}]}):
        sam2 = copy.deepcopy(sam)
        sam2["Resources"]["AuthorizerStoreUnavailableAlarm"]["Properties"].update(change)
        problems = check_reads(resolved(sam2, AuthMode="api-key"), *source)
        assert any("AuthorizerStoreUnavailableAlarm" in p for p in problems), change
    sam2 = copy.deepcopy(sam)
    body = sam2["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    body[0] = body[0].replace('MetricName=\\"Decisions\\"', 'MetricName=\\"Decision\\"')
    assert any("Decision is not emitted" in p for p in check_reads(resolved(sam2, AuthMode="api-key"), *source))


def test_metrics_namespace_is_the_authorizers(sam):
    r = resolved(sam, AuthMode="api-key")
    ns = authorizer_namespace(r)
    config = (ROOT / "authorizer" / "src" / "config.rs").read_text(encoding="utf-8")
    fn = r.nested("Authorizer").resources()["AuthorizerFunction"]["Properties"]
    assert fn["Environment"]["Variables"]["SVCAUTH_METRICS_NAMESPACE"] == ns
    assert f'"{ns}"' in config  # the code's default is the one the template sets
    used = {read[1] for read in metric_reads(r)}
    assert used == {ns, "AWS/Lambda", "AWS/ApiGateway"}


def test_the_alarms_the_issue_asks_for(sam):
    r = resolved(sam, AuthMode="both")
    alarms = r.resources("AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "AuthorizerStoreUnavailableAlarm", "AuthorizerRejectedParameterAlarm",
        "AuthorizerGuessedKeysAlarm", "AuthorizerErrorsAlarm",
        "AuthorizerThrottlesAlarm", "IdentityKeyApi5xxAlarm", "TutorKeyApi5xxAlarm",
        "IdentityIamApi5xxAlarm", "TutorIamApi5xxAlarm"}
    store = alarms["AuthorizerStoreUnavailableAlarm"]["Properties"]
    assert (store["MetricName"], store["Dimensions"]) == ("Unauthorized", [{"Name": "Reason", "Value": "store_unavailable"}])
    assert store["Threshold"] == 1 and store["Period"] == 60
    # Issue 9 item 5: one unusable parameter refuses only its service, and pages.
    rejected = alarms["AuthorizerRejectedParameterAlarm"]["Properties"]
    assert (rejected["MetricName"], rejected.get("Dimensions")) == ("KeyStoreRejectedParameters", None)
    assert rejected["Threshold"] == 1 and rejected["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    iam_only = resolved(sam, AuthMode="iam").resources("AWS::CloudWatch::Alarm")
    assert set(iam_only) == {"IdentityIamApi5xxAlarm", "TutorIamApi5xxAlarm"}


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


def _codes_of(path: Path, signature: str) -> set[str]:
    """The string literals a `match` in the function starting with `signature` returns."""
    text = path.read_text(encoding="utf-8")
    body = text[text.index(signature):]
    body = body[:body.index("\n    }\n")]
    return set(re.findall(r'=>\s*"([a-z_]+)"', body))


def key_reasons() -> set[str]:
    """Every reason code of the API-key path (service_auth's UnauthorizedReason)."""
    return _codes_of(ROOT / "libs" / "service-auth" / "src" / "decision.rs", "pub fn code(&self)")


def token_reasons() -> set[str]:
    """Every reason code the authorizer's token path can refuse with: the verifier's
    rejections, the Authorization header's, and the literals the handler and the token
    module refuse with directly."""
    codes = _codes_of(ROOT / "libs" / "service-token" / "src" / "verify.rs", "pub fn code(&self)")
    codes |= _codes_of(AUTHORIZER_SRC / "token.rs", "pub fn code(self)")
    for path in AUTHORIZER_SRC.glob("*.rs"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'\b(?:Refuse|refuse|Refusal::reason)\(\s*"([a-z_]+)"', text))
    return codes


def test_the_reason_code_readers_find_the_codes_of_both_paths():
    keys, tokens = key_reasons(), token_reasons()
    assert {"missing_key", "unknown_key", "store_unavailable", "malformed_method_arn"} <= keys
    assert {"bad_signature", "expires_within_cache_ttl", "braked", "missing_token",
            "duplicate_authorization", "ambiguous_credentials", "missing_credentials",
            "token_verifier_unconfigured"} <= tokens
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


def _authorizer_functions(r: Resolver) -> set[str]:
    """Function names of every nested instance of the authorizer application."""
    app = (ROOT / "authorizer" / "template.yaml").resolve()
    return {r.nested(lid).ref("AuthorizerFunction") for lid in r.nested_ids()
            if (r.base_dir / r.cfn["Resources"][lid]["Properties"]["TemplateURL"]).resolve() == app}


def _alarm_value(alarm: dict, values: dict[str, float]) -> float:
    """The alarm's metric-math result for the given value of each metric id."""
    (result,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    expr = result["Expression"]
    assert re.fullmatch(r"[A-Za-z0-9_(),\[\] +\-]+", expr), expr
    py = re.sub(r"FILL\((\w+), 0\)", lambda m: f"v.get({m.group(1)!r}, 0)", expr).replace("MAX(", "max(")
    assert re.fullmatch(r"[a-z0-9_(),.'\[\] +\-]+", py), py
    return eval(py, {"__builtins__": {}, "max": max}, {"v": values})  # noqa: S307 - checked above


@pytest.mark.parametrize("mode", ["api-key", "both", "token", "key-or-token"])
def test_authorizer_errors_alarm_subtracts_every_refusal(sam, source, mode):
    """A refusal is a function error (the handler returns "Unauthorized"); the alarm must
    subtract every refusal, key or token, or each 401 would page someone. The authorizer
    counts every 401 in `Refusals` (test above); the alarm adds the errors of every
    authorizer function of the stack (both emit into one namespace) and subtracts it."""
    r = resolved(sam, AuthMode=mode)
    alarm = r.resources()["AuthorizerErrorsAlarm"]["Properties"]
    stats = {q["Id"]: q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q}
    errors = {qid: m["Dimensions"][0]["Value"] for qid, m in stats.items()
              if (m["Namespace"], m["MetricName"]) == ("AWS/Lambda", "Errors")}
    assert set(errors.values()) == _authorizer_functions(r)
    assert len(_authorizer_functions(r)) == (2 if mode in ("token", "key-or-token") else 1)
    ours = {qid: m for qid, m in stats.items() if m["Namespace"] == authorizer_namespace(r)}
    assert [(m["MetricName"], m.get("Dimensions")) for m in ours.values()] == [("Refusals", None)]
    (refusals,) = ours
    assert set(stats) == set(errors) | {refusals}
    # Every error a refusal: silent. One error more than the refusals: it fires.
    for n in (0, 1, 7, 500):
        split = {qid: n // len(errors) + (n % len(errors) if i == 0 else 0) for i, qid in enumerate(errors)}
        assert _alarm_value(alarm, {**split, refusals: n}) == 0
        if n:  # one of those errors was no refusal
            assert _alarm_value(alarm, {**split, refusals: n - 1}) == 1
        for qid in errors:  # a crash of either function
            assert _alarm_value(alarm, {**split, qid: split[qid] + 1, refusals: n}) == 1
    assert _alarm_value(alarm, {}) == 0  # no data: nothing failed
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "docs/deploy.md#alarm-authorizer-errors" in alarm["AlarmDescription"]


def test_negative_control_an_errors_alarm_that_ignores_refusals_is_caught(sam, source):
    sam2 = copy.deepcopy(sam)
    props = sam2["Resources"]["AuthorizerErrorsAlarm"]["Properties"]
    (result,) = [q for q in props["Metrics"] if q.get("ReturnData")]
    result["Expression"] = "MAX([0, FILL(errors, 0)])"
    with pytest.raises(AssertionError):
        test_authorizer_errors_alarm_subtracts_every_refusal(sam2, source, "api-key")


def test_authorizer_throttles_alarm_watches_every_authorizer_function(sam):
    for mode in ("api-key", "both", "token", "key-or-token"):
        r = resolved(sam, AuthMode=mode)
        alarm = r.resources()["AuthorizerThrottlesAlarm"]["Properties"]
        throttles = {q["Id"]: q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for q in alarm["Metrics"]
                     if "MetricStat" in q and q["MetricStat"]["Metric"]["MetricName"] == "Throttles"}
        assert set(throttles.values()) == _authorizer_functions(r), mode
        for qid in throttles:
            assert _alarm_value(alarm, {qid: 1}) == 1
        assert _alarm_value(alarm, {}) == 0


def test_token_refusal_widget_shows_every_token_and_credential_reason(sam):
    """The token widget lists every reason only the token path (or the choice between
    credentials) produces; the reasons both paths share (store_unavailable,
    malformed_method_arn) are in the all-reasons widget."""
    r = resolved(sam, AuthMode="token")
    (dash,) = r.resources("AWS::CloudWatch::Dashboard").values()
    widgets = json.loads(dash["Properties"]["DashboardBody"])["widgets"]
    (widget,) = [w for w in widgets if w["properties"]["title"].startswith("Token and credential refusals")]
    ((line,),) = widget["properties"]["metrics"]
    ((ns, name, keys, fixed),) = _search_reads(line["expression"])
    assert (name, keys) == ("Unauthorized", frozenset({"Reason"}))
    assert fixed["Reason"] == token_reasons() - key_reasons()
    assert {"duplicate_authorization", "empty_authorization", "unsupported_auth_scheme", "missing_token",
            "ambiguous_credentials", "missing_credentials", "expires_within_cache_ttl"} <= fixed["Reason"]


def test_every_search_query_fits_cloudwatchs_limit(sam):
    """CloudWatch refuses a SEARCH whose query (schema and terms) is over 1024 characters."""
    r = resolved(sam, AuthMode="key-or-token")
    (dash,) = r.resources("AWS::CloudWatch::Dashboard").values()
    for w in json.loads(dash["Properties"]["DashboardBody"])["widgets"]:
        for line in w["properties"]["metrics"]:
            if isinstance(line[0], dict):
                for query in re.findall(r"SEARCH\('([^']*)'", line[0]["expression"]):
                    assert len(query) <= 1024, w["properties"]["title"]


def test_guessed_keys_alarm_counts_unknown_and_malformed_keys(sam):
    r = resolved(sam, AuthMode="api-key", GuessedKeysAlarmThreshold=7)
    alarm = r.resources()["AuthorizerGuessedKeysAlarm"]["Properties"]
    reasons = {q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for q in alarm["Metrics"] if "MetricStat" in q}
    assert reasons == {"unknown_key", "malformed_key"}
    assert alarm["Threshold"] == "7"


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:us-east-1:123456789012:on-call"])
def test_alarms_notify_the_topic_when_one_is_given(sam, topic):
    r = resolved(sam, AuthMode="both", AlarmTopicArn=topic)
    for lid, alarm in r.resources("AWS::CloudWatch::Alarm").items():
        p = alarm["Properties"]
        if topic:
            assert p["AlarmActions"] == [topic] and p["OKActions"] == [topic], lid
        else:
            assert "AlarmActions" not in p and "OKActions" not in p, lid


def test_every_alarm_says_what_it_means_and_links_its_runbook(sam):
    docs = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', docs))
    r = resolved(sam, AuthMode="both")
    for lid, alarm in r.resources("AWS::CloudWatch::Alarm").items():
        text = alarm["Properties"]["AlarmDescription"]
        assert len(text) <= 1024, lid
        assert "First:" in text, f"{lid}: say the first thing to do"
        (anchor,) = re.findall(r"docs/deploy\.md#([a-z0-9-]+)", text)
        assert anchor in anchors, f"{lid}: runbook section #{anchor} is missing from docs/deploy.md"


def test_dashboard_shows_what_the_issue_asks_for(sam):
    r = resolved(sam, AuthMode="api-key")
    (dash,) = r.resources("AWS::CloudWatch::Dashboard").values()
    widgets = json.loads(dash["Properties"]["DashboardBody"])["widgets"]
    reads = {(ns, name) for where, ns, name, _keys, _values in metric_reads(r) if where.startswith("Dashboard")}
    assert {("ServiceAuth", "Decisions"), ("ServiceAuth", "Unauthorized"), ("AWS/Lambda", "Duration"),
            ("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"), ("AWS/ApiGateway", "4XXError"),
            ("AWS/ApiGateway", "5XXError"), ("AWS/ApiGateway", "Latency")} <= reads
    stats = {o.get("stat") for w in widgets for line in w["properties"]["metrics"] for o in line
             if isinstance(o, dict)}
    assert {"p50", "p99"} <= stats
    assert all(w["properties"]["region"] == "us-east-1" for w in widgets)
    # widgets do not overlap on the 24-column grid
    cells = set()
    for w in widgets:
        for x in range(w["x"], w["x"] + w["width"]):
            for y in range(w["y"], w["y"] + w["height"]):
                assert (x, y) not in cells, w["properties"]["title"]
                cells.add((x, y))
        assert w["x"] + w["width"] <= 24

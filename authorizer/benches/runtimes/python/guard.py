"""The authorizer's API-key guard in Python, for the cross-runtime benchmark only
(authorizer/benches/runtimes/harness.py). It is not part of the product.

The same steps as the Rust authorizer, so the comparison measures the runtime and not a
shortcut: the key store (a JSON array of service documents, SVCAUTH_KEYS_FILE) is read
and checked once during init into a map from SHA-256 to record; each invocation reads
`x-service-api-key` from `headers` and `multiValueHeaders` in any case (two different
values are refused), checks the key format and its CRC-32 checksum before any lookup,
hashes the key with SHA-256, looks the hash up, checks status and expiry, parses the
`methodArn`, and answers the IAM policy for the service's routes with the identity
context, or raises `Unauthorized` (API Gateway's 401). One JSON audit line and one EMF
metrics line go to stdout per invocation, as the Rust authorizer writes them. Left out:
the Rust authorizer's typed parse of the whole event (a malformed event, a non-string
key header or one repeated more than 8 times is `malformed_event` there) and the
legacy-parameter source.

Runs under the AWS Lambda runtime interface client: `python -m awslambdaric guard.handler`.
"""

import hashlib
import json
import os
import re
import sys
import time
import zlib
from datetime import datetime

API_KEY_HEADER = "x-service-api-key"
CORRELATION_HEADER = "x-correlation-id"
PREFIX = "svcauth_"
BODY_LEN = 43
CHECKSUM_LEN = 6
LEGACY_LEN = 64
MAX_KEY_LEN = 128
MAX_KEYS_PER_SERVICE = 32
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

KEY_CHARS = re.compile(r"[A-Za-z0-9_]+")
ENV_TAG = re.compile(r"[a-z0-9]{1,12}")
ALNUM = re.compile(r"[A-Za-z0-9]+")
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
KEY_ID = re.compile(r"kid_[0-9a-f]{16}")
PATTERN_PATH = re.compile(r"/[A-Za-z0-9/\-._~*{}%+@:=,]{0,511}")
PARAM = re.compile(r"\{[^}]*\}")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"}
PARTITIONS = {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"}
REGION = re.compile(r"[a-z0-9-]{1,32}")
ACCOUNT = re.compile(r"[0-9]{12}")
API_ID = re.compile(r"[A-Za-z0-9]{1,32}")
STAGE = re.compile(r"[A-Za-z0-9_-]{1,128}")
VERBS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"}
CORRELATION = re.compile(r"[A-Za-z0-9\-_.:]{1,128}")


class Unauthorized(Exception):
    """The only error: API Gateway answers 401 when the message is `Unauthorized`."""

    def __init__(self):
        super().__init__("Unauthorized")


def resource_suffix(pattern):
    """`GET /internal/users/{id}` -> `GET/internal/users/*`, or None if invalid."""
    method, _, path = pattern.strip().partition(" ")
    method, path = method.upper(), path.strip()
    if method not in METHODS or not PATTERN_PATH.fullmatch(path):
        return None
    return method + PARAM.sub("*", path)


def rfc3339_to_unix(value):
    return None if value is None else datetime.fromisoformat(value).timestamp()


def load_store(path):
    """Every document checked, or the whole load fails (as in the Rust authorizer)."""
    with open(path, encoding="utf-8") as f:
        docs = json.load(f)
    by_hash = {}
    for doc in docs:
        service = doc["service"]
        if doc.get("schema") != 1 or not SERVICE_NAME.fullmatch(service):
            raise ValueError("a service document has a bad schema or service name")
        suffixes = [resource_suffix(p) for p in doc["permissions"]]
        if None in suffixes or len(doc["keys"]) > MAX_KEYS_PER_SERVICE:
            raise ValueError(f"service {service}: bad permission or too many keys")
        grant = {"service": service, "suffixes": suffixes, "usagePlanKey": doc.get("usagePlanKey")}
        for k in doc["keys"]:
            if not SHA256_HEX.fullmatch(k["sha256"]) or not KEY_ID.fullmatch(k["keyId"]):
                raise ValueError(f"service {service}: a key record is malformed")
            if k["status"] not in ("active", "revoked"):
                raise ValueError(f"service {service}: unknown key status")
            by_hash[bytes.fromhex(k["sha256"])] = (
                grant, k["keyId"], k["status"], rfc3339_to_unix(k.get("expires")), k.get("expires"))
    return by_hash


def checksum(data):
    n = zlib.crc32(data)
    out = []
    for _ in range(CHECKSUM_LEN):
        out.append(BASE62[n % 62])
        n //= 62
    return "".join(reversed(out))


def well_formed(key):
    if not key or len(key) > MAX_KEY_LEN or not KEY_CHARS.fullmatch(key):
        return False
    if key.startswith(PREFIX):
        rest = key[len(PREFIX):]
        env, sep, tail = rest.partition("_")
        if not sep:
            tail = rest
        elif not ENV_TAG.fullmatch(env):
            return False
        if len(tail) != BODY_LEN + CHECKSUM_LEN or "_" in tail:
            return False
        split = len(key) - CHECKSUM_LEN
        return checksum(key[:split].encode()) == key[split:]
    return len(key) == LEGACY_LEN and bool(ALNUM.fullmatch(key))


def header_values(event, name):
    values = []
    for k, v in (event.get("headers") or {}).items():
        if k.lower() == name and isinstance(v, str):
            values.append(v)
    for k, vs in (event.get("multiValueHeaders") or {}).items():
        if k.lower() == name:
            values.extend(v for v in vs or [] if isinstance(v, str))
    return values


def stage_prefix(method_arn):
    """`arn:...:{apiId}/{stage}/` of a valid method ARN, else None."""
    if not method_arn or len(method_arn) > 1600:
        return None
    parts = method_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "execute-api":
        return None
    _, partition, _, region, account, resource = parts
    segs = resource.split("/", 3)
    if (partition not in PARTITIONS or not REGION.fullmatch(region) or not ACCOUNT.fullmatch(account)
            or len(segs) != 4 or not API_ID.fullmatch(segs[0]) or not STAGE.fullmatch(segs[1])
            or segs[2] not in VERBS or any(c in segs[3] for c in "*?")
            or any(ord(c) < 32 or ord(c) == 127 for c in segs[3])):
        return None
    return f"arn:{partition}:execute-api:{region}:{account}:{segs[0]}/{segs[1]}/"


def decide(event):
    """(outcome, reason, grant, key_id, response)."""
    presented = {v.strip(" \t") for v in header_values(event, API_KEY_HEADER)} - {""}
    if not presented:
        return "unauthorized", "missing_key", None, None, None
    if len(presented) > 1:
        return "unauthorized", "duplicate_key", None, None, None
    key = presented.pop()
    if not well_formed(key):
        return "unauthorized", "malformed_key", None, None, None
    prefix = stage_prefix(event.get("methodArn"))
    if prefix is None:
        return "unauthorized", "malformed_method_arn", None, None, None
    entry = STORE.get(hashlib.sha256(key.encode()).digest())
    if entry is None:
        return "unauthorized", "unknown_key", None, None, None
    grant, key_id, status, expires, expires_text = entry
    if status == "revoked":
        return "unauthorized", "revoked_key", grant, key_id, None
    if expires is not None and time.time() >= expires:
        return "unauthorized", "expired_key", grant, key_id, None
    resources = [prefix + s for s in grant["suffixes"]]
    statement = ({"Action": ["execute-api:Invoke"], "Effect": "Allow", "Resource": resources}
                 if resources else
                 {"Action": ["execute-api:Invoke"], "Effect": "Deny", "Resource": [prefix + "*"]})
    context = {"serviceId": grant["service"], "authenticatedBy": "api-key", "keyId": key_id}
    if expires_text:
        context["keyExpiresAt"] = expires_text
    response = {
        "principalId": grant["service"],
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": context,
    }
    if grant["usagePlanKey"]:
        response["usageIdentifierKey"] = grant["usagePlanKey"]
    route = event["methodArn"].split("/", 2)[2]
    if any(wildcard_match(s, route) for s in grant["suffixes"]):
        return "allow", "permitted", grant, key_id, response
    return "deny", "route_not_permitted", grant, key_id, response


def wildcard_match(pattern, text):
    """IAM's `*`/`?` match of a route `VERB/path` (for the audit line only; the same
    backtracking loop as the Rust authorizer's)."""
    p = t = mark = 0
    star = None
    while t < len(text):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            p += 1
            t += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif star is not None:
            p = star + 1
            mark += 1
            t = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def handler(event, context):
    outcome, reason, grant, key_id, response = decide(event)
    ctx = event.get("requestContext") or {}
    correlation = next(iter(header_values(event, CORRELATION_HEADER)), None)
    if not correlation or not CORRELATION.fullmatch(correlation):
        correlation = ctx.get("requestId") or "none"
    service = grant["service"] if grant else ""
    sys.stdout.write(json.dumps({
        "level": "INFO", "fields": {
            "message": "authorizer decision", "event": "authorizer_decision",
            "decision": outcome, "reason": reason, "service_id": service,
            "key_id": key_id or "", "legacy_key": False,
            "http_method": event.get("httpMethod") or "", "resource_path": event.get("resource") or "",
            "source_ip": (ctx.get("identity") or {}).get("sourceIp") or "",
            "request_id": ctx.get("requestId") or "", "correlation_id": correlation}}) + "\n")
    sys.stdout.write(json.dumps({
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": "ServiceAuth", "Dimensions": [["Outcome", "Service"]],
            "Metrics": [{"Name": "Decisions"}]}]},
        "Outcome": outcome, "Service": service or "unknown", "Decisions": 1}) + "\n")
    if response is None:
        raise Unauthorized()
    return response


STORE = load_store(os.environ["SVCAUTH_KEYS_FILE"])

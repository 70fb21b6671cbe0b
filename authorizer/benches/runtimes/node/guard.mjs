// The authorizer's API-key guard in Node.js, for the cross-runtime benchmark only
// (authorizer/benches/runtimes/harness.py). It is not part of the product.
//
// The same steps as the Rust authorizer, so the comparison measures the runtime and not
// a shortcut: the key store (a JSON array of service documents, SVCAUTH_KEYS_FILE) is
// read and checked once during init into a map from SHA-256 to record; each invocation
// reads `x-service-api-key` from `headers` and `multiValueHeaders` in any case (two
// different values are refused), checks the key format and its CRC-32 checksum before
// any lookup, hashes the key with SHA-256, looks the hash up, checks status and expiry,
// parses the `methodArn`, and answers the IAM policy for the service's routes with the
// identity context, or throws `Unauthorized` (API Gateway's 401). One JSON audit line
// and one EMF metrics line go to stdout per invocation, as the Rust authorizer writes
// them. Left out: the Rust authorizer's typed parse of the whole event (a malformed
// event, a non-string key header or one repeated more than 8 times is `malformed_event`
// there) and the legacy-parameter source.
//
// Runs under the AWS Lambda runtime interface client (`aws-lambda-ric guard.handler`).

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { crc32 } from "node:zlib";

const API_KEY_HEADER = "x-service-api-key";
const CORRELATION_HEADER = "x-correlation-id";
const PREFIX = "svcauth_";
const BODY_LEN = 43;
const CHECKSUM_LEN = 6;
const LEGACY_LEN = 64;
const MAX_KEY_LEN = 128;
const MAX_KEYS_PER_SERVICE = 32;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const KEY_CHARS = /^[A-Za-z0-9_]+$/;
const ENV_TAG = /^[a-z0-9]{1,12}$/;
const ALNUM = /^[A-Za-z0-9]+$/;
const SERVICE_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const KEY_ID = /^kid_[0-9a-f]{16}$/;
const PATTERN_PATH = /^\/[A-Za-z0-9/\-._~*{}%+@:=,]{0,511}$/;
const PARAM = /\{[^}]*\}/g;
const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"]);
const PARTITIONS = new Set(["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"]);
const REGION = /^[a-z0-9-]{1,32}$/;
const ACCOUNT = /^[0-9]{12}$/;
const API_ID = /^[A-Za-z0-9]{1,32}$/;
const STAGE = /^[A-Za-z0-9_-]{1,128}$/;
const CORRELATION = /^[A-Za-z0-9\-_.:]{1,128}$/;
// eslint-disable-next-line no-control-regex
const BAD_PATH = /[\x00-\x1f\x7f*?]/;

/** The only error: API Gateway answers 401 when the message is `Unauthorized`. */
class Unauthorized extends Error {
  constructor() {
    super("Unauthorized");
    this.name = "Unauthorized";
  }
}

/** `GET /internal/users/{id}` -> `GET/internal/users/*`, or null if invalid. */
function resourceSuffix(pattern) {
  const trimmed = pattern.trim();
  const space = trimmed.indexOf(" ");
  if (space < 0) return null;
  const method = trimmed.slice(0, space).toUpperCase();
  const path = trimmed.slice(space + 1).trim();
  if (!METHODS.has(method) || !PATTERN_PATH.test(path)) return null;
  return method + path.replace(PARAM, "*");
}

/** IAM's `*`/`?` match of a route `VERB/path` (for the audit line only; the same
 * backtracking loop as the Rust authorizer's). */
function wildcardMatch(pattern, text) {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p;
      mark = t;
      p++;
    } else if (star >= 0) {
      p = star + 1;
      mark++;
      t = mark;
    } else {
      return false;
    }
  }
  for (; p < pattern.length; p++) if (pattern[p] !== "*") return false;
  return true;
}

/** Every document checked, or the whole load fails (as in the Rust authorizer). */
function loadStore(path) {
  const docs = JSON.parse(readFileSync(path, "utf8"));
  const byHash = new Map();
  for (const doc of docs) {
    const service = doc.service;
    if (doc.schema !== 1 || typeof service !== "string" || !SERVICE_NAME.test(service)) {
      throw new Error("a service document has a bad schema or service name");
    }
    const suffixes = doc.permissions.map(resourceSuffix);
    if (suffixes.includes(null) || doc.keys.length > MAX_KEYS_PER_SERVICE) {
      throw new Error(`service ${service}: bad permission or too many keys`);
    }
    const grant = { service, suffixes, usagePlanKey: doc.usagePlanKey };
    for (const k of doc.keys) {
      if (!SHA256_HEX.test(k.sha256) || !KEY_ID.test(k.keyId)) {
        throw new Error(`service ${service}: a key record is malformed`);
      }
      if (k.status !== "active" && k.status !== "revoked") {
        throw new Error(`service ${service}: unknown key status`);
      }
      const expires = k.expires == null ? null : Date.parse(k.expires);
      byHash.set(k.sha256.toLowerCase(), { grant, keyId: k.keyId, status: k.status, expires, expiresText: k.expires });
    }
  }
  return byHash;
}

function checksum(text) {
  let n = crc32(text);
  let out = "";
  for (let i = 0; i < CHECKSUM_LEN; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

function wellFormed(key) {
  if (!key || key.length > MAX_KEY_LEN || !KEY_CHARS.test(key)) return false;
  if (key.startsWith(PREFIX)) {
    const rest = key.slice(PREFIX.length);
    const sep = rest.indexOf("_");
    let tail = rest;
    if (sep >= 0) {
      if (!ENV_TAG.test(rest.slice(0, sep))) return false;
      tail = rest.slice(sep + 1);
    }
    if (tail.length !== BODY_LEN + CHECKSUM_LEN || tail.includes("_")) return false;
    const split = key.length - CHECKSUM_LEN;
    return checksum(key.slice(0, split)) === key.slice(split);
  }
  return key.length === LEGACY_LEN && ALNUM.test(key);
}

function headerValues(event, name) {
  const values = [];
  for (const [k, v] of Object.entries(event.headers ?? {})) {
    if (k.toLowerCase() === name && typeof v === "string") values.push(v);
  }
  for (const [k, vs] of Object.entries(event.multiValueHeaders ?? {})) {
    if (k.toLowerCase() === name) for (const v of vs ?? []) if (typeof v === "string") values.push(v);
  }
  return values;
}

/** `arn:...:{apiId}/{stage}/` of a valid method ARN, else null. */
function stagePrefix(methodArn) {
  if (typeof methodArn !== "string" || !methodArn || methodArn.length > 1600) return null;
  const parts = methodArn.split(":");
  if (parts.length < 6 || parts[0] !== "arn" || parts[2] !== "execute-api") return null;
  const [, partition, , region, account] = parts;
  const resource = parts.slice(5).join(":");
  const slash = [];
  for (let i = resource.indexOf("/"); i >= 0 && slash.length < 3; i = resource.indexOf("/", i + 1)) slash.push(i);
  if (slash.length < 3) return null;
  const apiId = resource.slice(0, slash[0]);
  const stage = resource.slice(slash[0] + 1, slash[1]);
  const verb = resource.slice(slash[1] + 1, slash[2]);
  const path = resource.slice(slash[2] + 1);
  if (!PARTITIONS.has(partition) || !REGION.test(region) || !ACCOUNT.test(account) || !API_ID.test(apiId)
      || !STAGE.test(stage) || !METHODS.has(verb) || BAD_PATH.test(path)) {
    return null;
  }
  return `arn:${partition}:execute-api:${region}:${account}:${apiId}/${stage}/`;
}

function decide(event) {
  const presented = new Set(headerValues(event, API_KEY_HEADER).map((v) => v.replace(/^[ \t]+|[ \t]+$/g, "")));
  presented.delete("");
  if (presented.size === 0) return { outcome: "unauthorized", reason: "missing_key" };
  if (presented.size > 1) return { outcome: "unauthorized", reason: "duplicate_key" };
  const [key] = presented;
  if (!wellFormed(key)) return { outcome: "unauthorized", reason: "malformed_key" };
  const prefix = stagePrefix(event.methodArn);
  if (prefix === null) return { outcome: "unauthorized", reason: "malformed_method_arn" };
  const entry = STORE.get(createHash("sha256").update(key).digest("hex"));
  if (entry === undefined) return { outcome: "unauthorized", reason: "unknown_key" };
  const { grant, keyId } = entry;
  if (entry.status === "revoked") return { outcome: "unauthorized", reason: "revoked_key", grant, keyId };
  if (entry.expires !== null && Date.now() >= entry.expires) {
    return { outcome: "unauthorized", reason: "expired_key", grant, keyId };
  }
  const resources = grant.suffixes.map((s) => prefix + s);
  const statement = resources.length
    ? { Action: ["execute-api:Invoke"], Effect: "Allow", Resource: resources }
    : { Action: ["execute-api:Invoke"], Effect: "Deny", Resource: [prefix + "*"] };
  const context = { serviceId: grant.service, authenticatedBy: "api-key", keyId };
  if (entry.expiresText) context.keyExpiresAt = entry.expiresText;
  const response = {
    principalId: grant.service,
    policyDocument: { Version: "2012-10-17", Statement: [statement] },
    context,
  };
  if (grant.usagePlanKey) response.usageIdentifierKey = grant.usagePlanKey;
  const route = event.methodArn.split("/").slice(2).join("/");
  const permitted = grant.suffixes.some((s) => wildcardMatch(s, route));
  return permitted
    ? { outcome: "allow", reason: "permitted", grant, keyId, response }
    : { outcome: "deny", reason: "route_not_permitted", grant, keyId, response };
}

export const handler = async (event) => {
  const { outcome, reason, grant, keyId, response } = decide(event);
  const ctx = event.requestContext ?? {};
  let correlation = headerValues(event, CORRELATION_HEADER)[0];
  if (!correlation || !CORRELATION.test(correlation)) correlation = ctx.requestId || "none";
  const service = grant ? grant.service : "";
  process.stdout.write(JSON.stringify({
    level: "INFO",
    fields: {
      message: "authorizer decision", event: "authorizer_decision", decision: outcome, reason,
      service_id: service, key_id: keyId ?? "", legacy_key: false,
      http_method: event.httpMethod ?? "", resource_path: event.resource ?? "",
      source_ip: ctx.identity?.sourceIp ?? "", request_id: ctx.requestId ?? "", correlation_id: correlation,
    },
  }) + "\n");
  process.stdout.write(JSON.stringify({
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [{ Namespace: "ServiceAuth", Dimensions: [["Outcome", "Service"]], Metrics: [{ Name: "Decisions" }] }],
    },
    Outcome: outcome, Service: service || "unknown", Decisions: 1,
  }) + "\n");
  if (response === undefined) throw new Unauthorized();
  return response;
};

const STORE = loadStore(process.env.SVCAUTH_KEYS_FILE);

#!/usr/bin/env python3
"""Start-up time and memory of the authorizer binary, measured against a local
Lambda Runtime API (stdlib only, served on 127.0.0.1; `--token` also needs `cryptography`).

  start-up: from process spawn to its first `GET /runtime/invocation/next`, i.e. the
            end of init (config, key store load, runtime ready) with the development
            store read as a file (dev/dev-store.json); median and p90 over --runs cold
            starts.
  memory:   peak resident set (VmHWM) of one process after --invocations warm
            invocations (allowed and refused decisions alternating).
  warm:     with --floor FLOOR: the time of one warm invocation, from the moment the
            event is handed out (`/invocation/next` answered) to the moment its
            response arrives, for BINARY and for FLOOR (a do-nothing Lambda on the
            same runtime crate, `cargo build --release -p authorizer --example floor`)
            in one run, interleaved round by round; reported as medians and as
            BINARY minus FLOOR, per event kind (allowed key, unknown key). The harness
            (Python, HTTP) costs the same for both, so the difference is what the
            function itself adds. --baseline OLD adds an older build of the
            authorizer to the same run (before/after figures).

usage: authorizer/benches/startup.py BINARY [--runs 30] [--invocations 1000]
                                         [--env NAME=VALUE ...]
                                         [--api-key-file FILE]
                                         [--token [--token-key PEM] [--token-proof-key KID]
                                          [--token-fresh N --verify-floor VERIFY_FLOOR]]
                                         [--floor FLOOR [--baseline OLD]
                                          [--warm-rounds 5] [--warm-invocations 2000]]
`--env` adds to or overrides the function's environment, e.g. to time an SSM load
against moto_server: --env SVCAUTH_KEY_SOURCE=ssm --env AWS_ENDPOINT_URL=http://...
--token times a token-only authorizer instead: it signs a token (ES256, with an
ephemeral P-256 key, or the PKCS#8 PEM of --token-key; needs Python `cryptography`,
in the tools virtualenv) with the claims of events/authorizer-token-bearer.json, valid
for 50 minutes from now, sets SVCAUTH_ACCEPT=token, SVCAUTH_TOKEN_ISSUER=svcauth:dev,
SVCAUTH_API_NAMES (the events' API id = identity) and SVCAUTH_TOKEN_JWKS (the key's
JWKS inline, unless --env names SVCAUTH_TOKEN_JWKS_PARAMETER), all overridable with
--env; the memory and warm parts alternate that token (allowed) and the same token
with one signature byte changed (refused).
--token-fresh N (with --token) times the cost of a token the instance has not seen:
warm invocations of N distinct valid tokens (each verified: ES256) against N
invocations of one token presented again (answered from the cache of verified
tokens), same binary, interleaved round by round with VERIFY_FLOOR
(`--verify-floor`, `cargo build --release -p authorizer --example verify_floor`: one
raw aws-lc-rs verification of a message as long as the token's signing input, same
profile), and reports fresh minus seen beside that raw verification; with --baseline
OLD the older build too.
--api-key-file FILE puts the key read from FILE in the allowed event instead of the
development key (e.g. a key that `svcauth keys create --deliver stdout` made in
moto_server, for the memory and warm parts with SVCAUTH_KEY_SOURCE=ssm).
Build BINARY first, e.g. `cargo build --release -p authorizer` (native; the arm64
Lambda build cannot run on an x86_64 machine).
"""
import argparse
import base64
import json
import os
import queue
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Runtime:
    def __init__(self, events):
        self.events = queue.Queue()
        for e in events:
            self.events.put(e)
        self.first_next = None
        self.responses = 0
        self.errors = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        # Warm timing: when the current event was handed out, and per invocation the
        # time until its response (or error) arrived, in seconds.
        self.sent_at = None
        self.latencies = []


def make_handler(rt, keep_alive=False):
    class H(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps the runtime's connection open between requests, so a warm
        # invocation is not timed with a TCP connect in it.
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        # Without TCP_NODELAY a kept-alive connection waits for delayed ACKs (~40 ms).
        disable_nagle_algorithm = keep_alive

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path.endswith("/runtime/invocation/next"):
                with rt.lock:
                    if rt.first_next is None:
                        rt.first_next = time.perf_counter()
                try:
                    ev = rt.events.get_nowait()
                except queue.Empty:
                    rt.done.set()
                    rt.done.wait()
                    time.sleep(3600)
                    return
                body = json.dumps(ev).encode()
                rid = f"req-{time.perf_counter_ns()}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:authorizer")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                rt.sent_at = time.perf_counter()
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def do_POST(self):
            arrived = time.perf_counter()
            n = int(self.headers.get("Content-Length", 0))
            self.rfile.read(n)
            with rt.lock:
                if rt.sent_at is not None:
                    rt.latencies.append(arrived - rt.sent_at)
                    rt.sent_at = None
                if self.path.endswith("/response"):
                    rt.responses += 1
                elif self.path.endswith("/error"):
                    rt.errors += 1
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return H


def run_once(binary, events, extra_env=(), keep_alive=False):
    """Runs BINARY until it has asked for one event more than `events` holds.
    Returns (start-up ms, peak RSS KiB, responses, errors); the Runtime's per
    invocation latencies are in `run_once.last_latencies`."""
    rt = Runtime(events)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rt, keep_alive))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "authorizer",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "json",
        # The development keys' hashes, read as a file (no build holds them).
        "SVCAUTH_KEY_SOURCE": "file",
        "SVCAUTH_KEYS_FILE": str(ROOT / "dev/dev-store.json"),
    }
    env.update(dict(kv.split("=", 1) for kv in extra_env))
    t0 = time.perf_counter()
    # Logs go to a pipe read by another process, as in Lambda (a write to /dev/null
    # costs less; a reader thread here would compete with the server for the GIL).
    drain = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    proc = subprocess.Popen([binary], env=env, stdout=drain.stdin, stderr=drain.stdin)
    drain.stdin.close()
    if not rt.done.wait(timeout=120):
        proc.kill()
        raise SystemExit("the authorizer did not finish its events in time")
    startup_ms = (rt.first_next - t0) * 1000
    hwm_kb = None
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    proc.kill()
    proc.wait()
    drain.wait()
    server.shutdown()
    run_once.last_latencies = rt.latencies
    return startup_ms, hwm_kb, rt.responses, rt.errors


run_once.last_latencies = []


def warm_latencies_us(binary, event, invocations, extra_env=(), skip=50):
    """Per-invocation latencies (µs) of `invocations` warm invocations with the same
    event (or, given a list, with each event of the list in turn), without the first
    `skip` (connection set-up, first-use allocations)."""
    events = event if isinstance(event, list) else [event] * invocations
    _, _, ok, err = run_once(binary, events, extra_env, keep_alive=True)
    if ok + err != len(events):
        raise SystemExit(f"{binary}: {ok + err} of {len(events)} invocations answered")
    if err:
        raise SystemExit(f"{binary}: {err} invocations were refused")
    return [x * 1e6 for x in run_once.last_latencies[skip:]]


def median_p90(samples):
    ordered = sorted(samples)
    return round(statistics.median(ordered), 1), round(ordered[int(len(ordered) * 0.9)], 1)


def compare_fresh(binaries, fresh, seen, verify_floor, message_len, rounds=5, extra_env=()):
    """What a token the instance has not seen costs: per binary, the median warm
    invocation of the distinct tokens `fresh` (each verified) and of `seen` presented
    len(fresh) times (answered from the cache of verified tokens), interleaved round
    by round with the raw verification `verify_floor` (median of its round medians)."""
    samples = {(b, k): [] for b in binaries for k in ("fresh", "seen")}
    floors = []
    for _ in range(rounds):
        for bname, path in binaries.items():
            samples[(bname, "fresh")] += warm_latencies_us(path, fresh, len(fresh), extra_env)
            samples[(bname, "seen")] += warm_latencies_us(path, seen, len(fresh), extra_env)
        out = subprocess.run([verify_floor, str(message_len), "2000"], check=True,
                             capture_output=True, text=True).stdout
        floors.append(json.loads(out)["median_us"])
    raw = round(statistics.median(floors), 1)
    report = {"raw_verify_us": raw, "raw_verify_rounds_us": floors}
    for bname in binaries:
        f_med, f_p90 = median_p90(samples[(bname, "fresh")])
        s_med, s_p90 = median_p90(samples[(bname, "seen")])
        report[bname] = {
            "fresh_median_us": f_med, "fresh_p90_us": f_p90,
            "seen_median_us": s_med, "seen_p90_us": s_p90,
            "fresh_minus_seen_us": round(f_med - s_med, 1),
            "fresh_minus_seen_x_raw_verify": round((f_med - s_med) / raw, 2),
        }
    return report


def compare_warm(binaries, events, rounds=5, invocations=2000, extra_env=()):
    """Median warm invocation time (µs) of each named binary for each named event,
    measured in one run: rounds interleave the binaries so a busy machine slows them
    alike. `binaries` and `events` are dicts name -> path / event."""
    samples = {(b, e): [] for b in binaries for e in events}
    for _ in range(rounds):
        for ename, event in events.items():
            for bname, path in binaries.items():
                samples[(bname, ename)] += warm_latencies_us(path, event, invocations, extra_env)
    return {
        ename: {
            bname: {
                "median_us": round(statistics.median(samples[(bname, ename)]), 1),
                "p90_us": round(sorted(samples[(bname, ename)])[int(len(samples[(bname, ename)]) * 0.9)], 1),
                "samples": len(samples[(bname, ename)]),
            }
            for bname in binaries
        }
        for ename in events
    }


TOKEN_KID = "startup-bench-key"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_setup(key_pem=None, proof_key="kid_f94915a196acedcb", fresh=0):
    """(allowed event, refused event, JWKS text, `fresh` events with distinct valid
    tokens) for --token. The allowed event is events/authorizer-token-bearer.json with
    a token signed now; the refused one carries the same token with a changed
    signature."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    if key_pem:
        key = serialization.load_pem_private_key(Path(key_pem).read_bytes(), password=None)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_numbers()
    jwks = json.dumps({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": TOKEN_KID,
        "x": b64url(pub.x.to_bytes(32, "big")), "y": b64url(pub.y.to_bytes(32, "big")),
    }]})
    template = json.loads((ROOT / "events/authorizer-token-bearer.json").read_text())
    sample = template["headers"]["Authorization"].split(" ", 1)[1]
    claims = json.loads(base64.urlsafe_b64decode(sample.split(".")[1] + "=="))
    now = int(time.time())
    claims.update(iat=now, nbf=now, exp=now + 3000)
    # The proof key must be an active key of the token's service in the store read
    # (by default the development store's first tutor-service key).
    claims["proof"] = {"method": "api-key", "keyId": proof_key}
    header = {"alg": "ES256", "typ": "at+jwt", "kid": TOKEN_KID}

    def signed(claims):
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        r, s_ = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input, r.to_bytes(32, "big") + s_.to_bytes(32, "big")

    def event(signing_input, sig):
        e = json.loads(json.dumps(template))
        value = f"Bearer {signing_input}.{b64url(sig)}"
        e["headers"]["Authorization"] = value
        e["multiValueHeaders"]["Authorization"] = [value]
        return e

    signing_input, signature = signed(claims)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    fresh_events = []
    for i in range(fresh):
        distinct = dict(claims, jti=f"{claims['jti']}-{i}")
        fresh_events.append(event(*signed(distinct)))
    token_setup.signing_input_len = len(signing_input)
    return event(signing_input, signature), event(signing_input, tampered), jwks, fresh_events


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--invocations", type=int, default=1000)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--floor", metavar="FLOOR", help="the do-nothing runtime (examples/floor.rs) for the warm figure")
    ap.add_argument("--baseline", metavar="OLD", help="an older authorizer build measured in the same run")
    ap.add_argument("--warm-rounds", type=int, default=5)
    ap.add_argument("--warm-invocations", type=int, default=2000)
    ap.add_argument("--token", action="store_true", help="a token-only authorizer and token events (see above)")
    ap.add_argument("--token-key", metavar="PEM", help="with --token: sign with this P-256 key (PKCS#8 PEM)")
    ap.add_argument("--token-proof-key", metavar="KID", default="kid_f94915a196acedcb",
                    help="with --token: the key id of the token's proof (an active tutor-service key of the store)")
    ap.add_argument("--api-key-file", metavar="FILE", help="the key of the allowed event (default: the development key)")
    ap.add_argument("--token-fresh", type=int, default=0, metavar="N",
                    help="with --token: N distinct tokens against one seen token (see above)")
    ap.add_argument("--verify-floor", metavar="VERIFY_FLOOR", help="with --token-fresh: the raw verification (examples/verify_floor.rs)")
    args = ap.parse_args()

    if args.token:
        allowed, refused, jwks, fresh = token_setup(args.token_key, args.token_proof_key,
                                                    args.token_fresh)
        given = {kv.split("=", 1)[0] for kv in args.env}
        defaults = ["SVCAUTH_ACCEPT=token", "SVCAUTH_TOKEN_ISSUER=svcauth:dev",
                    "SVCAUTH_API_NAMES=a1b2c3d4e5=identity"]
        if "SVCAUTH_TOKEN_JWKS_PARAMETER" not in given:
            defaults.append(f"SVCAUTH_TOKEN_JWKS={jwks}")
        args.env = [kv for kv in defaults if kv.split("=", 1)[0] not in given] + args.env
    else:
        allowed = json.loads((ROOT / "events/authorizer-valid-key.json").read_text())
        refused = json.loads((ROOT / "events/authorizer-invalid-key.json").read_text())
        if args.api_key_file:
            key = Path(args.api_key_file).read_text().strip()
            allowed["headers"]["x-service-api-key"] = key
            allowed["multiValueHeaders"]["x-service-api-key"] = [key]

    starts = [run_once(args.binary, [], args.env)[0] for _ in range(args.runs)]
    starts.sort()
    events = [allowed if i % 2 == 0 else refused for i in range(args.invocations)]
    _, hwm_kb, ok, err = run_once(args.binary, events, args.env)
    report = {
        "startup_ms_median": round(statistics.median(starts), 2),
        "startup_ms_p90": round(starts[int(len(starts) * 0.9) - 1], 2),
        "startup_runs": len(starts),
        "invocations": args.invocations,
        "responses": ok,
        "errors_unauthorized": err,
        "peak_rss_mib": round(hwm_kb / 1024, 2),
    }
    if args.floor:
        binaries = {"floor": args.floor, "authorizer": args.binary}
        if args.baseline:
            binaries["baseline"] = args.baseline
        warm = compare_warm(binaries, {"allowed_key": allowed, "unknown_key": refused},
                            args.warm_rounds, args.warm_invocations, args.env)
        for per_event in warm.values():
            floor = per_event["floor"]["median_us"]
            for name in binaries:
                if name != "floor":
                    per_event[name]["above_floor_us"] = round(per_event[name]["median_us"] - floor, 1)
        report["warm"] = warm
    if args.token and args.token_fresh:
        if not args.verify_floor:
            raise SystemExit("--token-fresh needs --verify-floor")
        binaries = {"authorizer": args.binary}
        if args.baseline:
            binaries["baseline"] = args.baseline
        report["fresh_token"] = compare_fresh(
            binaries, fresh, allowed, args.verify_floor, token_setup.signing_input_len,
            args.warm_rounds, args.env)
        report["fresh_token"]["tokens"] = args.token_fresh
        report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

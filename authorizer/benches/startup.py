#!/usr/bin/env python3
"""Start-up time and memory of the authorizer binary, measured against a local
Lambda Runtime API (stdlib only, served on 127.0.0.1).

  start-up: from process spawn to its first `GET /runtime/invocation/next`, i.e. the
            end of init (config, key store load, runtime ready) with the development
            store; median and p90 over --runs cold starts.
  memory:   peak resident set (VmHWM) of one process after --invocations warm
            invocations (allowed and refused decisions alternating).

usage: authorizer/benches/startup.py BINARY [--runs 30] [--invocations 1000]
                                         [--env NAME=VALUE ...]
`--env` adds to or overrides the function's environment, e.g. to time an SSM load
against moto_server: --env SVCAUTH_KEY_SOURCE=ssm --env AWS_ENDPOINT_URL=http://...
Build BINARY first, e.g. `cargo build --release -p authorizer` (native; the arm64
Lambda build cannot run on an x86_64 machine).
"""
import argparse
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


def make_handler(rt):
    class H(BaseHTTPRequestHandler):
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
            else:
                self.send_response(404)
                self.end_headers()

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            self.rfile.read(n)
            with rt.lock:
                if self.path.endswith("/response"):
                    rt.responses += 1
                elif self.path.endswith("/error"):
                    rt.errors += 1
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return H


def run_once(binary, events, extra_env=()):
    rt = Runtime(events)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rt))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "authorizer",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "json",
        "SVCAUTH_KEY_SOURCE": "dev",
    }
    env.update(dict(kv.split("=", 1) for kv in extra_env))
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    server.shutdown()
    return startup_ms, hwm_kb, rt.responses, rt.errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--invocations", type=int, default=1000)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()

    allowed = json.loads((ROOT / "events/authorizer-valid-key.json").read_text())
    refused = json.loads((ROOT / "events/authorizer-invalid-key.json").read_text())

    starts = [run_once(args.binary, [], args.env)[0] for _ in range(args.runs)]
    starts.sort()
    events = [allowed if i % 2 == 0 else refused for i in range(args.invocations)]
    _, hwm_kb, ok, err = run_once(args.binary, events, args.env)
    print(json.dumps({
        "startup_ms_median": round(statistics.median(starts), 2),
        "startup_ms_p90": round(starts[int(len(starts) * 0.9) - 1], 2),
        "startup_runs": len(starts),
        "invocations": args.invocations,
        "responses": ok,
        "errors_unauthorized": err,
        "peak_rss_mib": round(hwm_kb / 1024, 2),
    }, indent=2))


if __name__ == "__main__":
    main()

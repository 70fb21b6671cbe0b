#!/usr/bin/env python3
"""The authorizer against the same API-key guard in Node.js and Python: start-up, warm
latency and memory, run side by side on one machine through one emulated Lambda Runtime
API (stdlib HTTP server on 127.0.0.1). Normally run by `run.sh` next to this file.
It has its own Runtime API server rather than `../startup.py`'s (one runtime, start-up
and memory): it times every invocation and keeps connections alive, as Lambda does.

Runtimes (each a process speaking the Runtime API, as in Lambda):
  rust     the authorizer binary (`cargo build --release -p authorizer`), key source `file`
  node     node/guard.mjs under the AWS runtime interface client for Node.js (npm
           `aws-lambda-ric`, installed by run.sh)
  python   python/guard.py under the AWS runtime interface client for Python (PyPI
           `awslambdaric`, installed by run.sh)
All three read the same generated key store file (the development documents plus
--services synthetic services of 20 keys each; every size given is measured) and answer
the same events.

Measured per runtime:
  init     process spawn -> its first `GET /runtime/invocation/next`: runtime start, code
           loaded, key store read and checked. Median and p90 of --runs cold starts; the
           runtimes take turns in every round so load on the machine hits them alike.
  first    the first invocation of each cold start (/next answered -> result posted).
  CPU      CPU time (user + system, all threads) of each cold-start process: init and
           its one invocation. Unlike the times above, it hardly moves with the load
           other work puts on the machine.
  warm     per invocation, /next answered -> result posted: --warm-rounds processes per
           runtime (taking turns) of --invocations each, allowed and refused alternating,
           the first --warmup of each not counted; the runtime's own HTTP client is part
           of it, as it is in Lambda.
  max RSS  VmHWM of the process after its warm run (the highest of the rounds).
Before measuring, every events/authorizer-*.json goes through every runtime and the
answers must be the same (policy, principal, context; or `Unauthorized`): the harness
stops otherwise, so the three really run the same logic.

usage: harness.py --rust BINARY --node-ric PATH --python PYTHON [--out results.json]
                  [--runs 30] [--warm-rounds 3] [--invocations 2000] [--warmup 200]
                  [--services 0,500]
"""
import argparse
import json
import os
import platform
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
KEYS_PER_SERVICE = 20
REQUEST_ID_PREFIX = "/2018-06-01/runtime/invocation/"


class Runtime:
    """The emulated Runtime API's state for one process."""

    def __init__(self, events):
        self.events = queue.Queue()
        for e in events:
            self.events.put(e)
        self.total = len(events)
        self.first_next = None
        self.sent = {}  # request id -> (index, perf_counter_ns when /next was answered)
        self.results = [None] * len(events)  # (latency_ns, kind, body)
        self.init_error = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.counter = 0


def make_handler(rt):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Lambda's Runtime API

        def setup(self):
            super().setup()
            # Headers and body are separate writes: without this, Nagle's algorithm and
            # the client's delayed ACK add ~40 ms to every invocation.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *a):
            pass

        def do_GET(self):
            if not self.path.endswith("/runtime/invocation/next"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with rt.lock:
                if rt.first_next is None:
                    rt.first_next = time.perf_counter_ns()
            try:
                ev = rt.events.get_nowait()
            except queue.Empty:
                rt.done.set()
                time.sleep(3600)  # the process is killed before this returns
                return
            with rt.lock:
                index = rt.counter
                rt.counter += 1
            rid = f"req-{index:08d}"
            body = json.dumps(ev).encode()
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
            with rt.lock:
                rt.sent[rid] = (index, time.perf_counter_ns())

        def do_POST(self):
            received = time.perf_counter_ns()
            n = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(n)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if self.path.endswith("/runtime/init/error"):
                rt.init_error = body.decode(errors="replace")
                rt.done.set()
                return
            if not self.path.startswith(REQUEST_ID_PREFIX):
                return
            rid, _, kind = self.path[len(REQUEST_ID_PREFIX):].partition("/")
            # The GET thread records when its answer was flushed; a runtime posting on
            # another connection can be here a moment before that.
            while True:
                with rt.lock:
                    if rid in rt.sent:
                        index, sent = rt.sent[rid]
                        rt.results[index] = (received - sent, kind, body)
                        return
                time.sleep(0)

    return H


def run_process(cmd, cwd, env, events, timeout=300):
    """Starts one runtime process, feeds it `events`, returns (init_ns, results, hwm_kib,
    cpu_ms): cpu_ms is the CPU time the process used in all (user + system, all threads)."""
    rt = Runtime(events)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rt))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    full_env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    stderr = tempfile.TemporaryFile()
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + timeout
        while not rt.done.wait(timeout=0.05):
            if proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{cmd[0]} did not finish its {len(events)} events in {timeout} s")
        if rt.init_error is not None:
            raise SystemExit(f"{' '.join(cmd)} failed its init: {rt.init_error}")
        if proc.poll() is not None:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}: {stderr.read().decode()[-2000:]}")
        hwm_kib = None
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm_kib = int(line.split()[1])
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if children:
            raise SystemExit(f"{cmd[0]} started child processes {children}: its memory would not be counted")
    finally:
        proc.kill()
        # wait4 for the child's own CPU time: it does not depend on how busy the machine is.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        server.shutdown()
        server.server_close()
        stderr.close()
    return rt.first_next - t0, rt.results, hwm_kib, (usage.ru_utime + usage.ru_stime) * 1000


def answer(result):
    """What API Gateway would take from one result: the response, or the error message."""
    _, kind, body = result
    value = json.loads(body) if body else None
    if kind == "error":
        return {"error": value.get("errorMessage")}

    def strip_nulls(v):
        if isinstance(v, dict):
            return {k: strip_nulls(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip_nulls(x) for x in v]
        return v

    return strip_nulls(value)


def generate_store(path, services, seed=20261201):
    """The development documents plus `services` synthetic ones (20 active keys each)."""
    docs = json.loads((ROOT / "dev/dev-store.json").read_text())
    rng = random.Random(seed)
    for i in range(services):
        name = f"svc-{i:04d}"
        docs.append({
            "schema": 1,
            "service": name,
            "permissions": [f"GET /internal/{name}/*", f"POST /internal/{name}/items", "GET /internal/users/{id}"],
            "keys": [{
                "keyId": f"kid_{rng.getrandbits(64):016x}",
                "sha256": f"{rng.getrandbits(256):064x}",
                "created": "2026-11-01T00:00:00Z",
                "expires": None,
                "status": "active",
            } for _ in range(KEYS_PER_SERVICE)],
        })
    path.write_text(json.dumps(docs))
    return sum(len(d["keys"]) for d in docs), len(docs)


def summary(values, *quantiles):
    values = sorted(values)
    out = {"median": round(statistics.median(values), 3)}
    for q in quantiles:
        out[f"p{q}"] = round(values[min(len(values) - 1, int(len(values) * q / 100))], 3)
    out["n"] = len(values)
    return out


def version_of(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except OSError:
        return None


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def locked_version(package):
    """A package's version from Cargo.lock."""
    lines = (ROOT / "Cargo.lock").read_text().splitlines()
    for i, line in enumerate(lines):
        if line == f'name = "{package}"':
            return lines[i + 1].split('"')[1]
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rust", required=True, help="the authorizer binary (native release build)")
    ap.add_argument("--node-ric", required=True, help="aws-lambda-ric's bin/index.mjs")
    ap.add_argument("--python", required=True, help="a python with awslambdaric installed")
    ap.add_argument("--node", default="node")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--invocations", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--warm-rounds", type=int, default=3)
    ap.add_argument("--services", type=lambda v: [int(x) for x in v.split(",")], default=[0, 500],
                    help="synthetic services in each store to measure with, comma-separated (default 0,500)")
    ap.add_argument("--out", type=Path, help="results JSON (default: print)")
    args = ap.parse_args()
    if args.runs < 1 or args.warm_rounds < 1 or args.invocations < 2 or not 0 <= args.warmup < args.invocations:
        ap.error("need --runs >= 1, --warm-rounds >= 1 and 0 <= --warmup < --invocations")

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="svcauth-runtimes-"))
    stores = []
    for n in sorted(set(args.services)):
        path = work / f"store-{n}.json"
        keys, services = generate_store(path, n)
        stores.append({"path": path, "services": services, "keys": keys, "bytes": path.stat().st_size})
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "authorizer",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "json",
        "AWS_REGION": "us-east-1",
        "SVCAUTH_KEY_SOURCE": "file",
        "LANG": "C.UTF-8",
    }
    node_dir, python_dir = HERE / "node", HERE / "python"
    runtimes = [
        {"name": "rust", "label": "Rust", "cmd": [str(Path(args.rust).resolve())], "cwd": str(work),
         "env": base_env,
         "version": version_of(["rustc", "--version"]),
         "client": f"lambda_runtime {locked_version('lambda_runtime')} (in the binary)"},
        {"name": "node", "label": "Node.js", "cmd": [args.node, str(Path(args.node_ric).resolve()), "guard.handler"],
         "cwd": str(node_dir), "env": dict(base_env, LAMBDA_TASK_ROOT=str(node_dir), _HANDLER="guard.handler"),
         "version": "node " + version_of([args.node, "--version"]),
         "client": "aws-lambda-ric " + json.loads(
             (Path(args.node_ric).resolve().parents[1] / "package.json").read_text())["version"]},
        {"name": "python", "label": "Python", "cmd": [args.python, "-m", "awslambdaric", "guard.handler"],
         "cwd": str(python_dir),
         # Lambda's code directory is read-only: guard.py is compiled at every cold start.
         "env": dict(base_env, LAMBDA_TASK_ROOT=str(python_dir), _HANDLER="guard.handler",
                     PYTHONDONTWRITEBYTECODE="1"),
         "version": version_of([args.python, "-c", "import platform; print('python', platform.python_version())"]),
         "client": "awslambdaric " + version_of(
             [args.python, "-c", "import importlib.metadata as m; print(m.version('awslambdaric'))"])},
    ]

    def run(r, store, events):
        return run_process(r["cmd"], r["cwd"], dict(r["env"], SVCAUTH_KEYS_FILE=str(store["path"])), events)

    # Same logic: every sample event, same answer from every runtime.
    samples = sorted((ROOT / "events").glob("authorizer-*.json"))
    sample_events = [json.loads(p.read_text()) for p in samples]
    for store in stores:
        answers = {r["name"]: [answer(x) for x in run(r, store, sample_events)[1]] for r in runtimes}
        for r in runtimes[1:]:
            for path, want, got in zip(samples, answers["rust"], answers[r["name"]]):
                if want != got:
                    raise SystemExit(f"{r['label']} answers {path.name} differently from Rust:\n"
                                     f"  rust: {json.dumps(want)}\n  {r['name']}: {json.dumps(got)}")
        allowed_count = sum("error" not in a for a in answers["rust"])
        print(f"{store['keys']} keys: same answers from all runtimes for {len(samples)} sample events "
              f"({allowed_count} allowed)", file=sys.stderr)

    allowed = json.loads((ROOT / "events/authorizer-valid-key.json").read_text())
    refused = json.loads((ROOT / "events/authorizer-invalid-key.json").read_text())
    events = [allowed if i % 2 == 0 else refused for i in range(args.invocations)]
    for store in stores:
        init = {r["name"]: [] for r in runtimes}
        first = {r["name"]: [] for r in runtimes}
        cpu = {r["name"]: [] for r in runtimes}
        for i in range(args.runs):
            for r in runtimes[i % 3:] + runtimes[:i % 3]:
                init_ns, results, _, cpu_ms = run(r, store, [allowed])
                init[r["name"]].append(init_ns / 1e6)
                first[r["name"]].append(results[0][0] / 1e6)
                cpu[r["name"]].append(cpu_ms)
        print(f"{store['keys']} keys: {args.runs} rounds of cold starts done", file=sys.stderr)
        warm = {r["name"]: [] for r in runtimes}
        hwm = {r["name"]: 0 for r in runtimes}
        for i in range(args.warm_rounds):
            for r in runtimes[i % 3:] + runtimes[:i % 3]:
                _, results, hwm_kib, _ = run(r, store, events)
                kinds = [k for _, k, _ in results]
                if kinds.count("response") != (args.invocations + 1) // 2:
                    raise SystemExit(f"{r['label']}: expected every other invocation allowed, got {kinds[:6]}...")
                warm[r["name"]].extend(ns / 1e3 for ns, _, _ in results[args.warmup:])
                hwm[r["name"]] = max(hwm[r["name"]], hwm_kib)
        print(f"{store['keys']} keys: {args.warm_rounds} rounds of warm runs done", file=sys.stderr)
        store["results"] = {r["name"]: {
            "init_ms": summary(init[r["name"]], 90),
            "first_invocation_ms": summary(first[r["name"]], 90),
            "cold_start_cpu_ms": summary(cpu[r["name"]], 90),
            "warm_us": summary(warm[r["name"]], 90, 99),
            "max_rss_mib": round(hwm[r["name"]] / 1024, 2),
        } for r in runtimes}
        store["path"].unlink()
        del store["path"]
    work.rmdir()

    result = {
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "machine": {
            "arch": platform.machine(),
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "kernel": platform.release(),
            # Other work on the machine while measuring (1, 5, 15-minute load averages).
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "runs": args.runs,
        "warm_rounds": args.warm_rounds,
        "invocations": args.invocations,
        "warmup": args.warmup,
        "events": "authorizer-valid-key.json and authorizer-invalid-key.json alternating",
        "runtimes": [{k: r[k] for k in ("name", "label", "version", "client")} for r in runtimes],
        "stores": stores,
    }
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

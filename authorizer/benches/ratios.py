#!/usr/bin/env python3
"""Each criterion bench as a multiple of its floor, measured in the same run.

  authorizer/benches/ratios.py [CRITERION_DIR ...]

With one directory (default: target/criterion, what `cargo bench -p authorizer` writes)
it prints every bench's median and its multiple of its floor. With several, each named
NAME=DIR (e.g. before-1=/tmp/c/before-1 after-1=/tmp/c/after-1 before-2=...), every
directory is one run of one build: the bench binaries of the builds were run in turn,
round after round, each into its own CRITERION_HOME. It prints, per build (the NAME
up to its last `-`), the range over its runs of each median and of each multiple of
its floor (the floor from the same directory, so a busy machine slows both alike).

--floor-from BUILD takes every build's floors from BUILD's run of the same round (the
floor at its best: e.g. the crypto built for speed), instead of each build's own.
--fastest reads each bench's fastest sample instead of criterion's median: on a
machine shared with other work, preemption only ever adds time, so the fastest sample
(a mean over many iterations) is the least disturbed one.

The floor of a bench is the first rule of FLOORS its title starts with.
"""
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

FLOORS = [
    # (title prefix, floor title prefix); None: the bench is a floor or has none.
    ("floor", None),
    ("token", "floor: ES256"),
    ("issuer: POST /token, signing path", "floor: one KMS Sign"),
    ("issuer", None),
    ("", "floor: SHA-256"),
]


FASTEST = False


def medians(root):
    """Bench title -> median (ns) of the last run in `root` (with --fastest, the
    fastest sample's time per iteration)."""
    out = {}
    for est in Path(root).glob("**/new/estimates.json"):
        title = json.loads((est.parent / "benchmark.json").read_text())["title"]
        if FASTEST:
            sample = json.loads((est.parent / "sample.json").read_text())
            out[title] = min(t / n for t, n in zip(sample["times"], sample["iters"]))
        else:
            out[title] = json.loads(est.read_text())["median"]["point_estimate"]
    return out


def floor_of(title, found):
    for prefix, floor in FLOORS:
        if title.startswith(prefix):
            if floor is None:
                return None
            return next((v for k, v in found.items() if k.startswith(floor)), None)
    return None


def fmt_us(ns):
    us = ns / 1000
    return f"{us:.3f}" if us < 10 else f"{us:.1f}"


def span(values, f):
    lo, hi = min(values), max(values)
    return f(lo) if f(lo) == f(hi) else f"{f(lo)}-{f(hi)}"


def main(args):
    global FASTEST
    if "--fastest" in args:
        FASTEST = True
        args = [a for a in args if a != "--fastest"]
    floor_from = None
    if "--floor-from" in args:
        i = args.index("--floor-from")
        floor_from = args[i + 1]
        args = args[:i] + args[i + 2:]
    if len(args) <= 1 and not (args and "=" in args[0]):
        found = medians(Path(args[0] if args else "target/criterion"))
        if not found:
            sys.exit("no criterion results: run `cargo bench -p authorizer` first")
        for title, ns in sorted(found.items(), key=lambda kv: kv[1]):
            floor = floor_of(title, found)
            ratio = f"{ns / floor:6.2f}x floor" if floor else " " * 13
            print(f"{fmt_us(ns):>10} µs  {ratio}  {title}")
        return
    runs = defaultdict(list)  # build -> [{title: ns}]
    for arg in args:
        name, _, root = arg.partition("=")
        build = re.sub(r"-[^-]*$", "", name)
        runs[build].append(medians(root))
    titles = sorted({t for rs in runs.values() for r in rs for t in r})
    builds = list(runs)
    print("| bench | " + " | ".join(f"{b} µs | {b} × floor" for b in builds) + " |")
    print("|---|" + "---|---|" * len(builds))
    for title in titles:
        cells = []
        for b in builds:
            values = [r[title] for r in runs[b] if title in r]
            floors = runs[floor_from] if floor_from else runs[b]
            ratios = [r[title] / f for r, fr in zip(runs[b], floors) if title in r
                      for f in [floor_of(title, fr)] if f]
            cells.append(span(values, fmt_us) if values else "—")
            cells.append(span(ratios, lambda x: f"{x:.2f}") if ratios else "—")
        print(f"| {title} | " + " | ".join(cells) + " |")
    print()
    print("runs per build: " + ", ".join(f"{b} {len(runs[b])}" for b in builds))


if __name__ == "__main__":
    main(sys.argv[1:])

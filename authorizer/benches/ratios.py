#!/usr/bin/env python3
"""Each criterion bench of `cargo bench -p authorizer --bench decision` as a multiple
of the floor bench of the same run (SHA-256 of a 64-byte key + one hash-map lookup).

usage: authorizer/benches/ratios.py [TARGET_DIR]   (default: target)
Reads TARGET_DIR/criterion/*/new/estimates.json (medians, ns).
"""
import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "target") / "criterion"
medians = {}
for est in root.glob("*/new/estimates.json"):
    bench = json.loads((est.parent / "benchmark.json").read_text())["title"]
    medians[bench] = json.loads(est.read_text())["median"]["point_estimate"]
floor = next((v for k, v in medians.items() if k.startswith("floor")), None)
if floor is None:
    sys.exit(f"no floor bench under {root}: run `cargo bench -p authorizer --bench decision` first")
for name, ns in sorted(medians.items(), key=lambda kv: kv[1]):
    print(f"{ns / 1000:9.3f} µs  {ns / floor:6.2f}x floor  {name}")

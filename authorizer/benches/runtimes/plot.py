#!/usr/bin/env python3
"""Draws the cross-runtime results of harness.py as an SVG: start-up, warm latency and
peak memory of each runtime, bars at the median with a whisker to p90 (p99 for warm
latency). Standard library only, so it runs anywhere the harness runs.

usage: plot.py RESULTS.json OUT.svg
"""
import json
import math
import sys
from html import escape
from pathlib import Path

COLOURS = {"rust": "#b7410e", "node": "#3c873a", "python": "#3776ab"}
WIDTH, PANEL_W, LABEL_W, ROW_H, TOP = 960, 270, 80, 44, 96
PANELS = [
    # (title, value key, whisker key or None, unit)
    ("Start-up (init)", "init_ms", "p90", "ms"),
    ("Warm invocation", "warm_us", "p99", "µs"),
    ("Peak memory (max RSS)", "max_rss_mib", None, "MiB"),
]


def number(v):
    """Three significant digits at most, no trailing noise: 6.21, 48.2, 312."""
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def nice_max(value):
    """The smallest 1/2/2.5/5 × 10^n at or above `value`, and a tick step for it."""
    exp = 10 ** math.floor(math.log10(value)) if value > 0 else 1
    for m, step in ((1, 0.25), (2, 0.5), (2.5, 0.5), (5, 1), (10, 2)):
        if value <= m * exp:
            return m * exp, step * exp
    return 10 * exp, 2 * exp


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')


def render(data):
    runtimes = data["runtimes"]
    height = TOP + ROW_H * len(runtimes) + 100
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        text(16, 28, "The API-key guard in three Lambda runtimes: same logic, same harness, same machine",
             17, weight="bold"),
        text(16, 50, f"measured {data['measured_at']} on a {data['machine']['cpus']}-core "
             f"{data['machine']['arch']} machine ({data['machine']['cpu_model']}); store of "
             f"{data['store']['keys']:,} keys in {data['store']['services']} services", 12, fill="#555"),
        text(16, 68, f"{data['runs']} cold starts per runtime, taking turns; {data['invocations'] - data['warmup']:,} "
             f"warm invocations after {data['warmup']} not counted; bars: median, whiskers: p90 (warm: p99)",
             12, fill="#555"),
    ]
    rows_top = TOP + 14
    for i, r in enumerate(runtimes):
        y = rows_top + i * ROW_H + ROW_H / 2
        out.append(text(16, y + 4, r["label"], 13, weight="bold", fill=COLOURS.get(r["name"], "#444")))
    for p, (title, key, whisker, unit) in enumerate(PANELS):
        x0 = LABEL_W + 16 + p * (PANEL_W + 20)
        bar_w = PANEL_W - 70
        values = []
        for r in runtimes:
            v = r[key]
            median = v["median"] if isinstance(v, dict) else v
            high = v[whisker] if whisker and isinstance(v, dict) else median
            values.append((median, high))
        top_value, step = nice_max(max(h for _, h in values))
        scale = bar_w / top_value
        out.append(text(x0, TOP, f"{title}, {unit}", 12, weight="bold"))
        axis_y = rows_top + ROW_H * len(runtimes)
        tick = 0.0
        while tick <= top_value + 1e-9:
            tx = x0 + tick * scale
            out.append(f'<line x1="{tx:.1f}" y1="{rows_top}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e4e4e4"/>')
            out.append(text(tx, axis_y + 14, f"{tick:g}", 10, anchor="middle", fill="#777"))
            tick += step
        base = values[0][0]
        for i, (r, (median, high)) in enumerate(zip(runtimes, values)):
            y = rows_top + i * ROW_H + 10
            colour = COLOURS.get(r["name"], "#888")
            w = max(median * scale, 1.0)
            out.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{ROW_H - 20}" fill="{colour}"/>')
            if high > median:
                hx, cy = x0 + high * scale, y + (ROW_H - 20) / 2
                out.append(f'<line x1="{x0 + w:.1f}" y1="{cy:.1f}" x2="{hx:.1f}" y2="{cy:.1f}" stroke="#333"/>')
                out.append(f'<line x1="{hx:.1f}" y1="{cy - 5:.1f}" x2="{hx:.1f}" y2="{cy + 5:.1f}" stroke="#333"/>')
            label = number(median)
            if i > 0 and base > 0:
                ratio = median / base
                label += f"  ×{ratio:.0f}" if ratio >= 10 else f"  ×{ratio:.1f}"
            lx = x0 + max(w, high * scale) + 5
            out.append(text(lx, y + (ROW_H - 20) / 2 + 4, label, 11))
        out.append(f'<line x1="{x0}" y1="{rows_top}" x2="{x0}" y2="{axis_y}" stroke="#999"/>')
    foot = axis_y + 40
    out.append(text(16, foot, "; ".join(f"{r['label']}: {r['version']}, {r['client']}" for r in runtimes),
                    11, fill="#555"))
    out.append(text(16, foot + 18, "Node.js and Python run the Rust authorizer's checks (key format and checksum, "
                    "SHA-256, map lookup, IAM policy, audit and EMF lines); the harness first checks that", 11,
                    fill="#555"))
    out.append(text(16, foot + 34, "all three give the same answers to every sample event. Drawn by "
                    "authorizer/benches/runtimes/plot.py from the harness's JSON (run.sh).", 11, fill="#555"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    data = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(render(data))


if __name__ == "__main__":
    main()

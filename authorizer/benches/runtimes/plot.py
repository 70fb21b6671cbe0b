#!/usr/bin/env python3
"""Draws the cross-runtime results of harness.py as an SVG: start-up (wall clock and
CPU time), warm latency and peak memory of each runtime for each key store size, bars
at the median with a whisker to p90 (p99 stays in the JSON: one slow outlier would
squash every bar). Standard library only, so it runs wherever the harness runs.

usage: plot.py RESULTS.json OUT.svg   (also prints the Markdown table of docs/performance.md)
       plot.py --check RESULTS.json SVG DOC.md
         exits 1 unless SVG is exactly what RESULTS.json draws and DOC.md holds its
         table (CI runs this on docs/performance.md: the committed picture and numbers
         come from the results)
"""
import json
import math
import sys
from html import escape
from pathlib import Path

COLOURS = {"rust": "#b7410e", "node": "#3c873a", "python": "#3776ab"}
WIDTH, PANEL_W, LABEL_W, TOP = 1180, 250, 80, 112
BAR_H, BAR_GAP, ROW_GAP = 16, 3, 16
PANELS = [
    # (title, value key, whisker key or None, unit)
    ("Start-up (init)", "init_ms", "p90", "ms"),
    ("Cold start CPU time", "cold_start_cpu_ms", "p90", "ms"),
    ("Warm invocation", "warm_us", "p90", "µs"),
    ("Peak memory (max RSS)", "max_rss_mib", None, "MiB"),
]
# The smaller stores are drawn lighter; the largest in the runtime's full colour.
OPACITY = [0.45, 0.7, 1.0]


def number(v):
    """At most three significant digits: 6.21, 48.2, 312."""
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


def store_name(store):
    if store["services"] <= 3:
        return f"{store['keys']} keys (development store)"
    return f"{store['keys']:,} keys in {store['services']} services"


def render(data):
    runtimes, stores = data["runtimes"], data["stores"]
    opacity = OPACITY[-len(stores):] if len(stores) <= len(OPACITY) else [1.0] * len(stores)
    row_h = len(stores) * (BAR_H + BAR_GAP) - BAR_GAP + ROW_GAP
    rows_top = TOP + 14
    axis_y = rows_top + row_h * len(runtimes)
    height = axis_y + 88
    m = data["machine"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        text(16, 28, "The API-key guard in three Lambda runtimes: same logic, same harness, same machine",
             17, weight="bold"),
        text(16, 50, f"measured {data['measured_at']} on a {m['cpus']}-core {m['arch']} machine "
             f"({m['cpu_model']}) shared with other builds: load average {m['load_average_at_start'][0]:g} "
             f"→ {m['load_average_at_end'][0]:g}", 12, fill="#555"),
        text(16, 68, f"{data['runs']} cold starts per runtime and store, taking turns; warm: "
             f"{data['warm_rounds']} × {data['invocations'] - data['warmup']:,} invocations, allowed and refused "
             f"alternating; bars: median, whiskers: p90", 12, fill="#555"),
    ]
    # Legend: one swatch per store size.
    lx = 16
    for store, op in zip(stores, opacity):
        out.append(f'<rect x="{lx}" y="80" width="12" height="12" fill="#666" fill-opacity="{op}"/>')
        label = store_name(store)
        out.append(text(lx + 17, 90, label, 12))
        lx += 17 + 7 * len(label) + 24
    for i, r in enumerate(runtimes):
        y = rows_top + i * row_h + (row_h - ROW_GAP) / 2
        out.append(text(16, y + 5, r["label"], 13, weight="bold", fill=COLOURS.get(r["name"], "#444")))
    for p, (title, key, whisker, unit) in enumerate(PANELS):
        x0 = LABEL_W + 16 + p * (PANEL_W + 20)
        bar_w = PANEL_W - 120
        values = {}  # (runtime, store index) -> (median, high)
        for si, store in enumerate(stores):
            for r in runtimes:
                v = store["results"][r["name"]][key]
                median = v["median"] if isinstance(v, dict) else v
                high = v[whisker] if whisker and isinstance(v, dict) else median
                values[r["name"], si] = (median, high)
        # Whiskers longer than 3 × the largest median are cut at the axis end and their
        # value written out, so that one noisy p90 does not squash every bar.
        highest_median = max(m for m, _ in values.values())
        top_value, step = nice_max(min(max(h for _, h in values.values()), 3 * highest_median))
        scale = bar_w / top_value
        out.append(text(x0, TOP, f"{title}, {unit}", 12, weight="bold"))
        tick = 0.0
        while tick <= top_value + 1e-9:
            tx = x0 + tick * scale
            out.append(f'<line x1="{tx:.1f}" y1="{rows_top - 4}" x2="{tx:.1f}" y2="{axis_y}" stroke="#e4e4e4"/>')
            out.append(text(tx, axis_y + 14, f"{tick:g}", 10, anchor="middle", fill="#777"))
            tick += step
        for i, r in enumerate(runtimes):
            colour = COLOURS.get(r["name"], "#888")
            for si in range(len(stores)):
                median, high = values[r["name"], si]
                y = rows_top + i * row_h + si * (BAR_H + BAR_GAP)
                w = max(median * scale, 1.0)
                out.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{colour}" '
                           f'fill-opacity="{opacity[si]}"/>')
                cy = y + BAR_H / 2
                cut = high > top_value
                shown_high = min(high, top_value)
                if shown_high > median:
                    hx = x0 + shown_high * scale
                    out.append(f'<line x1="{x0 + w:.1f}" y1="{cy:.1f}" x2="{hx:.1f}" y2="{cy:.1f}" stroke="#333"/>')
                    if cut:
                        out.append(f'<path d="M{hx:.1f},{cy - 4:.1f} L{hx + 6:.1f},{cy:.1f} L{hx:.1f},{cy + 4:.1f} Z" '
                                   f'fill="#333"/>')
                    else:
                        out.append(f'<line x1="{hx:.1f}" y1="{cy - 4:.1f}" x2="{hx:.1f}" y2="{cy + 4:.1f}" '
                                   f'stroke="#333"/>')
                label = number(median)
                base = values["rust", si][0] if ("rust", si) in values else 0
                if r["name"] != "rust" and base > 0:
                    ratio = median / base
                    label += f"  ×{ratio:.0f}" if ratio >= 10 else f"  ×{ratio:.1f}"
                if cut:
                    label += f" (p90 {number(high)})"
                lx = x0 + max(w, shown_high * scale) + (11 if cut else 5)
                out.append(text(lx, cy + 4, label, 11))
        out.append(f'<line x1="{x0}" y1="{rows_top - 4}" x2="{x0}" y2="{axis_y}" stroke="#999"/>')
    foot = axis_y + 38
    # "rustc 1.95.0 (59807616e 2026-04-14)" -> "rustc 1.95.0"
    versions = "; ".join(f"{r['label']}: {' '.join(r['version'].split()[:2])}, {r['client']}" for r in runtimes)
    out.append(text(16, foot, versions, 11, fill="#555"))
    out.append(text(16, foot + 16, "Node.js and Python run the Rust authorizer's checks (key format and checksum, "
                    "SHA-256, map lookup, IAM policy, audit and EMF lines); the harness first checks that", 11,
                    fill="#555"))
    out.append(text(16, foot + 32, "all three give the same answers to every sample event. Drawn by "
                    "authorizer/benches/runtimes/plot.py from the harness's JSON (run.sh).", 11, fill="#555"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(data):
    """The same numbers as a Markdown table, for docs/performance.md."""
    rows = ["| store | runtime | init median / p90 | first invocation | cold start CPU | "
            "warm median / p90 / p99 | max RSS |",
            "|---|---|---|---|---|---|---|"]
    for store in data["stores"]:
        for r in data["runtimes"]:
            v = store["results"][r["name"]]
            i, f, c, w = v["init_ms"], v["first_invocation_ms"], v["cold_start_cpu_ms"], v["warm_us"]
            rows.append(f"| {store_name(store)} | {r['label']} | {number(i['median'])} / {number(i['p90'])} ms "
                        f"| {number(f['median'])} ms | {number(c['median'])} ms "
                        f"| {number(w['median'])} / {number(w['p90'])} / "
                        f"{number(w['p99'])} µs | {number(v['max_rss_mib'])} MiB |")
    return "\n".join(rows) + "\n"


def check(results, svg, doc):
    data = json.loads(Path(results).read_text())
    stale = []
    if Path(svg).read_text(encoding="utf-8") != render(data):
        stale.append(f"{svg} is not what {results} draws")
    if table(data) not in Path(doc).read_text(encoding="utf-8"):
        stale.append(f"{doc} does not hold the table of {results}")
    if stale:
        raise SystemExit("; ".join(stale) + f": run `python3 authorizer/benches/runtimes/plot.py {results} {svg}` and paste "
                         f"the table it prints into {doc} (or re-run run.sh)")
    print(f"{svg} and the table in {doc} match {results}")


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "--check":
        check(*args[1:])
        return
    if len(args) != 2:
        raise SystemExit(__doc__)
    data = json.loads(Path(args[0]).read_text())
    Path(args[1]).write_text(render(data), encoding="utf-8")
    sys.stdout.write(table(data))


if __name__ == "__main__":
    main()

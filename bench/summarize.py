#!/usr/bin/env python3
"""Turn bench/run's hyperfine exports into a Markdown table of medians and ratios and an SVG chart.

usage: summarize.py RESULTS_DIR OUT_DIR
"""
import json, math, os, statistics, sys

# (label, berth result, peer result, peer name); a missing file drops the row's peer or the row.
ROWS = [
    ("container run /bin/true", "berth-run", "unshare-chroot", "unshare+chroot (floor)"),
    ("container run /bin/true", "berth-run", "crun-run", "crun 1.8"),
    ("container run /bin/true", "berth-run", "runc-run", "runc"),
    ("image import, 52 MB rootfs tar", "berth-import", "tar-x", "tar -x"),
    ("image build, 5 steps, cold", "berth-build-cold", "buildah-build-cold", "buildah bud"),
    ("image build, 5 steps, cached", "berth-build-cached", "buildah-build-cached", "buildah bud"),
    ("compose up -d, 10 services", "berth-up10", "podman-compose-up10", "podman-compose"),
    ("compose no-op up, 10 services", "berth-noop10", "podman-compose-noop10", "podman-compose"),
    ("compose down -t 0, 10 services", "berth-down10", "podman-compose-down10", "podman-compose"),
]


def median(res_dir, name):
    if not name:
        return None
    p = os.path.join(res_dir, name + ".json")
    if not os.path.exists(p):
        return None
    return statistics.median(json.load(open(p))["results"][0]["times"])


def fmt(s):
    if s is None:
        return "–"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def svg(bars, path):
    """Horizontal bars on a log scale, berth and peer of each row next to each other."""
    w, left, row_h = 760, 260, 22
    h = 40 + row_h * len(bars)
    vals = [v for _, _, v in bars if v]
    lo, hi = math.log10(min(vals) / 2), math.log10(max(vals) * 2)
    scale = lambda v: (math.log10(v) - lo) / (hi - lo) * (w - left - 90)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="18" font-weight="bold">median wall time, log scale (shorter is better)</text>']
    for i, (label, who, v) in enumerate(bars):
        y = 30 + i * row_h
        color = "#2a7ae2" if who == "berth" else "#999999"
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{label} · {who}</text>')
        if v:
            out.append(f'<rect x="{left}" y="{y + 3}" width="{max(scale(v), 1):.1f}" height="{row_h - 6}" fill="{color}"/>')
            out.append(f'<text x="{left + max(scale(v), 1) + 4:.1f}" y="{y + 14}">{fmt(v)}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out) + "\n")


def main():
    res, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    lines = ["| what | berth | peer | peer median | berth / peer |", "|---|---|---|---|---|"]
    bars, seen = [], set()
    for label, mine, peer, peer_name in ROWS:
        b, p = median(res, mine), median(res, peer)
        if b is None:
            continue
        ratio = f"{b / p:.2f}x" if p else "–"
        lines.append(f"| {label} | {fmt(b)} | {peer_name or '–'} | {fmt(p)} | {ratio} |")
        if (label, "berth") not in seen:
            bars.append((label, "berth", b)); seen.add((label, "berth"))
        if p:
            bars.append((label, peer_name, p))
    machine = open(os.path.join(res, "machine.txt")).read() if os.path.exists(os.path.join(res, "machine.txt")) else ""
    md = "```\n" + machine + "```\n\n" + "\n".join(lines) + "\n"
    open(os.path.join(out_dir, "summary.md"), "w").write(md)
    if bars:
        svg(bars, os.path.join(out_dir, "chart.svg"))


if __name__ == "__main__":
    main()

"""Plot benchmark figures for the docs: `meterflow bench decode --scaling | python -m bench.plot OUT.html`.

Reads the `scaling: N meters X telegrams/s` lines and draws throughput against fleet size."""

from __future__ import annotations

import re
import sys

import plotly.graph_objects as go

LINE = re.compile(r"scaling: (\d+) meters ([\d,]+) telegrams/s")


def main() -> None:
    points = [(int(m), int(r.replace(",", ""))) for m, r in LINE.findall(sys.stdin.read())]
    if not points:
        sys.exit("no 'scaling:' lines on stdin; run: "
                 "meterflow bench decode --scaling | python -m bench.plot out.html")
    meters, rates = zip(*points, strict=True)
    fig = go.Figure(go.Bar(x=[f"{m:,} meters" for m in meters], y=rates, text=[f"{r:,}/s" for r in rates],
                           textposition="outside", marker_color="#1f77b4"))
    fig.add_hline(y=20_000, line_dash="dash", annotation_text="target 20,000 telegrams/s")
    fig.update_layout(title="wM-Bus decode throughput on one core vs fleet size (mode 5, 2-core machine)",
                      yaxis_title="telegrams/s", template="plotly_white", width=900, height=500)
    fig.write_html(sys.argv[1] if len(sys.argv) > 1 else "bench-decode.html", include_plotlyjs=True)


if __name__ == "__main__":
    main()

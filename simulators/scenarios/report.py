"""Scenario reports: ``kpis.json`` (KPIs, assertions, VPP slots, events) and ``report.html``
(plotly figures with plotly.js inlined from the installed package, so it opens offline).
PNG export needs kaleido, which is not a dependency: none is written."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from simulators.scenarios.kpis import KPI_DOC


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def summary(result) -> dict:
    """The JSON report as a dict."""
    sc = result.scenario
    return {
        "scenario": sc.name, "description": sc.description.strip(), "site": result.config.site.name,
        "start": sc.start_utc().isoformat(), "simulated_h": result.sim_s / 3600.0,
        "passed": result.passed, "failures": result.failures,
        "assertions": [a.model_dump(exclude_none=True) for a in sc.assertions],
        "kpis": {k: _clean(v) for k, v in result.kpis.items()},
        "vpp_slots": result.vpp_slots, "events": result.events,
        "wall_s": result.wall_s, "speedup": _clean(result.speedup),
    }


def figure(result) -> go.Figure:
    """Power flows, SoC with the floor, plan vs actual battery power (shared time axis)."""
    rec = result.record
    tz = result.config.site.timezone
    t = rec.index.tz_convert(tz)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=("Power flows [kW]", "State of charge and reserve floor [%]",
                                        "Battery: plan vs measured [kW] (> 0 discharge)"))
    for col, name in (("load_w", "load"), ("pv_w", "PV"), ("ev_w", "EV"), ("battery_w", "battery"),
                      ("grid_w", "grid (> 0 import)")):
        fig.add_trace(go.Scatter(x=t, y=rec[col] / 1000, name=name, mode="lines"), row=1, col=1)
    for b in result.batteries:
        fig.add_trace(go.Scatter(x=t, y=rec[f"soc:{b}"] * 100, name=f"SoC {b}", mode="lines"), row=2, col=1)
        fig.add_trace(go.Scatter(x=t, y=rec[f"floor:{b}"] * 100, name=f"floor {b}", mode="lines",
                                 line={"dash": "dash"}), row=2, col=1)
    # power of interval t was commanded at t − 1 step
    fig.add_trace(go.Scatter(x=t, y=rec["plan_w"].shift(1) / 1000, name="plan", mode="lines",
                             line={"dash": "dot"}), row=3, col=1)
    fig.add_trace(go.Scatter(x=t, y=rec["battery_w"] / 1000, name="measured", mode="lines"), row=3, col=1)
    if rec["dispatch_w"].notna().any():
        fig.add_trace(go.Scatter(x=t, y=rec["dispatch_w"].shift(1) / 1000, name="VPP dispatch",
                                 mode="lines", line={"width": 3}), row=3, col=1)
    out = rec["outage"].astype(bool).to_numpy()
    starts = [i for i in range(len(out)) if out[i] and (i == 0 or not out[i - 1])]
    for i in starts:
        j = i
        while j + 1 < len(out) and out[j + 1]:
            j += 1
        fig.add_vrect(x0=t[i], x1=t[j], fillcolor="red", opacity=0.1, line_width=0,
                      annotation_text="grid outage", row="all", col=1)
    fig.update_layout(height=900, title=f"{result.scenario.name} — {result.config.site.name}",
                      hovermode="x unified", template="plotly_white")
    return fig


def write_report(result, out_dir: str | Path) -> dict[str, Path]:
    """Write ``kpis.json``, ``record.csv`` and ``report.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result)
    paths = {"json": out / "kpis.json", "csv": out / "record.csv", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    result.record.to_csv(paths["csv"])
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{'' if v is None else f'{v:.4g}'}</td>"
        f"<td>{html.escape(KPI_DOC.get(k, ''))}</td></tr>" for k, v in data["kpis"].items())
    slots = "".join(f"<tr><td>{s['slot']}</td><td>{s['awarded_w'] / 1000:.1f}</td>"
                    f"<td>{s['delivered_w'] / 1000:.1f}</td><td>{s['ratio']:.2f}</td></tr>"
                    for s in result.vpp_slots)
    verdict = "PASSED" if result.passed else "FAILED: " + "; ".join(result.failures)
    body = figure(result).to_html(full_html=False, include_plotlyjs=True)
    doc = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(result.scenario.name)} scenario report</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}
.pass{{color:green}} .fail{{color:#b00}}</style></head><body>
<h1>Scenario {html.escape(result.scenario.name)}</h1>
<p>{html.escape(data['description'])}</p>
<p class="{'pass' if result.passed else 'fail'}"><b>{html.escape(verdict)}</b>
 — {data['simulated_h']:.1f} simulated h in {result.wall_s:.1f} s wall ({result.speedup:,.0f}×)</p>
{body}
<h2>KPIs</h2><table><tr><th>KPI</th><th>value</th><th>meaning</th></tr>{rows}</table>
{'<h2>VPP dispatch per slot</h2><table><tr><th>slot (UTC)</th><th>awarded kW</th><th>delivered kW</th><th>ratio</th></tr>' + slots + '</table>' if slots else ''}
<h2>Events</h2><ul>{''.join(f"<li>{html.escape(e['t'])}: {html.escape(e['event'])}</li>" for e in result.events)}</ul>
</body></html>"""
    paths["html"].write_text(doc, encoding="utf-8")
    return paths

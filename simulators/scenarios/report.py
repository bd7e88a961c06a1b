"""Scenario reports: ``kpis.json`` (KPIs, assertions, VPP slots, events), ``record.csv`` and
``report.html`` (plotly figures with plotly.js inlined from the installed package, so it opens
offline). PNGs of the plots (:data:`PLOTS`) are rendered from that HTML by the Chromium the
dashboard tests already use (:mod:`simulators.scenarios.png`), not by kaleido."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import plotly.graph_objects as go

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
        "vpp_slots": result.vpp_slots, "events": result.events, "shed_order": result.shed_order,
        "wall_s": result.wall_s, "speedup": _clean(result.speedup),
    }


#: The report's plots: name (also the PNG file stem and the HTML element id ``plot-<name>``)
#: and title.
PLOTS = {
    "power_flows": "Power flows [kW]",
    "soc": "State of charge and reserve floor [%]",
    "plan_vs_actual": "Battery: plan vs measured [kW] (> 0 discharge)",
}


def _outage_spans(result, t) -> list[tuple]:
    out = result.record["outage"].astype(bool).to_numpy()
    spans = []
    i = 0
    while i < len(out):
        if out[i]:
            j = i
            while j + 1 < len(out) and out[j + 1]:
                j += 1
            spans.append((t[i], t[j]))
            i = j
        i += 1
    return spans


def figures(result) -> dict[str, go.Figure]:
    """One figure per entry of :data:`PLOTS` (time in the site's zone; grid outages shaded):
    power flows, SoC with the reserve floor, plan vs measured battery power."""
    rec = result.record
    t = rec.index.tz_convert(result.config.site.timezone)
    figs = {name: go.Figure() for name in PLOTS}
    f = figs["power_flows"]
    for col, name in (("load_w", "load"), ("pv_w", "PV"), ("ev_w", "EV"), ("battery_w", "battery"),
                      ("grid_w", "grid (> 0 import)")):
        f.add_trace(go.Scatter(x=t, y=rec[col] / 1000, name=name, mode="lines"))
    f = figs["soc"]
    for b in result.batteries:
        f.add_trace(go.Scatter(x=t, y=rec[f"soc:{b}"] * 100, name=f"SoC {b}", mode="lines"))
        f.add_trace(go.Scatter(x=t, y=rec[f"floor:{b}"] * 100, name=f"floor {b}", mode="lines",
                               line={"dash": "dash"}))
    f = figs["plan_vs_actual"]
    # power of interval t was commanded at t − 1 step
    f.add_trace(go.Scatter(x=t, y=rec["plan_w"].shift(1) / 1000, name="plan", mode="lines",
                           line={"dash": "dot"}))
    f.add_trace(go.Scatter(x=t, y=rec["battery_w"] / 1000, name="measured", mode="lines"))
    if rec["dispatch_w"].notna().any():
        f.add_trace(go.Scatter(x=t, y=rec["dispatch_w"].shift(1) / 1000, name="VPP dispatch",
                               mode="lines", line={"width": 3}))
    spans = _outage_spans(result, t)
    for name, f in figs.items():
        for a, b in spans:
            f.add_vrect(x0=a, x1=b, fillcolor="red", opacity=0.1, line_width=0, annotation_text="grid outage")
        f.update_layout(height=380, title=f"{PLOTS[name]} — {result.scenario.name}, {result.config.site.name}",
                        hovermode="x unified", template="plotly_white", margin={"t": 60, "b": 40})
    return figs


def plots_html(result) -> str:
    """The plots as HTML fragments, plotly.js inlined once (opens offline); each plot sits in
    ``<div id="plot-<name>">``."""
    parts = []
    for i, (name, fig) in enumerate(figures(result).items()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=f"plot-{name}",
                                 config={"displaylogo": False}))
    return "\n".join(parts)


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
    body = plots_html(result)
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
{'<h2>Load shed order</h2><ol>' + ''.join(f"<li>{html.escape(g)}</li>" for g in result.shed_order) + '</ol>' if result.shed_order else ''}
<h2>Events</h2><ul>{''.join(f"<li>{html.escape(e['t'])}: {html.escape(e['event'])}</li>" for e in result.events)}</ul>
</body></html>"""
    paths["html"].write_text(doc, encoding="utf-8")
    return paths

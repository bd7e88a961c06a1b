// The 48 h plan's uncertainty and reason: the p10–p90 SoC band over the plan's scenarios, the
// storm target while storm mode is on, and one line saying what the plan does in the current
// slot and why (computed by the server: /plan "why", in ja and en). Called by app.js drawPlan
// with the trace list before it is drawn.
(function () {
  const T = {
    ja: { band: "SoC 予測幅 (p10–p90)", storm: "防災目標", now: "現在の計画", scen: "シナリオ {k} 本" },
    en: { band: "SoC band (p10–p90)", storm: "Storm target", now: "Plan now", scen: "{k} scenarios" },
  };
  window.planBand = function (p, data, lang) {
    const tt = T[lang] || T.en;
    const x = data.length ? data[0].x : [];
    const col = (k) => p.slots.map((s) => s[k]);
    if (p.slots.length && p.slots[0].soc_p10_pct !== undefined) {
      // the lower edge first (invisible), the upper edge filled down to it
      data.push({ x, y: col("soc_p10_pct"), name: tt.band + " p10", type: "scatter", mode: "lines",
                  line: { width: 0, color: "rgba(11,92,173,0)" }, yaxis: "y2", showlegend: false, hoverinfo: "skip" });
      data.push({ x, y: col("soc_p90_pct"), name: tt.band, type: "scatter", mode: "lines",
                  line: { width: 0, color: "rgba(11,92,173,0)" }, fill: "tonexty", fillcolor: "rgba(11,92,173,0.2)",
                  yaxis: "y2" });
    }
    if (p.storm_target_pct !== null && p.storm_target_pct !== undefined) {
      data.push({ x, y: x.map(() => p.storm_target_pct), name: tt.storm, type: "scatter", mode: "lines",
                  line: { color: "#d2691e", dash: "dot", width: 2 }, yaxis: "y2" });
    }
    const el = document.getElementById("plan-why");
    if (el) {
      const line = p.why ? p.why[lang === "ja" ? "ja" : "en"] : "";
      el.textContent = line ? tt.now + ": " + line + (p.scenarios > 1 ? " · " + tt.scen.replace("{k}", p.scenarios) : "") : "";
      el.dataset.action = p.why ? p.why.action : "";
    }
  };
})();

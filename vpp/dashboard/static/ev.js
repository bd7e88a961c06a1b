// EV sessions view: per connected car what it needs, what the plan gives it by departure, what
// it got so far and when it leaves (site time). Operators set a car's needs here. Self-contained:
// it reads the key and language the main dashboard keeps (sessionStorage vpp_key, localStorage
// vpp_lang) and refreshes itself while its tab is shown.
(function () {
  "use strict";
  const I18N = {
    ja: { tab: "EV充電", title: "EV充電セッション", charger: "充電器", needed: "必要量", planned: "計画 (出発時)",
          delivered: "充電済み", departure: "出発", source: "指定", set: "設定", energy: "必要量 (kWh)",
          dep_time: "出発時刻", none: "接続中の車両はありません", saved: "{c}: 設定しました",
          src_default: "既定", src_driver: "ドライバー", src_operator: "オペレーター", src_station: "充電器" },
    en: { tab: "EV charging", title: "EV sessions", charger: "Charger", needed: "Needed", planned: "Planned (by departure)",
          delivered: "Delivered", departure: "Departure", source: "Set by", set: "Set", energy: "Needed (kWh)",
          dep_time: "Departure", none: "no car connected", saved: "{c}: saved",
          src_default: "default", src_driver: "driver", src_operator: "operator", src_station: "station" },
  };
  const lang = () => (localStorage.getItem("vpp_lang") === "en" ? "en" : "ja");
  const t = (k, vars) => {
    let s = I18N[lang()][k] || k;
    for (const [n, v] of Object.entries(vars || {})) s = s.replace("{" + n + "}", v);
    return s;
  };
  const kwh = (wh) => (wh === null || wh === undefined || !isFinite(wh)) ? "—" : (wh / 1000).toFixed(1) + " kWh";
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    Object.assign(e, attrs || {});
    if (text !== undefined) e.textContent = text;
    return e;
  };
  let operator = false, msg = "";

  async function call(method, path, body) {
    const r = await fetch("/api/v1" + path, {
      method, headers: Object.assign({ "X-API-Key": sessionStorage.getItem("vpp_key") || "" },
                                     body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { ok: r.ok, status: r.status, data };
  }

  function render(sessions) {
    const box = document.getElementById("ev-sessions");
    box.replaceChildren();
    box.appendChild(el("h2", {}, t("title")));
    if (msg) box.appendChild(el("p", { className: "msg", id: "ev-msg" }, msg));
    if (!sessions.length) { box.appendChild(el("p", { className: "muted" }, t("none"))); return; }
    const table = el("table", { className: "tbl", id: "tbl-ev" });
    const head = el("tr");
    for (const k of ["charger", "needed", "planned", "delivered", "departure", "source"]) head.appendChild(el("th", {}, t(k)));
    if (operator) head.appendChild(el("th", {}, t("set")));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const s of sessions) {
      const tr = el("tr", { id: "ev-row-" + s.charger });
      tr.appendChild(el("td", {}, s.charger));
      tr.appendChild(el("td", { className: "ev-needed" }, kwh(s.needed_wh)));
      tr.appendChild(el("td", { className: "ev-planned" }, kwh(s.planned_wh)));
      tr.appendChild(el("td", { className: "ev-delivered" }, kwh(s.delivered_wh)));
      tr.appendChild(el("td", { className: "ev-departure" }, s.departure_local || "—"));
      tr.appendChild(el("td", { className: "ev-source" }, t("src_" + s.source)));
      if (operator) {
        const td = el("td");
        const f = el("form", { className: "ev-form" });
        const e = el("input", { type: "number", min: "0.1", max: "200", step: "0.1", required: true,
                                className: "ev-in-energy", title: t("energy"), size: 5 });
        const d = el("input", { type: "time", required: true, className: "ev-in-departure", title: t("dep_time") });
        f.append(e, " kWh ", d, " ", el("button", { type: "submit" }, t("set")));
        f.onsubmit = async (ev) => {
          ev.preventDefault();
          const r = await call("PUT", "/ev/sessions/" + encodeURIComponent(s.charger) + "/needs",
                               { energy_wh: Number(e.value) * 1000, departure_local: d.value });
          msg = r.ok ? t("saved", { c: s.charger }) : (r.data && JSON.stringify(r.data.detail)) || String(r.status);
          refresh();
        };
        td.appendChild(f);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    box.appendChild(table);
  }

  async function refresh() {
    const view = document.getElementById("view-ev");
    if (!view || !view.classList.contains("active") || !sessionStorage.getItem("vpp_key")) return;
    const me = await call("GET", "/me");
    operator = me.ok && me.data && me.data.role === "operator";
    const r = await call("GET", "/ev/sessions");
    if (r.ok) render(r.data);
  }

  document.getElementById("tab-ev").textContent = t("tab");
  document.getElementById("tab-ev").addEventListener("click", refresh);
  document.getElementById("lang").addEventListener("click", () => {
    setTimeout(() => { document.getElementById("tab-ev").textContent = t("tab"); refresh(); }, 0);
  });
  setInterval(refresh, 5000);
})();

// Town view: every home of the town by status (online, offline, reverted mode, below its
// reserve), the town's aggregate SoC, reserve floor and autonomy, a filter and a drill-down to
// one home. Self-contained: its own ja/en strings, reads /devices, /alarms and /status with the
// dashboard's key; refreshes while its tab is shown.
"use strict";
(() => {
  const S = {
    ja: { homes: "住宅", online: "稼働", offline: "通信断", reverted: "モード逸脱", below_reserve: "備蓄下限未満",
          all: "すべて", town_soc: "町の蓄電残量", town_floor: "備蓄下限", town_autonomy: "自立時間", hours: "時間",
          search: "住宅ID", th_home: "住宅", th_status: "状態", th_soc: "SoC", th_floor: "下限", th_power: "蓄電池出力",
          th_reserve: "備蓄状態", th_devices: "機器", th_kind: "種別", th_quality: "品質", th_reason: "理由",
          th_protocol: "方式", shown: "{n} / {m} 戸を表示", close: "閉じる", alarms: "警報", none: "なし",
          battery: "蓄電池", pv: "太陽光", meter: "スマートメーター", ev_charger: "V2H/EV" },
    en: { homes: "Homes", online: "online", offline: "offline", reverted: "mode reverted", below_reserve: "below reserve",
          all: "all", town_soc: "Town SoC", town_floor: "Reserve floor", town_autonomy: "Autonomy", hours: "h",
          search: "home id", th_home: "Home", th_status: "Status", th_soc: "SoC", th_floor: "Floor", th_power: "Battery",
          th_reserve: "Reserve", th_devices: "Devices", th_kind: "Kind", th_quality: "Quality", th_reason: "Reason",
          th_protocol: "Protocol", shown: "showing {n} of {m} homes", close: "Close", alarms: "Alarms", none: "none",
          battery: "battery", pv: "PV", meter: "smart meter", ev_charger: "V2H/EV" },
  };
  const STATUSES = ["online", "offline", "reverted", "below_reserve"];
  const el = (id) => document.getElementById(id);
  const lang = () => (document.documentElement.lang === "en" ? "en" : "ja");
  const tr = (k, vars) => {
    let s = S[lang()][k] || S.en[k] || k;
    for (const [n, v] of Object.entries(vars || {})) s = s.replace("{" + n + "}", v);
    return s;
  };
  const f1 = (x) => (x === null || x === undefined || !isFinite(x)) ? "—" : Number(x).toFixed(1);
  let data = { homes: [], status: null, alarms: [] };
  let filter = "all", query = "", selected = null;

  async function get(path) {
    const key = sessionStorage.getItem("vpp_key") || "";
    const r = await fetch("/api/v1" + path, { headers: { "X-API-Key": key } });
    return r.ok ? r.json() : null;
  }

  // one row per home: its devices, status and battery figures
  function homesOf(devices, alarms) {
    const reverted = new Set();
    for (const a of alarms) {
      const m = a.active && /^device:(.+):mode_reverted$/.exec(a.id);
      if (m) reverted.add(m[1]);
    }
    const by = new Map();
    for (const d of devices) {
      if (!d.home) continue;
      if (!by.has(d.home)) by.set(d.home, []);
      by.get(d.home).push(d);
    }
    const homes = [];
    for (const [id, devs] of by) {
      const bats = devs.filter((d) => d.kind === "battery");
      const cap = bats.reduce((s, b) => s + (b.capacity_kwh || 0), 0);
      const live = bats.filter((b) => b.soc_pct !== null && b.soc_pct !== undefined);
      const soc = live.length && cap ? live.reduce((s, b) => s + b.soc_pct * b.capacity_kwh, 0) / live.reduce((s, b) => s + b.capacity_kwh, 0) : null;
      const floor = cap ? bats.reduce((s, b) => s + (b.floor_pct || 0) * b.capacity_kwh, 0) / cap : null;
      const power = bats.reduce((s, b) => s + (b.power_kw || 0), 0);
      const offline = devs.some((d) => !d.available);
      const rev = devs.some((d) => reverted.has(d.id));
      const below = soc !== null && floor !== null && soc < floor - 0.05;
      const status = offline ? "offline" : rev ? "reverted" : below ? "below_reserve" : "online";
      homes.push({ id, devs, cap, soc, floor, power, status, reserve: bats.map((b) => b.reserve_state).filter(Boolean).join(",") || "—",
                   protocol: [...new Set(devs.map((d) => d.protocol || "modbus"))].join("+") });
    }
    homes.sort((a, b) => a.id.localeCompare(b.id));
    return homes;
  }

  function card(label, value, id) {
    return `<div class="card" id="${id}"><div class="lbl">${label}</div><div class="val">${value}</div></div>`;
  }

  function render() {
    const root = el("town-root");
    if (!root) return;
    const homes = data.homes;
    const counts = Object.fromEntries(STATUSES.map((s) => [s, homes.filter((h) => h.status === s).length]));
    const b = (data.status && data.status.battery) || {};
    const cap = homes.reduce((s, h) => s + (h.soc !== null ? h.cap : 0), 0);
    const soc = cap ? homes.reduce((s, h) => s + (h.soc !== null ? h.soc * h.cap : 0), 0) / cap : null;
    const floorCap = homes.reduce((s, h) => s + (h.floor !== null ? h.cap : 0), 0);
    const floor = floorCap ? homes.reduce((s, h) => s + (h.floor !== null ? h.floor * h.cap : 0), 0) / floorCap : null;
    const shown = homes.filter((h) => (filter === "all" || h.status === filter) && h.id.includes(query));
    el("town-cards").innerHTML =
      card(tr("homes"), String(homes.length), "town-total") +
      STATUSES.map((s) => card(tr(s), String(counts[s]), "town-n-" + s)).join("") +
      card(tr("town_soc"), f1(soc) + " %", "town-soc") +
      card(tr("town_floor"), f1(floor) + " %", "town-floor") +
      card(tr("town_autonomy"), (b.autonomy_h == null ? "—" : f1(b.autonomy_h) + " " + tr("hours")), "town-autonomy");
    const sel = el("town-filter");
    sel.innerHTML = ["all", ...STATUSES].map((s) => `<option value="${s}"${s === filter ? " selected" : ""}>${tr(s)}${s === "all" ? "" : " (" + counts[s] + ")"}</option>`).join("");
    el("town-search").placeholder = tr("search");
    el("town-count").textContent = tr("shown", { n: shown.length, m: homes.length });
    el("town-head").innerHTML = ["th_home", "th_status", "th_soc", "th_floor", "th_power", "th_reserve", "th_protocol", "th_devices"]
      .map((k) => `<th>${tr(k)}</th>`).join("");
    const body = el("town-body");
    body.textContent = "";
    const frag = document.createDocumentFragment();
    for (const h of shown) {
      const row = document.createElement("tr");
      row.dataset.home = h.id;
      row.className = "town-" + h.status;
      for (const v of [h.id, tr(h.status), f1(h.soc), f1(h.floor), f1(h.power) + " kW", h.reserve, h.protocol, String(h.devs.length)]) {
        const td = document.createElement("td"); td.textContent = v; row.appendChild(td);
      }
      row.onclick = () => { selected = h.id; renderDetail(); };
      frag.appendChild(row);
    }
    body.appendChild(frag);
    renderDetail();
  }

  function renderDetail() {
    const box = el("town-detail");
    const h = data.homes.find((x) => x.id === selected);
    if (!h) { box.hidden = true; return; }
    box.hidden = false;
    const alarms = data.alarms.filter((a) => a.active && h.devs.some((d) => a.id.startsWith("device:" + d.id)));
    el("town-detail-title").textContent = `${h.id} — ${tr(h.status)}`;
    el("town-detail-head").innerHTML = ["th_devices", "th_kind", "th_protocol", "th_status", "th_quality", "th_soc", "th_power", "th_reason"]
      .map((k) => `<th>${tr(k)}</th>`).join("");
    const body = el("town-detail-body");
    body.textContent = "";
    for (const d of h.devs) {
      const row = document.createElement("tr");
      row.dataset.device = d.id;
      for (const v of [d.id, tr(d.kind), d.protocol || "modbus", tr(d.available ? "online" : "offline"), d.quality || "—",
                       f1(d.soc_pct), f1(d.power_kw) + " kW", d.reason || ""]) {
        const td = document.createElement("td"); td.textContent = v; row.appendChild(td);
      }
      body.appendChild(row);
    }
    el("town-detail-alarms").textContent = tr("alarms") + ": " + (alarms.length ? alarms.map((a) => a.reason).join(" · ") : tr("none"));
  }

  async function refresh() {
    const view = el("view-town");
    if (!view || !view.classList.contains("active")) return;
    const [devices, alarms, status] = await Promise.all([get("/devices"), get("/alarms"), get("/status")]);
    if (!devices) return;
    data = { homes: homesOf(devices, alarms || []), alarms: alarms || [], status };
    render();
    view.dataset.loaded = String(Date.now());
  }

  function mount() {
    const view = el("view-town");
    if (!view) return;
    view.innerHTML = `<div id="town-root"><div class="flow" id="town-cards"></div>
      <div class="town-tools"><select id="town-filter" aria-label="filter"></select>
      <input id="town-search" type="search" size="10"> <span class="muted" id="town-count"></span></div>
      <div class="card" id="town-detail" hidden><h2 id="town-detail-title"></h2>
        <div class="scroll"><table class="tbl"><thead><tr id="town-detail-head"></tr></thead><tbody id="town-detail-body"></tbody></table></div>
        <p class="muted" id="town-detail-alarms"></p><button type="button" id="town-detail-close"></button></div>
      <div class="scroll town-list"><table class="tbl" id="tbl-town"><thead><tr id="town-head"></tr></thead><tbody id="town-body"></tbody></table></div></div>`;
    el("town-filter").onchange = (e) => { filter = e.target.value; render(); };
    el("town-search").oninput = (e) => { query = e.target.value.trim(); render(); };
    el("town-detail-close").onclick = () => { selected = null; renderDetail(); };
    const closeLabel = () => { el("town-detail-close").textContent = tr("close"); };
    closeLabel();
    new MutationObserver(() => { closeLabel(); render(); }).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
    new MutationObserver(refresh).observe(view, { attributes: true, attributeFilter: ["class"] });
    setInterval(refresh, 5000);
  }
  mount();
})();

// Bill view (請求明細): the real bill of a past day or month from GET /api/v1/bill — import and
// export metered separately, energy / 燃料費調整額 / 再エネ賦課金 / sold / 基本料金 — against the
// no-battery counterfactual. Self-contained: its own strings, reads the key and language the
// dashboard keeps in session/local storage; hooked by one <section> and one <script> tag.
(function () {
  "use strict";
  const S = {
    ja: { title: "請求明細 (実績・蓄電池なしとの比較)", day: "日", month: "月", home: "住戸 (空欄 = 全体)", show: "表示",
          import_kwh: "買電量 kWh", export_kwh: "売電量 kWh", energy: "電力量料金", fuel_adjustment: "燃料費調整額",
          renewable_levy: "再エネ発電賦課金", sold: "売電収入", peak_kw: "最大需要電力 kW (30分平均)",
          contract_kw: "契約電力 kW", basic_charge: "基本料金", total: "請求額 (売電控除後)",
          actual: "蓄電池あり", no_battery: "蓄電池なし", diff: "差", savings: "削減額", prices: "単価データ",
          error: "取得できません" },
    en: { title: "Bill (actual vs no battery)", day: "Day", month: "Month", home: "Home (blank = site)", show: "Show",
          import_kwh: "Import kWh", export_kwh: "Export kWh", energy: "Energy charge", fuel_adjustment: "Fuel adjustment",
          renewable_levy: "Renewable levy", sold: "Export income", peak_kw: "Peak demand kW (30-min avg)",
          contract_kw: "Contract kW", basic_charge: "Basic (demand) charge", total: "Total (net of export)",
          actual: "With battery", no_battery: "Without battery", diff: "Difference", savings: "Savings",
          prices: "Prices", error: "Unavailable" },
  };
  const ROWS = ["import_kwh", "export_kwh", "energy", "fuel_adjustment", "renewable_levy", "sold", "peak_kw",
                "contract_kw", "basic_charge", "total"];
  const lang = () => (localStorage.getItem("vpp_lang") || "ja") === "en" ? "en" : "ja";
  const t = (k) => S[lang()][k] || S.en[k] || k;
  const fmt = (x) => Number(x).toLocaleString(lang() === "ja" ? "ja-JP" : "en-GB", { maximumFractionDigits: 1 });

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function load(box) {
    const q = new URLSearchParams({ period: box.querySelector("#bill-period").value });
    const d = box.querySelector("#bill-day").value, h = box.querySelector("#bill-home").value.trim();
    if (d) q.set("day", d);
    if (h) q.set("home", h);
    const out = box.querySelector("#bill-out");
    out.textContent = "";
    let r;
    try {
      r = await fetch("/api/v1/bill?" + q, { headers: { "X-API-Key": sessionStorage.getItem("vpp_key") || "" } });
    } catch (e) { out.textContent = t("error"); return; }
    const b = await r.json().catch(() => ({}));
    if (!r.ok) { out.textContent = t("error") + " (" + r.status + "): " + (b.detail || ""); return; }
    const tbl = el("table", { class: "tbl", id: "tbl-bill" });
    const head = el("tr");
    ["", t("actual"), t("no_battery"), t("diff")].forEach((x) => head.appendChild(el("th", { class: "num" }, x)));
    tbl.appendChild(el("thead")).appendChild(head);
    const body = tbl.appendChild(el("tbody"));
    ROWS.forEach((k) => {
      const tr = body.appendChild(el("tr", { "data-row": k }));
      tr.appendChild(el("th", {}, t(k)));
      [b.actual[k], b.no_battery[k], b.actual[k] - b.no_battery[k]].forEach((v) => tr.appendChild(el("td", { class: "num" }, fmt(v))));
    });
    out.appendChild(tbl);
    out.appendChild(el("p", { class: "muted", id: "bill-savings" },
      t("savings") + ": " + fmt(b.savings) + " " + b.currency + " · " + t("prices") + ": " + b.price_version +
      " (" + b.price_sources.join(", ") + ")"));
  }

  function mount() {
    const box = document.getElementById("view-bill");
    if (!box || box.dataset.mounted) return;
    box.dataset.mounted = "1";
    box.appendChild(el("h2", {}, t("title")));
    const form = box.appendChild(el("div", { class: "period" }));
    const sel = form.appendChild(el("select", { id: "bill-period" }));
    sel.appendChild(el("option", { value: "day" }, t("day")));
    sel.appendChild(el("option", { value: "month" }, t("month")));
    form.appendChild(el("input", { id: "bill-day", type: "date" }));
    form.appendChild(el("input", { id: "bill-home", placeholder: t("home"), size: "14" }));
    const go = form.appendChild(el("button", { type: "button", id: "bill-show" }, t("show")));
    box.appendChild(el("div", { id: "bill-out" }));
    go.onclick = () => load(box);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount); else mount();
  window.vppBill = { load: () => load(document.getElementById("view-bill")) };
})();

// Ops dashboard: status over server-sent events (fetch-read so the key stays in a header),
// plan chart with the vendored plotly.js, operator actions with a confirmation dialog.
"use strict";

const I18N = {
  ja: {
    title: "運用ダッシュボード", connecting: "接続中…", live: "ライブ", disconnected: "切断",
    change_key: "キー変更", tab_overview: "概要", tab_plan: "48時間計画", tab_devices: "機器・警報", tab_actions: "操作",
    pv: "太陽光発電", battery: "蓄電池", ev: "EV充電", grid: "系統", load: "施設負荷",
    soc: "蓄電残量 (SoC)", grid_state: "系統状態", autonomy: "重要負荷の自立時間", autonomy_until: "枯渇予想", shed: "負荷遮断", shed_none: "遮断なし", load_on: "供給中", headroom: "調整余力",
    generating: "発電中", idle: "停止", discharging: "放電中 → 施設へ", charging: "充電中 ← 施設から",
    ev_charging: "充電中", importing: "買電 (系統 → 施設)", exporting: "売電 (施設 → 系統)", consuming: "消費",
    connected: "連系中", outage: "停電 (自立運転)", unknown: "不明",
    floor: "下限", reserve_state: "予備状態", up: "上げ", down: "下げ", critical_load: "重要負荷",
    devices: "機器", alarms: "警報", th_id: "ID", th_kind: "種別", th_state: "状態", th_age: "最終受信",
    th_power: "電力", th_sev: "重要度", th_alarm: "警報", th_since: "発生", th_ack: "確認",
    online: "正常", offline: "通信途絶", ack: "確認する", acked_by: "確認済",
    s_ago: "秒前", no_alarms: "警報はありません", cleared: "解除",
    operator_only: "操作はオペレーター権限のキーでのみ実行できます。", reserve_floor: "予備容量の下限",
    floor_pct: "下限 (%)", apply: "適用", storm_mode: "台風・防災モード", storm_on: "有効にする",
    storm_target: "目標残量 (%)", storm_deadline: "到達期限", override: "蓄電池の手動設定",
    setpoint: "出力 (kW, +放電 / −充電)", expiry: "有効時間", cancel: "キャンセル", confirm: "実行する",
    enter_key: "APIキーを入力してください", login: "接続",
    confirm_floor: "予備容量の下限を {v} % に変更します。よろしいですか？",
    confirm_storm_on: "防災モードを有効にします (目標 {t} %、期限 {d})。よろしいですか？",
    confirm_storm_off: "防災モードを解除します。よろしいですか？",
    confirm_override: "蓄電池を {v} kW に {m} 分間固定します。よろしいですか？",
    done: "反映しました", forbidden: "権限がありません (403)", error: "エラー",
    storm_banner: "防災モード: {d} までに蓄電残量を {t} % へ", lost_store: "データ保存先に接続できません",
    lost_devices: "通信途絶: {ids} — この値は最新ではありません", lost_stream: "サーバーとの接続が切れました — 表示は最新ではありません",
    plan_made: "計画作成", no_plan: "計画はまだありません", pv_fc: "太陽光予測", load_fc: "負荷予測",
    bat_plan: "蓄電池計画 (+放電)", soc_plan: "SoC 計画", floor_line: "予備下限", buy: "買電単価", sell: "売電単価",
    power_axis: "電力 [kW]", soc_axis: "SoC [%]", price_axis: "単価 [{c}/kWh]", hours: "時間",
    setpoint_src: "指令", bad_key: "キーが無効です (401)", need_deadline: "期限を入力してください",
    tab_vpp: "VPP", tab_costs: "光熱費・CO2", tab_town: "町",
    dispatches: "出動指令 (ディスパッチ)", awards: "落札 (アワード)", offers: "入札 (オファー)",
    th_window: "時間帯", th_type: "種別", th_request: "指令", th_accepted: "受諾", th_status: "状態",
    th_delivered: "実績", th_compliance: "達成率", th_dir: "方向", th_awarded: "落札量", th_reason: "理由",
    th_capacity: "容量", th_energy: "電力量", th_price: "単価", th_created: "登録", th_slot: "コマ",
    th_baseline: "ベースライン", th_metered: "計測", th_instructed: "指令量", th_delivered_kw: "実績 (kW)",
    th_delivered_kwh: "実績 (kWh)",
    ph_accepted: "受諾", ph_partial: "一部受諾", ph_rejected: "拒否", ph_cancelled: "取消", ph_executing: "実行中",
    ph_done: "完了", ph_refused: "拒否", ph_suspended: "停止中 (嵐モード)",
    dir_up: "上げ (放電)", dir_down: "下げ (充電)", k_setpoint: "出力指定", k_delta: "増減", k_soc_target: "SoC 目標",
    none_yet: "まだありません", vpp_meta: "過去 {d} 日と今後 · 集計値のみ · 更新 {t}",
    perf_title: "コマ別実績: {w}", perf_meta: "ベースライン {m} · 実績 {d} kWh / 指令 {i} kWh",
    perf_na: "実績はまだありません (開始前)", waiting: "開始待ち", perf_running: "ベースライン {m} · 終了したコマはまだありません", m_plan: "計画", m_high4of5: "High 4 of 5", recorded: "精算台帳に記録済", r_reserve_floor: "予備容量の下限", r_storm_mode: "防災モード",
    r_device_unavailable: "機器停止", r_outside_award: "落札範囲外",
    today: "今日", this_month: "今月", bought: "買電量", sold: "売電量", cost: "電気代",
    savings: "蓄電池による削減額", co2_avoided: "CO2 削減量", vpp_revenue: "VPP 収入",
    with_battery: "蓄電池あり (実績)", without_battery: "蓄電池なしの場合", difference: "差 (あり − なし)",
    cost_note: "蓄電池なしの場合 = 系統 + 蓄電池の電力量を同じ料金 (時間帯別単価・売電単価) で計算。30分ごとに買電・売電を相殺。",
    no_battery_was: "蓄電池なし: {v}", bat_moved: "放電 {d} · 充電 {c}", co2_detail: "排出 {e} (係数 {f} kg/kWh)",
    vpp_detail: "容量 {c} · 電力量 {e} ({k})", cost_meta: "{a} – {b} · 計測 {m}/{n} コマ",
    row_bought: "買電量", row_sold: "売電量", row_cost: "電気代", row_co2: "CO2 排出量", no_metering: "計測データがありません",
    simulated: "シミュレーション ×{n}",
  },
  en: {
    title: "Operations dashboard", connecting: "connecting…", live: "live", disconnected: "disconnected",
    change_key: "Change key", tab_overview: "Overview", tab_plan: "Next 48 h", tab_devices: "Devices & alarms", tab_actions: "Actions",
    pv: "PV", battery: "Battery", ev: "EV charging", grid: "Grid", load: "Site load",
    soc: "State of charge", grid_state: "Grid state", autonomy: "Critical-load autonomy", autonomy_until: "runs out", shed: "Load shed", shed_none: "none shed", load_on: "on", headroom: "Flexibility headroom",
    generating: "generating", idle: "idle", discharging: "discharging → site", charging: "charging ← site",
    ev_charging: "charging", importing: "importing (grid → site)", exporting: "exporting (site → grid)", consuming: "consuming",
    connected: "connected", outage: "outage (islanded)", unknown: "unknown",
    floor: "floor", reserve_state: "reserve", up: "up", down: "down", critical_load: "critical load",
    devices: "Devices", alarms: "Alarms", th_id: "ID", th_kind: "Kind", th_state: "State", th_age: "Last reading",
    th_power: "Power", th_sev: "Severity", th_alarm: "Alarm", th_since: "Since", th_ack: "Ack",
    online: "online", offline: "offline", ack: "Acknowledge", acked_by: "acked",
    s_ago: "s ago", no_alarms: "No alarms", cleared: "cleared",
    operator_only: "Actions need an operator key.", reserve_floor: "Reserve floor",
    floor_pct: "Floor (%)", apply: "Apply", storm_mode: "Storm mode", storm_on: "enable",
    storm_target: "Target SoC (%)", storm_deadline: "Deadline", override: "Manual battery setpoint",
    setpoint: "Power (kW, + discharge / − charge)", expiry: "Expires after", cancel: "Cancel", confirm: "Confirm",
    enter_key: "Enter your API key", login: "Connect",
    confirm_floor: "Change the reserve floor to {v} %?",
    confirm_storm_on: "Enable storm mode (target {t} %, deadline {d})?",
    confirm_storm_off: "Disable storm mode?",
    confirm_override: "Hold the battery at {v} kW for {m} min?",
    done: "Applied", forbidden: "Not allowed (403)", error: "Error",
    storm_banner: "Storm mode: raising SoC to {t} % by {d}", lost_store: "Telemetry store unavailable",
    lost_devices: "No data from: {ids} — values are not live", lost_stream: "Connection to the server lost — values are not live",
    plan_made: "plan made", no_plan: "no plan yet", pv_fc: "PV forecast", load_fc: "Load forecast",
    bat_plan: "Battery plan (+ discharge)", soc_plan: "SoC plan", floor_line: "Reserve floor", buy: "Buy price", sell: "Sell price",
    power_axis: "Power [kW]", soc_axis: "SoC [%]", price_axis: "Price [{c}/kWh]", hours: "h",
    setpoint_src: "command", bad_key: "Invalid key (401)", need_deadline: "Enter a deadline",
    tab_vpp: "VPP", tab_costs: "Cost & CO2", tab_town: "Town",
    dispatches: "Dispatches", awards: "Awards", offers: "Offers",
    th_window: "Window", th_type: "Type", th_request: "Request", th_accepted: "Accepted", th_status: "Status",
    th_delivered: "Delivered", th_compliance: "Compliance", th_dir: "Direction", th_awarded: "Awarded", th_reason: "Reason",
    th_capacity: "Capacity", th_energy: "Energy", th_price: "Price", th_created: "Created", th_slot: "Slot",
    th_baseline: "Baseline", th_metered: "Metered", th_instructed: "Instructed", th_delivered_kw: "Delivered (kW)",
    th_delivered_kwh: "Delivered (kWh)",
    ph_accepted: "accepted", ph_partial: "partial", ph_rejected: "rejected", ph_cancelled: "cancelled", ph_executing: "executing",
    ph_done: "done", ph_refused: "refused", ph_suspended: "suspended (storm mode)",
    dir_up: "up (discharge)", dir_down: "down (charge)", k_setpoint: "setpoint", k_delta: "delta", k_soc_target: "SoC target",
    none_yet: "None yet", vpp_meta: "last {d} days and ahead · site aggregates only · updated {t}",
    perf_title: "Per-slot performance: {w}", perf_meta: "baseline {m} · delivered {d} kWh of {i} kWh instructed",
    perf_na: "no performance yet (not started)", waiting: "waiting", perf_running: "baseline {m} · no slot is over yet", m_plan: "plan", m_high4of5: "High 4 of 5", recorded: "recorded in the settlement ledger", r_reserve_floor: "reserve floor", r_storm_mode: "storm mode",
    r_device_unavailable: "device unavailable", r_outside_award: "outside award",
    today: "Today", this_month: "This month", bought: "Bought", sold: "Sold", cost: "Energy cost",
    savings: "Saved by the battery", co2_avoided: "CO2 avoided", vpp_revenue: "VPP revenue",
    with_battery: "With battery (actual)", without_battery: "Without battery", difference: "Difference (with − without)",
    cost_note: "Without battery = grid + battery energy, priced with the same tariff (time-of-use buy, sell price). Import and export are netted per 30 min.",
    no_battery_was: "without battery: {v}", bat_moved: "discharged {d} · charged {c}", co2_detail: "emitted {e} (factor {f} kg/kWh)",
    vpp_detail: "capacity {c} · energy {e} ({k})", cost_meta: "{a} – {b} · metered {m}/{n} slots",
    row_bought: "Bought", row_sold: "Sold", row_cost: "Energy cost", row_co2: "CO2 emitted", no_metering: "no metered data",
    simulated: "simulated ×{n}",
  },
};

let lang = localStorage.getItem("vpp_lang") || "ja";
let key = sessionStorage.getItem("vpp_key") || "";
let last = { status: null, devices: [], alarms: [], plan: null, at: 0, vpp: null, perf: {}, costs: null };
let costPeriod = "today", perfSel = null;
let role = null;
let streamAbort = null;

const $ = (id) => document.getElementById(id);
const t = (k, vars) => {
  let s = (I18N[lang] && I18N[lang][k]) || I18N.en[k] || k;
  for (const [n, v] of Object.entries(vars || {})) s = s.replace("{" + n + "}", v);
  return s;
};
const num = (x, d = 1) => (x === null || x === undefined || !isFinite(x)) ? null : Number(x).toFixed(d);
const kw = (x) => num(Math.abs(x), 1) === null ? "—" : num(Math.abs(x), 1) + " kW";

// ---------------------------------------------------------------- site time
// Every time on the page is the site's wall-clock time in the site's zone (an IANA name from
// /status, /plan or /costs), whatever the browser's zone: a server's browser runs in UTC, an
// operator may be abroad. Until the zone is known times show in UTC, labelled so.
let siteTz = null;
function learnZone(d) {
  if (!d || !d.timezone || d.timezone === siteTz) return false;
  siteTz = d.timezone;
  fmtCache.clear();
  return true;
}
const zone = () => siteTz || "UTC";
const fmtCache = new Map();
function formatter(opts) {
  const k = lang + "|" + JSON.stringify(opts);
  if (!fmtCache.has(k)) fmtCache.set(k, new Intl.DateTimeFormat(lang === "ja" ? "ja-JP" : "en-GB",
    Object.assign({ timeZone: zone() }, opts)));
  return fmtCache.get(k);
}
const DAY_TIME = { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
const fmtTime = (iso) => iso ? formatter(DAY_TIME).format(new Date(iso)) + (siteTz ? "" : " UTC") : "—";
// [ms] the site zone's offset from UTC at instant ``ms`` (from its wall-clock reading there)
function zoneOffsetMs(ms) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-GB", { timeZone: zone(), hourCycle: "h23",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
    .formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
}
// an <input type=datetime-local> value ("YYYY-MM-DDTHH:MM") read as the site's wall clock → ISO (UTC)
function siteWallToIso(v) {
  const wall = Date.parse(v + ":00Z");
  let ms = wall - zoneOffsetMs(wall);
  ms = wall - zoneOffsetMs(ms);  // the second pass settles a guess that crossed a DST change
  return new Date(ms).toISOString();
}

function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $("lang").textContent = lang === "ja" ? "English" : "日本語";
  document.title = "VPP " + t("title");
  render();
  if (last.plan) drawPlan(last.plan);
  renderTables();
  renderVpp();
  renderCosts();
}

async function api(method, path, body) {
  const r = await fetch("/api/v1" + path, {
    method, headers: Object.assign({ "X-API-Key": key }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { status: r.status, ok: r.ok, data };
}

function detailText(d) {
  if (!d) return "";
  if (typeof d.detail === "string") return d.detail;
  if (Array.isArray(d.detail)) return d.detail.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ");
  return JSON.stringify(d);
}

// ---------------------------------------------------------------- rendering
function setCard(name, valueKw, dirKey, lost) {
  const card = $("card-" + name);
  card.classList.toggle("lost", !!lost);
  $("v-" + name).textContent = lost ? t("offline") : kw(valueKw);
  $("d-" + name).textContent = lost ? "" : (dirKey ? t(dirKey) : "");
}

function render() {
  const s = last.status;
  if (!s) return;
  $("site-name").textContent = s.site;
  // the site's time once; a simulated site (accelerated clock) says so
  $("clock").textContent = fmtTime(s.ts);
  $("clock-sim").hidden = !s.simulated;
  $("clock-sim").textContent = s.simulated ? t("simulated", { n: s.speed }) : "";
  const f = s.flow, missing = new Set(f.missing || []);
  const lostKind = (kind) => (last.devices || []).some((d) => d.kind === kind && !d.available);
  const pvLost = f.pv_kw === null, batLost = f.battery_kw === null, evLost = f.ev_kw === null, gridLost = f.grid_kw === null;
  setCard("pv", f.pv_kw, f.pv_kw > 0.05 ? "generating" : "idle", pvLost);
  setCard("battery", f.battery_kw, f.battery_kw > 0.05 ? "discharging" : f.battery_kw < -0.05 ? "charging" : "idle", batLost);
  setCard("ev", f.ev_kw, f.ev_kw > 0.05 ? "ev_charging" : "idle", evLost);
  setCard("grid", f.grid_kw, f.grid_kw > 0.05 ? "importing" : f.grid_kw < -0.05 ? "exporting" : "idle", gridLost);
  setCard("load", f.load_kw, "consuming", f.load_kw === null);

  const b = s.battery;
  const socLost = b.soc_pct === null;
  $("card-soc").classList.toggle("lost", socLost);
  $("soc-fill").style.width = socLost ? "0%" : Math.max(0, Math.min(100, b.soc_pct)) + "%";
  $("soc-floor").style.left = (b.floor_pct || 0) + "%";
  $("soc-floor-lbl").textContent = t("floor") + " " + num(b.floor_pct) + " %";
  $("v-soc").textContent = socLost ? t("offline") : num(b.soc_pct) + " %";
  $("v-reserve").textContent = t("reserve_state") + ": " + (b.reserve_state || "—") +
    (b.reserve_reason ? " (" + b.reserve_reason + ")" : "") + " · " + num(b.capacity_kwh, 0) + " kWh";
  const g = s.grid;
  $("v-gridstate").textContent = t(g.state);
  $("v-gridstate").style.color = g.state === "connected" ? "var(--ok)" : "var(--bad)";
  $("v-gridvf").textContent = (g.voltage_v != null ? num(g.voltage_v, 0) + " V · " : "") + (g.frequency_hz != null ? num(g.frequency_hz, 2) + " Hz" : "");
  $("v-autonomy").textContent = b.autonomy_h == null ? "—" : num(b.autonomy_h) + " " + t("hours");
  // when the usable energy runs out at the present load, in the site's zone
  $("v-autonomy-until").textContent = b.autonomy_until ? t("autonomy_until") + " " + fmtTime(b.autonomy_until) : "";
  const loads = b.loads || [];
  $("v-shed").textContent = !loads.length ? "" : t("shed") + ": " + ((b.shed || []).length ? b.shed.join(", ") : t("shed_none"));
  $("v-shed").dataset.state = (b.shed || []).length ? "shed" : "none";
  const h = b.headroom || {};
  $("v-headroom").textContent = h.up_kw === null || h.up_kw === undefined ? "—" : "↑ " + t("up") + " " + num(h.up_kw) + " kW";
  $("v-headroom-down").textContent = h.down_kw === null || h.down_kw === undefined ? "" : "↓ " + t("down") + " " + num(h.down_kw) + " kW";
  const dec = s.decisions ? Object.values(s.decisions)[0] : null;
  $("v-decision").textContent = dec ? t("setpoint_src") + ": " + num(dec.setpoint_kw) + " kW (" + dec.source + ")" : "";

  const storm = $("banner-storm");
  storm.hidden = !b.storm.active;
  if (b.storm.active) storm.textContent = "⚠ " + t("storm_banner", { t: num(b.storm.target_pct, 0), d: fmtTime(b.storm.deadline) });
  renderLost();
  renderTables();
}

function streamStale() { return !last.at || Date.now() - last.at > 6000; }

function renderLost() {
  const s = last.status, msgs = [];
  if (streamStale() && s) msgs.push(t("lost_stream"));
  if (s && !s.store.up) msgs.push(t("lost_store"));
  const lost = (last.devices || []).filter((d) => !d.available).map((d) => d.id);
  const missing = lost.length ? lost : (s && s.flow.missing) || [];
  if (missing.length) msgs.push(t("lost_devices", { ids: missing.join(", ") }));
  const el = $("banner-lost");
  el.hidden = msgs.length === 0;
  el.textContent = msgs.join(" · ");
  document.body.classList.toggle("stale", streamStale());
  const c = $("conn");
  c.className = "pill " + (streamStale() ? "bad" : "ok");
  c.textContent = streamStale() ? t("disconnected") : t("live");
}

function renderTables() {
  const tb = $("dev-body");
  tb.innerHTML = "";
  for (const d of last.devices || []) {
    const tr = document.createElement("tr");
    tr.className = d.available ? "" : "offline";
    tr.dataset.device = d.id;
    const cells = [d.id, d.kind + (d.home ? " · " + d.home : ""),
      d.available ? t("online") : t("offline") + (d.reason ? " (" + d.reason + ")" : ""),
      d.age_s === null ? "—" : num(d.age_s, 0) + " " + t("s_ago"),
      d.power_kw === null ? "—" : num(d.power_kw, 2) + " kW",
      d.soc_pct === null ? "—" : num(d.soc_pct) + " %"];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    tb.appendChild(tr);
  }
  const ab = $("alarm-body");
  ab.innerHTML = "";
  const rows = (last.alarms || []).filter((a) => a.active);
  if (!rows.length) { ab.innerHTML = "<tr><td colspan=4></td></tr>"; ab.firstChild.firstChild.textContent = t("no_alarms"); }
  for (const a of rows) {
    const tr = document.createElement("tr");
    tr.dataset.alarm = a.id;
    const sev = document.createElement("td"); sev.textContent = a.severity; sev.className = "sev-" + a.severity;
    const txt = document.createElement("td"); txt.textContent = a.id + ": " + a.reason;
    const since = document.createElement("td"); since.textContent = fmtTime(a.raised_at);
    const ack = document.createElement("td");
    if (a.acked) ack.textContent = t("acked_by") + " (" + a.acked_by + ")";
    else {
      const btn = document.createElement("button"); btn.textContent = t("ack"); btn.className = "ack";
      btn.onclick = () => doAck(a.id); ack.appendChild(btn);
    }
    tr.append(sev, txt, since, ack);
    ab.appendChild(tr);
  }
}

// ---------------------------------------------------------------- VPP
const grouped = (x, d) => Number(x).toLocaleString(lang === "ja" ? "ja-JP" : "en-GB",
  { minimumFractionDigits: d, maximumFractionDigits: d });
const unit = (x, u, d = 1) => (x === null || x === undefined || !isFinite(x)) ? "—" : grouped(x, d) + " " + u;
const curName = (c) => c === "JPY" ? (lang === "ja" ? "円" : "JPY") : (c || "");
const money = (x, c, d = 0) => unit(x, curName(c), d);
const pct = (x) => (x === null || x === undefined || !isFinite(x)) ? "—" : num(100 * x, 0) + " %";
function fmtWindow(a, b) {
  const s = formatter(DAY_TIME).format(new Date(a));
  const e = formatter({ hour: "2-digit", minute: "2-digit" }).format(new Date(b));
  return s + "–" + e + (siteTz ? "" : " UTC");
}
function cell(tr, text, cls) {
  const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td;
}
function fillRows(id, rows, cols, build) {
  const tb = $(id);
  tb.innerHTML = "";
  if (!rows.length) { const tr = document.createElement("tr"); cell(tr, t("none_yet")).colSpan = cols; tb.appendChild(tr); return; }
  for (const r of rows) { const tr = document.createElement("tr"); build(tr, r); tb.appendChild(tr); }
}
const phasePill = (tr, ph, suffix) => { const td = cell(tr, ""); const sp = document.createElement("span");
  sp.className = "pill ph-" + ph; sp.textContent = t("ph_" + ph) + (suffix ? " · " + suffix : ""); td.appendChild(sp); return td; };

async function refreshVpp() {
  const r = await api("GET", "/vpp/activity");
  if (!r.ok) { $("vpp-meta").textContent = t("error") + " (" + r.status + "): " + detailText(r.data); return; }
  last.vpp = r.data;
  // performance exists once a dispatch has started (and is recorded in the ledger once it is over)
  const started = (d) => d.phase === "executing" || d.phase === "suspended" || d.phase === "done" || (d.phase === "cancelled" && Date.parse(d.start) < Date.parse(r.data.now));
  await Promise.all(r.data.dispatches.filter(started).slice(0, 10).map(async (d) => {
    const p = await api("GET", "/dispatches/" + encodeURIComponent(d.id) + "/performance");
    last.perf[d.id] = p.ok ? p.data : { error: detailText(p.data) };
  }));
  if (!perfSel && r.data.dispatches.length) perfSel = r.data.dispatches[0].id;
  renderVpp();
}

// Slots of a performance that are over at ``nowIso`` and their totals: a running or future
// slot has no complete metering yet, so it is shown as "—" and left out of the totals.
function settledPerf(p, nowIso) {
  const now = Date.parse(nowIso), over = (x) => Date.parse(x.start) + 1800e3 <= now;
  const slots = (p.slots || []).map((x) => Object.assign({ over: over(x) }, x));
  const done = slots.filter((x) => x.over);
  const d = done.reduce((a, x) => a + x.delivered_kwh, 0), i = done.reduce((a, x) => a + x.instructed_kwh, 0);
  return { slots, any: done.length > 0, delivered_kwh: d, instructed_kwh: i, compliance: i > 0 ? d / i : null };
}

function renderVpp() {
  const v = last.vpp;
  if (!v) return;
  $("vpp-meta").textContent = t("vpp_meta", { d: v.days, t: fmtTime(v.now) });
  fillRows("dispatch-body", v.dispatches, 7, (tr, d) => {
    const p = last.perf[d.id] && last.perf[d.id].slots ? settledPerf(last.perf[d.id], v.now) : { any: false };
    tr.dataset.dispatch = d.id;
    tr.className = "clickable" + (d.id === perfSel ? " selected" : "");
    tr.onclick = () => { perfSel = d.id; renderVpp(); };
    cell(tr, fmtWindow(d.start, d.end));
    cell(tr, t("k_" + d.type) + " · " + t("dir_" + d.direction));
    cell(tr, d.type === "soc_target" ? num(100 * d.soc_target, 0) + " %" : unit(d.value_kw, "kW"));
    cell(tr, unit(d.accepted_kw, "kW") + (d.reasons.length ? " (" + d.reasons.map((x) => t("r_" + x)).join(", ") + ")" : ""));
    phasePill(tr, d.phase, d.phase === "accepted" || d.phase === "partial" ? t("waiting") : "");
    cell(tr, p.any ? unit(p.delivered_kwh, "kWh", 2) + " / " + unit(p.instructed_kwh, "kWh", 2) : "—");
    cell(tr, p.any ? pct(p.compliance) : "—");
  });
  fillRows("award-body", v.awards, 6, (tr, a) => {
    tr.dataset.award = a.id;
    cell(tr, fmtWindow(a.start, a.end));
    cell(tr, t("dir_" + a.direction));
    cell(tr, unit(a.awarded_kw, "kW") + " · " + unit(a.awarded_kwh, "kWh"));
    cell(tr, unit(a.accepted_kw, "kW") + " · " + unit(a.accepted_kwh, "kWh"));
    phasePill(tr, a.status);
    cell(tr, a.reasons.map((x) => t("r_" + x)).join(", ") || "—");
  });
  fillRows("offer-body", v.offers, 6, (tr, o) => {
    tr.dataset.offer = o.id;
    cell(tr, fmtWindow(o.start, o.end));
    cell(tr, t("dir_" + o.direction));
    cell(tr, unit(o.max_kw, "kW"));
    cell(tr, unit(o.energy_kwh, "kWh"));
    cell(tr, o.price_per_kwh === null ? "—" : money(o.price_per_kwh, last.costs ? last.costs.currency : "JPY", 1) + "/kWh");
    cell(tr, fmtTime(o.created_at));
  });
  const d = v.dispatches.find((x) => x.id === perfSel), raw = d && last.perf[d.id];
  $("perf-card").hidden = !d;
  if (!d) return;
  $("perf-title").textContent = t("perf_title", { w: fmtWindow(d.start, d.end) });
  $("tbl-perf").hidden = !raw || !!raw.error || !raw.slots;
  if ($("tbl-perf").hidden) {
    $("perf-meta").textContent = t("perf_na") + (raw && raw.error ? " (" + raw.error + ")" : "");
    return;
  }
  const p = settledPerf(raw, v.now);
  $("perf-meta").textContent = (p.any ? t("perf_meta", { m: t("m_" + raw.method), d: num(p.delivered_kwh, 2), i: num(p.instructed_kwh, 2) })
    : t("perf_running", { m: t("m_" + raw.method) })) + (raw.recorded ? " · " + t("recorded") : "");
  fillRows("perf-body", p.slots, 7, (tr, x) => {
    const over = (f) => x.over ? f : "—";
    tr.className = x.over ? "" : "pending";
    cell(tr, fmtTime(x.start));
    cell(tr, unit(x.baseline_kw, "kW"));
    cell(tr, over(unit(x.metered_kw, "kW")));
    cell(tr, unit(x.instructed_kw, "kW"));
    cell(tr, over(unit(x.delivered_kw, "kW")));
    cell(tr, over(unit(x.delivered_kwh, "kWh", 2)));
    cell(tr, over(pct(x.compliance)));
  });
}

// ---------------------------------------------------------------- cost and CO2
async function refreshCosts() {
  const r = await api("GET", "/costs?period=" + costPeriod);
  if (!r.ok) {
    // no numbers rather than old numbers shown as current
    last.costs = null;
    document.querySelectorAll("#view-costs .card .val, #view-costs .card .muted").forEach((el) => { el.textContent = "—"; });
    $("cost-body").innerHTML = "";
    $("cost-meta").textContent = t("error") + " (" + r.status + "): " + detailText(r.data);
    return;
  }
  last.costs = r.data;
  if (learnZone(r.data)) applyLang();
  renderCosts();
}

function renderCosts() {
  const c = last.costs;
  document.querySelectorAll(".period-btn").forEach((b) => b.classList.toggle("active", b.dataset.period === costPeriod));
  if (!c) return;
  const a = c.actual, nb = c.no_battery, cur = c.currency;
  // the period is the site's local day or month: its bounds in the site's time zone
  $("cost-meta").textContent = t("cost_meta", { a: fmtTime(c.start), b: fmtTime(c.end), m: c.metered_slots, n: c.slots }) +
    " (" + c.timezone + ")" +
    (c.metered_slots ? "" : " · " + t("no_metering"));
  $("cv-bought").textContent = unit(a.bought_kwh, "kWh");
  $("cv-bought-nb").textContent = t("no_battery_was", { v: unit(nb.bought_kwh, "kWh") });
  $("cv-sold").textContent = unit(a.sold_kwh, "kWh");
  $("cv-sold-nb").textContent = t("no_battery_was", { v: unit(nb.sold_kwh, "kWh") });
  $("cv-cost").textContent = money(a.cost, cur);
  $("cv-cost-nb").textContent = t("no_battery_was", { v: money(nb.cost, cur) });
  $("cv-savings").textContent = money(c.savings, cur);
  $("cv-battery").textContent = t("bat_moved", { d: unit(c.battery_discharged_kwh, "kWh"), c: unit(c.battery_charged_kwh, "kWh") });
  $("cv-co2").textContent = unit(c.co2_avoided_kg, "kg-CO2");
  $("cv-co2-detail").textContent = t("co2_detail", { e: unit(a.co2_kg, "kg-CO2"), f: c.co2_kg_per_kwh });
  $("cv-vpp").textContent = money(c.vpp.total, cur);
  $("cv-vpp-detail").textContent = t("vpp_detail", { c: money(c.vpp.capacity, cur), e: money(c.vpp.energy, cur),
    k: unit(c.vpp.delivered_kwh, "kWh") });
  const rows = [["row_bought", a.bought_kwh, nb.bought_kwh, (x) => unit(x, "kWh")],
    ["row_sold", a.sold_kwh, nb.sold_kwh, (x) => unit(x, "kWh")],
    ["row_cost", a.cost, nb.cost, (x) => money(x, cur)],
    ["row_co2", a.co2_kg, nb.co2_kg, (x) => unit(x, "kg-CO2")]];
  fillRows("cost-body", rows, 4, (tr, [k, x, y, f]) => {
    const th = document.createElement("th"); th.textContent = t(k); tr.appendChild(th);
    cell(tr, f(x), "num"); cell(tr, f(y), "num"); cell(tr, f(x - y), "num");
  });
}
document.querySelectorAll(".period-btn").forEach((b) => {
  b.onclick = () => { costPeriod = b.dataset.period; renderCosts(); refreshCosts(); };
});

// ---------------------------------------------------------------- plan chart
let plotlyLoading = null;
function loadPlotly() {
  if (window.Plotly) return Promise.resolve();
  if (!plotlyLoading) plotlyLoading = new Promise((res, rej) => {
    const s = document.createElement("script"); s.src = "/static/plotly.min.js"; s.onload = res; s.onerror = rej;
    document.head.appendChild(s);
  });
  return plotlyLoading;
}

async function refreshPlan() {
  const r = await api("GET", "/plan");
  if (!r.ok) return;
  last.plan = r.data;
  if (learnZone(r.data)) applyLang();
  if ($("view-plan").classList.contains("active")) drawPlan(r.data);
}

async function drawPlan(p) {
  $("plan-meta").textContent = p.made_at ? t("plan_made") + ": " + fmtTime(p.made_at) + " · " + zone() : t("no_plan") + (p.reason ? " (" + p.reason + ")" : "");
  if (!p.slots || !p.slots.length) return;
  await loadPlotly();
  // plotly shows date strings as written: give it the site's wall-clock time
  const fmt = new Intl.DateTimeFormat("sv-SE", { timeZone: zone(), year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
  const x = p.slots.map((s) => fmt.format(new Date(s.start))), col = (k) => p.slots.map((s) => s[k]);
  const cur = p.currency === "JPY" ? (lang === "ja" ? "円" : "JPY") : p.currency;
  const data = [
    { x, y: col("pv_kw"), name: t("pv_fc"), type: "scatter", line: { color: "#e0a000" }, yaxis: "y" },
    { x, y: col("load_kw"), name: t("load_fc"), type: "scatter", line: { color: "#555" }, yaxis: "y" },
    { x, y: col("battery_kw"), name: t("bat_plan"), type: "bar", marker: { color: "#2a8a4a" }, yaxis: "y" },
    { x, y: col("soc_pct"), name: t("soc_plan"), type: "scatter", line: { color: "#0b5cad", width: 3 }, yaxis: "y2" },
    { x, y: col("floor_pct"), name: t("floor_line"), type: "scatter", line: { color: "#b00020", dash: "dash" }, yaxis: "y2" },
    { x, y: col("buy_per_kwh"), name: t("buy"), type: "scatter", line: { shape: "hv", color: "#7a3fa0" }, yaxis: "y3" },
    { x, y: col("sell_per_kwh"), name: t("sell"), type: "scatter", line: { shape: "hv", color: "#3fa08a" }, yaxis: "y3" },
  ];
  if (window.planBand) window.planBand(p, data, lang);  // SoC band, storm target, "why" (planband.js)
  const layout = {
    margin: { l: 70, r: 20, t: 20, b: 40 }, legend: { orientation: "h", y: -0.08 }, font: { size: 14 },
    grid: { rows: 3, columns: 1, roworder: "top to bottom" }, hovermode: "x unified",
    yaxis: { title: { text: t("power_axis") }, domain: [0.55, 1] },
    yaxis2: { title: { text: t("soc_axis") }, range: [0, 100], domain: [0.25, 0.5] },
    yaxis3: { title: { text: t("price_axis", { c: cur }) }, domain: [0, 0.2] },
    xaxis: { type: "date", anchor: "y3" },
  };
  Plotly.react("plan-chart", data, layout, { displaylogo: false, responsive: true });
}

// ---------------------------------------------------------------- actions
function confirmDialog(text) {
  return new Promise((res) => {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    d.onclose = () => {
      if (d.returnValue === "ok") { $("action-msg").className = "msg"; $("action-msg").textContent = "…"; }
      res(d.returnValue === "ok");
    };
    d.returnValue = "";
    d.showModal();
  });
}

function showMsg(r) {
  const m = $("action-msg");
  if (r.ok) { m.className = "msg ok"; m.textContent = t("done"); return; }
  m.className = "msg err";
  const head = r.status === 403 ? t("forbidden") : r.status === 401 ? t("bad_key") : t("error") + " (" + r.status + ")";
  m.textContent = head + ": " + detailText(r.data);
}

async function doAck(id) {
  const r = await api("POST", "/alarms/" + encodeURIComponent(id) + "/ack");
  showMsg(r);
  if (!r.ok) { showTab("actions"); return; }
  await refreshAlarms();
}

async function putReserve(body) {
  const r = await api("PUT", "/reserve", body);
  showMsg(r);
  if (r.ok) { await refreshStatus(); refreshPlan(); }
}

async function refreshAlarms() {
  const a = await api("GET", "/alarms"); if (a.ok) { last.alarms = a.data; renderTables(); }
}

$("f-floor").onsubmit = async (e) => {
  e.preventDefault();
  const v = $("in-floor").value;
  if (!(await confirmDialog(t("confirm_floor", { v })))) return;
  await putReserve({ floor_pct: Number(v) });
};

$("f-storm").onsubmit = async (e) => {
  e.preventDefault();
  const on = $("in-storm").checked, tgt = $("in-storm-target").value, dl = $("in-storm-deadline").value;
  if (on && !dl) { showMsg({ ok: false, status: 422, data: { detail: t("need_deadline") } }); return; }
  // the deadline is typed on the site's wall clock
  const text = on ? t("confirm_storm_on", { t: tgt, d: dl.replace("T", " ") + " (" + zone() + ")" }) : t("confirm_storm_off");
  if (!(await confirmDialog(text))) return;
  const body = on ? { storm: true, storm_target_pct: Number(tgt), storm_deadline: siteWallToIso(dl) } : { storm: false };
  await putReserve(body);
};

$("f-override").onsubmit = async (e) => {
  e.preventDefault();
  const v = $("in-sp").value, m = Number($("in-exp").value);
  if (!(await confirmDialog(t("confirm_override", { v, m })))) return;
  // the expiry is on the site's clock (a simulated site runs ahead of or behind the browser's)
  const exp = new Date(siteNow() + m * 60000).toISOString();
  const dev = $("in-bat").value || undefined;
  showMsg(await api("POST", "/override", { device: dev, setpoint_kw: Number(v), expires_at: exp }));
};

// ---------------------------------------------------------------- data flow
// The site's time [ms since epoch]: the last status `ts` advanced by the time since it
// arrived (monotonic: immune to the browser's clock being set) × the site's clock speed
// (1 unless simulated). The browser's own date is never used: it may be off, and a simulated
// site runs hours away from it.
function siteNow() {
  const s = last.status;
  if (!s || !s.ts || last.mono === undefined) return Date.now();
  return Date.parse(s.ts) + Math.max(0, performance.now() - last.mono) * (s.speed || 1);
}

async function refreshStatus() {
  const r = await api("GET", "/status");
  if (r.status === 401) { askKey(t("bad_key")); return; }
  if (r.ok) { learnZone(r.data); last.status = r.data; last.at = Date.now(); last.mono = performance.now(); render(); }
}

function fillBatteries() {
  const sel = $("in-bat"), ids = last.devices.filter((d) => d.kind === "battery").map((d) => d.id);
  if (sel.options.length === ids.length) return;
  sel.innerHTML = "";
  for (const id of ids) { const o = document.createElement("option"); o.value = o.textContent = id; sel.appendChild(o); }
}

function handleEvent(chunk) {
  let data = "";
  for (const line of chunk.split("\n")) if (line.startsWith("data:")) data += line.slice(5).trim();
  if (!data) return;
  const p = JSON.parse(data);
  learnZone(p.status);
  last.status = p.status;
  // reading → streamed status latency [ms]: the wall-clock age of the newest reading when the status was built (shown in tests)
  if (p.status.newest_reading_age_s != null) window.vppLatencyMs = (window.vppLatencyMs || []).concat(1000 * p.status.newest_reading_age_s).slice(-50);
  if (p.devices) { last.devices = p.devices; fillBatteries(); }
  if (p.alarms) last.alarms = p.alarms;
  last.at = Date.now();
  last.mono = performance.now();
  render();
  if (last.status && last.status.battery && $("in-floor").value === "") $("in-floor").value = last.status.battery.floor_setting_pct;
}

async function stream() {
  if (streamAbort) streamAbort.abort();
  const ctrl = new AbortController();
  streamAbort = ctrl;
  while (!ctrl.signal.aborted) {
    try {
      const r = await fetch("/api/v1/stream", { headers: { "X-API-Key": key }, signal: ctrl.signal });
      if (r.status === 401) { askKey(t("bad_key")); return; }
      if (r.ok) {
        const reader = r.body.getReader(), dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) { handleEvent(buf.slice(0, i)); buf = buf.slice(i + 2); }
        }
      }
    } catch (e) { if (ctrl.signal.aborted) return; }
    renderLost();
    await new Promise((res) => setTimeout(res, 2000));
  }
}

async function start() {
  const me = await api("GET", "/me");
  if (!me.ok) { askKey(me.status === 401 ? t("bad_key") : ""); return; }
  role = me.data.role;
  $("who").textContent = me.data.name + " (" + role + ")";
  // learn the site's zone before the first times are drawn (the plan carries it; without a
  // plan yet, the cost summary does)
  await refreshPlan();
  if (!siteTz && role !== "aggregator") { const c = await api("GET", "/costs?period=today"); learnZone(c.data); }
  refreshStatus();
  stream();
  if (role !== "aggregator") {
    const d = await api("GET", "/devices"); if (d.ok) last.devices = d.data;
    await refreshAlarms();
  }
  refreshActive();
}

function askKey(msg) {
  $("login-msg").textContent = msg || "";
  if (!$("login").open) $("login").showModal();
}

$("login-form").onsubmit = () => {
  key = $("in-key").value.trim();
  sessionStorage.setItem("vpp_key", key);
  start();
};
$("logout").onclick = () => { sessionStorage.removeItem("vpp_key"); key = ""; if (streamAbort) streamAbort.abort(); askKey(""); };
$("lang").onclick = () => { lang = lang === "ja" ? "en" : "ja"; localStorage.setItem("vpp_lang", lang); applyLang(); };

function showTab(name) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === "view-" + name));
  if (name === "plan" && last.plan) drawPlan(last.plan);
  refreshActive();
}

// the VPP and cost views load when shown and refresh while they are shown
function refreshActive() {
  if (!key || !role) return;
  if ($("view-vpp").classList.contains("active")) refreshVpp();
  if ($("view-costs").classList.contains("active")) refreshCosts();
}
document.querySelectorAll("nav button").forEach((b) => { b.onclick = () => showTab(b.dataset.tab); });

setInterval(renderLost, 1000);
setInterval(refreshPlan, 60000);
setInterval(refreshActive, 15000);
applyLang();
if (key) start(); else askKey("");

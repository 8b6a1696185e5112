// Watchkeeper dashboard: polls the JSON endpoints and renders status, alerts, SLOs, silences and one chart.
// Vanilla JS and SVG only (no CDN): the dashboard must work on a machine without internet.
"use strict";

const params = new URLSearchParams(location.search);
const REFRESH = Number(params.get("refresh") || document.body.dataset.refresh || 10);
const state = { series: params.get("series") || "", range: params.get("range") || "-6h", timer: null };
const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function age(seconds) {
  if (seconds == null) return "n/a";
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${(seconds / 86400).toFixed(1)}d`;
}
function fmt(v, digits = 3) {
  if (v == null) return "n/a";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return Number(v.toFixed(digits)).toLocaleString("en-US", { maximumFractionDigits: digits });
}
function pct(v, digits = 2) { return v == null ? "n/a" : `${(v * 100).toFixed(digits)} %`; }

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function card(label, value, cls = "") {
  return `<div class="card ${cls}"><div class="label">${esc(label)}</div><div class="value">${esc(value)}</div></div>`;
}

function renderOverview(o) {
  const firing = o.alerts.filter((a) => a.state === "firing").length;
  const pending = o.alerts.filter((a) => a.state === "pending").length;
  const atRisk = o.slos.filter((s) => s.status !== "ok").length;
  const ing = o.ingest || {};
  const fresh = ing.last_sample_age_seconds;
  $("cards").innerHTML = [
    card("ClickHouse", o.clickhouse === "ok" ? "up" : "error", o.clickhouse === "ok" ? "good" : "bad"),
    card("Ingest", ing.samples_per_second == null ? "n/a" : `${fmt(ing.samples_per_second, 1)}/s`),
    card("Newest sample", fresh == null ? "none" : `${age(fresh)} ago`, fresh != null && fresh > 120 ? "warn" : ""),
    card("Series (24h)", ing.series_last_day == null ? "n/a" : fmt(ing.series_last_day, 0)),
    card("Firing", firing, firing ? "bad" : "good"),
    card("Pending", pending, pending ? "warn" : ""),
    card("SLOs at risk", `${atRisk} / ${o.slos.length}`, atRisk ? "warn" : "good"),
    card("Silences", o.silences.length),
  ].join("");
  $("health").className = `dot ${o.clickhouse === "ok" ? "dot-ok" : "dot-error"}`;
  $("updated").textContent = `updated ${new Date(o.now).toISOString().slice(11, 19)} UTC`;
  $("errors").textContent = (o.errors || []).join(" · ");

  $("alert-count").textContent = o.alerts.length ? `(${firing} firing, ${pending} pending)` : "";
  $("alerts-empty").hidden = o.alerts.length > 0;
  $("alerts").closest("table").hidden = o.alerts.length === 0;
  $("alerts").innerHTML = o.alerts.map((a) => {
    const labels = Object.entries(a.labels).filter(([k]) => k !== "alertname")
      .map(([k, v]) => `<span class="chip">${esc(k)}=${esc(v)}</span>`).join("");
    const summary = a.annotations.summary || a.annotations.description || "";
    return `<tr class="alert ${esc(a.state)}" data-fingerprint="${esc(a.fingerprint)}"><td><span class="pill ${esc(a.state)}">${esc(a.state)}</span></td>
      <td><div class="alertname">${esc(a.rule)}</div><div class="summary">${esc(summary)}</div></td>
      <td class="sev sev-${esc(a.severity)}">${esc(a.severity)}</td><td>${labels}</td>
      <td title="since ${new Date(a.starts_at).toISOString()}">${age(a.age_seconds)}</td>
      <td class="num">${fmt(a.value)}</td></tr>`;
  }).join("");

  $("slo-count").textContent = o.slos.length ? `(${o.slos.length})` : "";
  $("slos-empty").hidden = o.slos.length > 0;
  $("slos").closest("table").hidden = o.slos.length === 0;
  $("slos").innerHTML = o.slos.map((s) => {
    const left = s.budget_remaining == null ? 0 : Math.max(0, Math.min(1, s.budget_remaining));
    const color = left > 0.5 ? "var(--ok)" : left > 0.2 ? "var(--pending)" : "var(--firing)";
    return `<tr class="slo"><td><b>${esc(s.service)}</b> / ${esc(s.slo)}<div class="summary">${esc(s.status)}</div></td>
      <td class="num">${pct(s.objective, 2)}</td><td class="num">${pct(s.attainment, 3)}</td>
      <td><div class="bar" title="${pct(s.budget_remaining, 1)} left"><span style="width:${(left * 100).toFixed(1)}%;background:${color}"></span></div>
      <div class="bar-text">${pct(s.budget_remaining, 1)} left${s.time_to_exhaustion_seconds != null ? ` · gone in ${age(s.time_to_exhaustion_seconds)}` : ""}</div></td>
      <td class="num">${fmt(s.burn_1h, 2)}×</td></tr>`;
  }).join("");

  $("silence-count").textContent = o.silences.length ? `(${o.silences.length})` : "";
  $("silences-empty").hidden = o.silences.length > 0;
  $("silences").innerHTML = o.silences.map((s) => {
    const op = (x) => (x.isRegex ? (x.isEqual === false ? "!~" : "=~") : (x.isEqual === false ? "!=" : "="));
    const m = (s.matchers || []).map((x) => `<span class="chip">${esc(x.name)}${op(x)}${esc(x.value)}</span>`).join("");
    const when = (t) => (t ? new Date(t).toLocaleString() : "");
    const pending = s.status && s.status.state === "pending";
    const span = pending ? `pending: from ${esc(when(s.startsAt))} until ${esc(when(s.endsAt))}` : `until ${esc(when(s.endsAt))}`;
    return `<li>${m}<div class="summary">${esc(s.comment || "")} — ${esc(s.createdBy || "")}, ${span}</div></li>`;
  }).join("");

  const skewed = o.skewed_sources || [];
  $("skew-panel").hidden = skewed.length === 0;
  $("skew-count").textContent = skewed.length ? `(${skewed.length})` : "";
  $("skewed").innerHTML = skewed.map((x) =>
    `<tr><td>${esc(x.source)}</td><td class="num">${esc(x.future_samples)}</td></tr>`).join("");

  const rf = o.rule_failures || { counts: {}, recent: [] };
  const total = Object.values(rf.counts).reduce((a, b) => a + b, 0);
  $("rule-failures-panel").hidden = rf.recent.length === 0;
  $("rule-failures-count").textContent = total ? `(${total} since the workers started)` : "";
  $("rule-failures").innerHTML = rf.recent.map((f) =>
    `<tr class="rule-failure"><td>${esc(f.group)}</td><td>${esc(f.rule)}</td>
      <td>${new Date(f.t * 1000).toISOString().slice(0, 19).replace("T", " ")}</td><td>${esc(f.message)}</td></tr>`).join("");
}

async function loadSeries() {
  const list = await getJSON(`/api/series?match=${encodeURIComponent($("match").value)}`);
  const sel = $("series");
  sel.innerHTML = list.map((s) => {
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`).join(", ");
    return `<option value="${esc(s.id)}">${esc(s.name)}{${esc(labels)}}</option>`;
  }).join("");
  if (!list.some((s) => s.id === state.series)) state.series = list.length ? list[0].id : "";
  sel.value = state.series;
}

function niceTicks(lo, hi, n) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

function drawChart(data) {
  const el = $("chart");
  const W = Math.max(el.clientWidth || 900, 300), H = 260, m = { l: 58, r: 16, t: 10, b: 28 };
  const pts = data.points.filter((p) => p[1] != null);
  const labels = Object.entries(data.labels).map(([k, v]) => `${k}="${v}"`).join(", ");
  $("chart-title").textContent = data.name ? `${data.name}{${labels}} · ${pts.length} points, step ${age(data.step_ms / 1000)}` : "";
  if (!pts.length) {
    el.innerHTML = `<svg width="${W}" height="${H}" data-points="0"><text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#64748b">no data in this range</text></svg>`;
    return;
  }
  let lo = Math.min(...pts.map((p) => p[2] ?? p[1])), hi = Math.max(...pts.map((p) => p[3] ?? p[1]));
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = (t) => m.l + ((t - data.from) / (data.to - data.from)) * (W - m.l - m.r);
  const y = (v) => m.t + (1 - (v - lo) / (hi - lo)) * (H - m.t - m.b);
  const line = pts.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
  const band = pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[3] ?? p[1]).toFixed(1)}`).concat(
    pts.slice().reverse().map((p) => `${x(p[0]).toFixed(1)},${y(p[2] ?? p[1]).toFixed(1)}`)).join(" ");
  const yt = niceTicks(lo, hi, 5);
  const long = data.to - data.from > 2 * 86400e3;
  const xt = Array.from({ length: 7 }, (_, i) => data.from + ((data.to - data.from) * i) / 6);
  const tl = (t) => { const d = new Date(t).toISOString(); return long ? d.slice(5, 10) + " " + d.slice(11, 16) : d.slice(11, 16); };
  el.innerHTML = `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" data-points="${pts.length}">
    <g class="grid">${yt.map((v) => `<line x1="${m.l}" x2="${W - m.r}" y1="${y(v)}" y2="${y(v)}"/>`).join("")}</g>
    <polygon class="band" points="${band}"/>
    <path class="line" d="${line}"/>
    <g class="axis">${yt.map((v) => `<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`).join("")}
    ${xt.map((t) => `<text x="${x(t)}" y="${H - 8}" text-anchor="middle">${tl(t)}</text>`).join("")}</g>
    <line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#cbd5e1"/>
    <g class="hover" visibility="hidden"><line class="cursor" y1="${m.t}" y2="${H - m.b}"/><circle r="3.5"/>
    <rect class="tip-bg" rx="4" height="20"/><text class="tip" dy="14"></text></g>
    <rect class="overlay" x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}"/></svg>`;
  // Hover: the nearest bucket's time, mean and min..max.
  const svg = el.querySelector("svg"), hover = svg.querySelector(".hover");
  svg.querySelector(".overlay").addEventListener("mousemove", (ev) => {
    const px = ev.offsetX, t = data.from + ((px - m.l) / (W - m.l - m.r)) * (data.to - data.from);
    let best = pts[0];
    for (const p of pts) if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
    const bx = x(best[0]), by = y(best[1]);
    hover.querySelector(".cursor").setAttribute("x1", bx); hover.querySelector(".cursor").setAttribute("x2", bx);
    hover.querySelector("circle").setAttribute("cx", bx); hover.querySelector("circle").setAttribute("cy", by);
    const label = `${new Date(best[0]).toISOString().slice(5, 16).replace("T", " ")}  ${fmt(best[1])}` +
      (best[2] != null ? `  (${fmt(best[2])} … ${fmt(best[3])})` : "");
    const text = hover.querySelector(".tip"), bg = hover.querySelector(".tip-bg");
    text.textContent = label;
    const w = label.length * 6.6 + 12, tx = Math.min(Math.max(bx - w / 2, m.l), W - m.r - w);
    text.setAttribute("x", tx + 6); text.setAttribute("y", m.t);
    bg.setAttribute("x", tx); bg.setAttribute("y", m.t); bg.setAttribute("width", w);
    hover.setAttribute("visibility", "visible");
  });
  svg.querySelector(".overlay").addEventListener("mouseleave", () => hover.setAttribute("visibility", "hidden"));
}

async function loadChart() {
  document.querySelectorAll("#ranges button").forEach((b) => b.classList.toggle("active", b.dataset.range === state.range));
  if (!state.series) { drawChart({ name: "", labels: {}, points: [], from: 0, to: 1, step_ms: 0 }); return; }
  drawChart(await getJSON(`/api/chart?id=${state.series}&from=${encodeURIComponent(state.range)}&points=300`));
}

async function refresh() {
  try {
    renderOverview(await getJSON("/api/overview"));
    await loadChart();
  } catch (e) {
    $("errors").textContent = `refresh failed: ${e.message}`;
    $("health").className = "dot dot-error";
  }
}

function schedule() {
  clearInterval(state.timer);
  if ($("auto").checked) state.timer = setInterval(refresh, REFRESH * 1000);
}

$("every").textContent = `(${REFRESH}s)`;
$("auto").addEventListener("change", schedule);
$("series").addEventListener("change", (e) => { state.series = e.target.value; loadChart(); });
$("match").addEventListener("input", () => loadSeries().then(loadChart));
document.querySelectorAll("#ranges button").forEach((b) => b.addEventListener("click", () => { state.range = b.dataset.range; loadChart(); }));
loadSeries().catch(() => {}).then(refresh).then(schedule);

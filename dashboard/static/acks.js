// Acknowledgements and escalations beside the alerts (dashboard/acks.py): who acknowledged a firing alert and
// why, an Ack button on the others, and each escalating group's level ("level 2 since 10:42 UTC, not
// acknowledged"). The button POSTs to /api/v2/alerts/acknowledge from this page (same origin, so the guard lets
// it through; a page of another site cannot).
"use strict";

(() => {
  const ackState = { byAlert: {}, escalations: [] };
  const escHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);

  function decorate() {
    const body = document.getElementById("alerts");
    if (!body) return;
    for (const row of body.querySelectorAll("tr.alert")) {
      const fp = row.dataset.fingerprint;
      const cell = row.children[1];
      if (!fp || !cell) continue;
      const old = cell.querySelector(".ack");
      if (old) old.remove();
      const div = document.createElement("div");
      div.className = "ack";
      const ack = ackState.byAlert[fp];
      if (ack) {
        div.innerHTML = `✔ acknowledged by <b>${escHtml(ack.by)}</b> at ${hhmm(ack.createdAtMs)} UTC: ${escHtml(ack.comment)}`;
      } else if (row.classList.contains("firing")) {
        div.innerHTML = `<button type="button" class="ack-button">Ack</button> <span class="fp" title="for watchkeeper ack">${escHtml(fp)}</span>`;
        div.querySelector("button").addEventListener("click", () => acknowledge(fp));
      } else {
        continue;
      }
      cell.appendChild(div);
    }
    const box = document.getElementById("escalations");
    if (box) {
      box.innerHTML = ackState.escalations.map((e) => {
        const labels = Object.entries(e.labels || {}).map(([k, v]) => `${escHtml(k)}=${escHtml(v)}`).join(", ");
        return `<div class="escalation">⇡ ${escHtml(e.policy)} {${labels}}: ${escHtml(e.text)}</div>`;
      }).join("");
    }
  }

  async function acknowledge(fp) {
    const comment = window.prompt("Acknowledge: what are you doing about it?");
    if (!comment) return;
    const by = window.prompt("Your name", localStorage.getItem("wk-ack-by") || "") || "dashboard";
    localStorage.setItem("wk-ack-by", by);
    const r = await fetch("/api/v2/alerts/acknowledge", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ fingerprint: fp, comment, by }),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      window.alert(`not acknowledged: ${body.error || r.statusText}`);
    }
    await refreshAcks();
  }

  async function refreshAcks() {
    try {
      const r = await fetch("/api/acks", { cache: "no-store" });
      if (r.ok) {
        const body = await r.json();
        ackState.byAlert = body.by_alert || {};
        ackState.escalations = body.escalations || [];
      }
    } catch (e) { /* the alerts still show; acks come back on the next refresh */ }
    decorate();
  }

  const body = document.getElementById("alerts");
  if (body) new MutationObserver(decorate).observe(body, { childList: true });
  refreshAcks();
  setInterval(refreshAcks, 1000 * Number(document.body.dataset.refresh || 10));
})();

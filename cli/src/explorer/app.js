// Customs ledger explorer: one page, hash routes, no dependencies.
// Every value from the ledger is inserted as text (never as HTML): other
// parties wrote it.
"use strict";

const main = document.getElementById("main");
const params = new URLSearchParams(location.search);
let me = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k) e.append(k);
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  let body;
  try { body = await r.json(); } catch (_) { body = { error: r.statusText }; }
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function dur(s) {
  if (s === null || s === undefined) return "-";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor((s % 86400) / 3600)).padStart(2, "0") + "h";
}

function when(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function share(s) {
  if (s === null || s === undefined) return el("span", { class: "badge sealed", text: "sealed" });
  if (!s.den) return "-";
  return (Math.round((s.num * 1000) / s.den) / 10).toFixed(1) + "%";
}

function short(hex) { return hex ? hex.slice(0, 12) + "…" : ""; }

function card(k, v) {
  return el("div", { class: "card" }, el("div", { class: "k", text: k }), el("div", { class: "v" }, v));
}

function fail(e) {
  main.replaceChildren(el("p", { class: "error", id: "error", text: "Error: " + e.message }));
}

function setTab(name) {
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.tab === name);
  }
}

// ---- chain overview -------------------------------------------------------

async function overview() {
  setTab("overview");
  const [st, bl] = await Promise.all([api("/api/status"), api("/api/blocks?limit=15")]);
  const cp = st.checkpoint;
  const signed = cp
    ? el("div", { id: "checkpoint" },
        el("h2", { text: "Newest cosigned checkpoint" }),
        el("p", {},
          el("span", { class: "badge ok", text: "verified" }), " height ", el("b", { text: cp.height }),
          ", tree size " + cp.tree_size + ", root ", el("code", { text: short(cp.root) }),
          ", quorum " + cp.quorum + " of " + cp.validators.length + " validators"),
        el("table", {},
          el("tr", {}, el("th", { text: "validator" }), el("th", { text: "cosigned" })),
          cp.validators.map((v) => el("tr", {},
            el("td", { text: v }),
            el("td", {}, cp.signers.includes(v)
              ? el("span", { class: "badge ok", text: "signed" })
              : el("span", { class: "badge sealed", text: "not yet" }))))))
    : el("p", { class: "muted", text: "No cosigned checkpoint yet." });
  const rows = bl.blocks.map((b) => el("tr", {},
    el("td", { class: "num", text: b.height }),
    el("td", { text: when(b.time_ms) }),
    el("td", { class: "num", text: b.txs }),
    el("td", { text: Object.entries(b.kinds).map(([k, n]) => n + "× " + k).join(", ") }),
    el("td", { text: b.proposer }),
    el("td", {}, el("code", { text: short(b.hash) }))));
  main.replaceChildren(
    el("h2", { text: "Chain " + st.chain_id }),
    el("div", { class: "cards" },
      card("height", st.height), card("leader", st.leader || "-"),
      card("node", st.node_party + " (" + st.raft_role + ")"), card("term", st.term), card("peers", st.peers)),
    signed,
    el("h2", { text: "Recent blocks" }),
    el("table", { id: "blocks" },
      el("tr", {}, ["height", "time", "txs", "events", "proposer", "hash"].map((h) => el("th", { text: h }))),
      rows));
}

// ---- shipment timeline ----------------------------------------------------

function searchForm(value) {
  const input = el("input", { name: "id", value: value || "", placeholder: "shipment id, e.g. SHP-PLFR-…", size: 36 });
  return el("form", { class: "inline", id: "search", onsubmit: (e) => {
    e.preventDefault();
    location.hash = "#/shipment/" + encodeURIComponent(input.value.trim());
  } }, el("label", {}, "Shipment", input), el("button", { type: "submit", text: "Show timeline" }));
}

function fieldRow(f) {
  const value = f.open
    ? el("span", { class: "mono", text: f.value })
    : el("span", { class: "badge sealed", text: "sealed (" + f.class + ")" });
  return el("tr", { "data-path": f.path, "data-open": String(f.open) },
    el("td", {}, el("code", { text: f.path })),
    el("td", { text: f.class }),
    el("td", {}, value));
}

// Short field lists are shown; long ones (declarations) fold behind a
// summary of how many this party could open.
function fieldsBlock(fields) {
  const table = el("table", { class: "fields" }, fields.map(fieldRow));
  if (fields.length <= 8) return table;
  const open = fields.filter((f) => f.open).length;
  return el("details", { class: "fields" },
    el("summary", { text: fields.length + " fields, " + open + " readable by " + me.party + ", " + (fields.length - open) + " sealed" }),
    table);
}

function eventItem(ev) {
  const lines = (ev.outcome && ev.outcome.lines) || [];
  const sealedOutcome = (ev.outcome && ev.outcome.sealed) || [];
  const late = ev.time_ms < ev.block_time_ms - 60000 ? " (reported " + when(ev.block_time_ms) + ")" : "";
  return el("li", { class: "event", "data-kind": ev.kind },
    el("div", { class: "head" },
      el("span", { class: "kind", text: ev.kind }),
      el("span", { text: when(ev.time_ms) + late }),
      el("span", { class: "muted", text: "by " + ev.submitter }),
      ev.status ? el("span", { class: "badge warn", text: ev.status }) : null,
      el("span", { class: "badge ok", title: "inclusion proof checked against checkpoint " + ev.proof.checkpoint,
        text: "proof ✓ h" + ev.height + "#" + ev.index + " · cosigned by " + ev.proof.cosigners.join(", ") })),
    fieldsBlock(ev.fields),
    ev.co2 && ev.co2.grams !== undefined
      ? el("div", { class: "outcome co2", title: ev.co2.source,
          text: "CO2e estimate: " + (ev.co2.grams / 1000).toFixed(1) + " kg, " + ev.co2.from + " → " + ev.co2.to +
            " by " + ev.co2.mode + ", " + ev.co2.distance_km + " km (" + ev.co2.source + ")" })
      : null,
    lines.length || sealedOutcome.length
      ? el("div", { class: "outcome" },
          lines.map((l) => el("div", { class: "outcome-line", text: l })),
          sealedOutcome.map((c) => el("div", {}, el("span", { class: "badge sealed", text: "outcome sealed (" + c + ")" }))))
      : null);
}

async function shipment(id) {
  setTab("shipment");
  if (!id) {
    main.replaceChildren(el("h2", { text: "Shipments" }), searchForm(""),
      el("p", { class: "muted", text: "Each event is shown as " + me.party + " sees it: public fields, the sealed fields its keys open, and the rest sealed." }));
    return;
  }
  main.replaceChildren(el("h2", { text: "Shipment " + id }), searchForm(id), el("p", { class: "muted", text: "Verifying…" }));
  const h = await api("/api/shipment/" + encodeURIComponent(id));
  main.replaceChildren(
    el("h2", { text: "Shipment " + id }), searchForm(id),
    el("p", { class: "muted", text: h.events.length + " events as " + h.party + " sees them; every one proven against a cosigned checkpoint." }),
    el("ol", { class: "timeline", id: "timeline" }, h.events.map(eventItem)));
}

// ---- KPIs -----------------------------------------------------------------

function barChart(rows, title, pick, secondary, fmt) {
  const data = rows.map((r) => ({ label: r.label, a: pick(r), b: secondary ? secondary(r) : null }))
    .filter((d) => d.a !== null && d.a !== undefined);
  if (!data.length) return null;
  const max = Math.max(...data.map((d) => Math.max(d.a, d.b || 0))) || 1;
  const rowH = 22, labelW = 190, barW = 520, h = data.length * rowH + 30;
  const g = svg("svg", { width: labelW + barW + 120, height: h, role: "img", "aria-label": title });
  g.append(svg("text", { x: 0, y: 14, text: title }));
  data.forEach((d, i) => {
    const y = 24 + i * rowH;
    g.append(svg("text", { x: 0, y: y + 13, text: d.label }));
    if (d.b !== null && d.b !== undefined) {
      g.append(svg("rect", { class: "bar2", x: labelW, y: y + 2, width: Math.max(1, (d.b / max) * barW), height: 14 }));
    }
    g.append(svg("rect", { class: "bar", x: labelW, y: y + 2, width: Math.max(1, (d.a / max) * barW), height: 14 }));
    g.append(svg("text", { x: labelW + (Math.max(d.a, d.b || 0) / max) * barW + 6, y: y + 13,
      text: fmt(d.a) + (d.b !== null && d.b !== undefined ? " (p90 " + fmt(d.b) + ")" : "") }));
  });
  return el("div", { class: "chart" }, g);
}

async function kpi(q) {
  setTab("kpi");
  const by = q.get("by") || "corridor";
  const period = q.get("period") || "total";
  const [all, res] = await Promise.all([
    api("/api/kpi?by=all&period=total"),
    api("/api/kpi?by=" + encodeURIComponent(by) + "&period=" + encodeURIComponent(period)),
  ]);
  const t = all.rows[0] || null;
  const pick = (name, opts) => el("select", { name, onchange: (e) => {
    const p = new URLSearchParams({ by, period });
    p.set(name, e.target.value);
    location.hash = "#/kpi?" + p.toString();
  } }, opts.map((o) => el("option", { value: o, selected: o === (name === "by" ? by : period) ? "selected" : null, text: o })));
  const rows = res.rows.map((r) => Object.assign({}, r, {
    label: r.period === "total" ? r.value : (r.dim === "all" ? r.label : r.value + " · " + r.label),
  }));
  const table = el("table", { id: "kpi-table" },
    el("tr", {}, ["group", "declarations", "ICS2 complete", "released", "arrival→release (median / p90)",
      "filing→release", "inspection rate", "hit rate", "holds", "RFIs", "rejections", "DDP accuracy", "CO2 (kg)"]
      .map((h) => el("th", { text: h }))),
    rows.map((r) => el("tr", { "data-value": r.value, "data-start": r.start_ms },
      el("td", { text: r.label }),
      el("td", { class: "num kpi-declarations", text: r.declarations }),
      el("td", { class: "num" }, share(r.completeness)),
      el("td", { class: "num kpi-released", text: r.released }),
      el("td", { class: "num kpi-ttc", text: dur(r.arrived_to_release.median_s) + " / " + dur(r.arrived_to_release.p90_s) }),
      el("td", { class: "num", text: dur(r.filed_to_release.median_s) + " / " + dur(r.filed_to_release.p90_s) }),
      el("td", { class: "num" }, share(r.inspection_rate)),
      el("td", { class: "num kpi-hits" }, share(r.hit_rate)),
      el("td", { class: "num", text: r.holds }),
      el("td", { class: "num", text: r.rfis }),
      el("td", { class: "num" }, share(r.rejection_rate)),
      el("td", { class: "num kpi-ddp" }, share(r.ddp_accuracy)),
      el("td", { class: "num" }, r.co2 ? String(Math.round(r.co2.grams / 1000)) : el("span", { class: "badge sealed", text: "sealed" })))));
  const reasons = {};
  for (const r of res.rows) {
    for (const [k, n] of Object.entries(r.hold_reasons)) reasons["held · " + k] = (reasons["held · " + k] || 0) + n;
    for (const [k, n] of Object.entries(r.rejection_reasons)) reasons["rejected · " + k] = (reasons["rejected · " + k] || 0) + n;
  }
  main.replaceChildren(
    el("h2", { text: "Smart Customs KPIs" }),
    el("p", { class: "muted", text: "Folded from committed blocks below height " + res.folded_height + ", as " + me.party + " may see them." }),
    t ? el("div", { class: "cards", id: "kpi-cards" },
      card("declarations", t.declarations), card("released", t.released),
      card("arrival → release (median)", dur(t.arrived_to_release.median_s)),
      card("inspection rate", share(t.inspection_rate)), card("hit rate", share(t.hit_rate)),
      card("ICS2 completeness", share(t.completeness)), card("DDP price accuracy", share(t.ddp_accuracy))) : null,
    el("form", { class: "inline" },
      el("label", {}, "Group by", pick("by", ["corridor", "chapter", "mode", "party", "all"])),
      el("label", {}, "Period", pick("period", ["total", "month", "week", "day"]))),
    period === "total"
      ? barChart(rows, "Arrival to release: median (dark) and p90 (light)", (r) => r.arrived_to_release.median_s,
          (r) => r.arrived_to_release.p90_s, dur)
      : barChart(rows.slice(-40), "Declarations per " + period, (r) => r.declarations, null, String),
    table,
    Object.keys(reasons).length
      ? el("div", {}, el("h3", { text: "Reason codes" }),
          el("table", { id: "reasons" }, Object.entries(reasons).map(([k, n]) => el("tr", {}, el("td", { text: k }), el("td", { class: "num", text: n })))))
      : null);
}

// ---- corridor predictions -------------------------------------------------

async function route(q) {
  setTab("route");
  const from = q.get("from") || "CN", chapter = q.get("chapter") || "85", mode = q.get("mode") || "sea";
  const offices = q.get("offices") || "";
  const inputs = {
    from: el("input", { name: "from", value: from, size: 4 }),
    chapter: el("input", { name: "chapter", value: chapter, size: 4 }),
    mode: el("select", { name: "mode" }, ["sea", "rail", "road", "air"].map((m) => el("option", { value: m, selected: m === mode ? "selected" : null, text: m }))),
    offices: el("input", { name: "offices", value: offices, size: 40, placeholder: "every office seen" }),
  };
  const form = el("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(inputs)) p.set(k, v.value.trim());
    location.hash = "#/route?" + p.toString();
  } },
    el("label", {}, "Dispatch country", inputs.from), el("label", {}, "HS chapter", inputs.chapter),
    el("label", {}, "Mode", inputs.mode), el("label", {}, "Offices of entry (comma-separated)", inputs.offices),
    el("button", { type: "submit", text: "Predict" }));
  const p = new URLSearchParams({ from, chapter, mode, offices });
  const r = await api("/api/route?" + p.toString());
  const preds = r.predictions;
  main.replaceChildren(
    el("h2", { text: "Predicted time to clear" }),
    el("p", { class: "muted", text: "Arrival to release at each office of first entry, from committed clearances on the narrowest corridor with enough evidence." }),
    form,
    preds.length
      ? barChart(preds.map((x) => Object.assign({ label: x.office }, x)), "Median (dark) and p90 (light)", (x) => x.median_s, (x) => x.p90_s, dur)
      : el("p", { class: "muted", text: "No clearances committed yet." }),
    el("table", { id: "route-table" },
      el("tr", {}, ["rank", "office", "median", "p90", "evidence", "basis"].map((h) => el("th", { text: h }))),
      preds.map((x, i) => el("tr", { "data-office": x.office },
        el("td", { class: "num", text: i + 1 }), el("td", { text: x.office }),
        el("td", { class: "num", text: dur(x.median_s) }), el("td", { class: "num", text: dur(x.p90_s) }),
        el("td", { class: "num", text: x.evidence }), el("td", { text: x.basis })))));
}

// ---- routing and live updates ---------------------------------------------

async function render() {
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const q = new URLSearchParams(query || "");
  try {
    if (path.startsWith("/shipment")) await shipment(decodeURIComponent(path.slice("/shipment/".length)));
    else if (path.startsWith("/kpi")) await kpi(q);
    else if (path.startsWith("/route")) await route(q);
    else await overview();
    document.body.dataset.ready = "true";
  } catch (e) {
    fail(e);
    document.body.dataset.ready = "error";
  }
}

function live() {
  if (params.get("live") === "0" || !window.EventSource) return;
  const badge = document.getElementById("live");
  const es = new EventSource("/api/live");
  es.addEventListener("block", (e) => {
    const b = JSON.parse(e.data);
    badge.hidden = false;
    badge.textContent = "block " + b.height + " committed (" + b.txs + " tx)";
    const hash = location.hash || "#/";
    if (hash === "#/" || hash === "#") render();
  });
}

async function start() {
  try {
    me = await api("/api/status");
    document.getElementById("who").textContent =
      "signed in as " + me.party + " (" + me.roles.join(", ") + ") via " + me.node_party + "'s node";
  } catch (e) {
    fail(e);
    return;
  }
  window.addEventListener("hashchange", render);
  await render();
  live();
}

start();

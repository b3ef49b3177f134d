"use strict";
// The flowcept UI: a hash-routed page over /api/v1 (no build step, no external assets).
const API = "/api/v1";
const view = document.getElementById("view");
let stream = null; // the EventSource of the page being shown

async function api(path, options) {
  const res = await fetch(API + path, options);
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Replace the page's content; arrays are flattened and null/undefined parts left out (as el() does).
function show(...children) {
  view.replaceChildren(...children.flat(2).filter((c) => c !== null && c !== undefined));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmtTime = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "");
function fmtDuration(start, end) {
  if (!start || !end) return "";
  const s = end - start;
  if (s < 1e-3) return `${(s * 1e6).toFixed(1)} µs`;
  return s < 1 ? `${(s * 1000).toFixed(1)} ms` : s < 120 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`;
}
const statusCell = (s) => el("td", { class: `status-${s || ""}` }, s || "");
const json = (v) => el("pre", { class: "mono" }, JSON.stringify(v, null, 2));

// ------------------------------------------------------------------------------------------ pages
async function workflowsPage() {
  const page = await api("/workflows?limit=100");
  const rows = page.items.map((w) => el("tr", {},
    el("td", {}, el("a", { href: `#/workflows/${encodeURIComponent(w.workflow_id)}`, class: "wf-link" },
                  w.name || w.workflow_id)),
    statusCell(w.status), el("td", {}, fmtTime(w.started_at)), el("td", {}, fmtDuration(w.started_at, w.ended_at)),
    el("td", { class: "task-count" }, w.task_count)));
  show(el("h1", {}, "Workflows"), el("p", { class: "muted" }, `${page.count} workflows`),
    el("table", { id: "workflows" }, el("tr", {}, ...["Name", "Status", "Started (UTC)", "Duration", "Tasks"]
      .map((h) => el("th", {}, h))), rows));
}

async function workflowPage(id) {
  const wf = await api(`/workflows/${encodeURIComponent(id)}`);
  const [timeline, graph] = await Promise.all([
    api(`/workflows/${encodeURIComponent(id)}/timeline?limit=1000`),
    api(`/workflows/${encodeURIComponent(id)}/dataflow?limit=500`)]);
  const tasks = new Map(timeline.items.map((t) => [t.task_id, t]));
  const count = el("b", { id: "task-count" }, wf.task_count);
  const ganttBox = el("div", { class: "panel", id: "gantt" });
  const tableBox = el("div", { id: "tasks" });
  const chartBox = el("div", { class: "panel", id: "telemetry" }, el("span", { class: "muted" }, "Loading…"));
  const cardBox = el("div", { id: "card" });
  show(
    el("h1", { id: "wf-name" }, wf.name || wf.workflow_id),
    el("div", { class: "muted mono" }, wf.workflow_id, wf.campaign_id ? ` · campaign ${wf.campaign_id}` : ""),
    el("div", { class: "cards" },
      el("div", { class: "card" }, "Tasks", count),
      el("div", { class: "card" }, "Status", el("b", { class: `status-${wf.status}` }, wf.status || "")),
      el("div", { class: "card" }, "Started", el("b", {}, fmtTime(wf.started_at))),
      el("div", { class: "card" }, "Duration", el("b", {}, fmtDuration(wf.started_at, wf.ended_at))),
      ...Object.entries(wf.status_counts || {}).map(([s, n]) =>
        el("div", { class: "card" }, s, el("b", { class: `status-${s}` }, n)))),
    el("h2", {}, "Timeline"), ganttBox,
    el("h2", {}, "Task graph"), el("div", { class: "panel", id: "graph" }, drawGraph(graph)),
    el("h2", {}, "Telemetry"), chartBox,
    el("h2", {}, "Tasks"), tableBox,
    el("h2", {}, "Workflow card"), cardBox);
  const refresh = () => {
    ganttBox.replaceChildren(drawGantt([...tasks.values()]));
    tableBox.replaceChildren(taskTable([...tasks.values()]));
  };
  refresh();
  drawTelemetry(id).then((node) => chartBox.replaceChildren(node));
  api(`/workflows/${encodeURIComponent(id)}/workflow_card`)
    .then((md) => cardBox.replaceChildren(el("pre", { class: "mono" }, md)))
    .catch((e) => cardBox.replaceChildren(el("p", { class: "muted" }, `No workflow card (${e.message}).`)));
  // Live: tasks that start or end while the page is open.
  stream = new EventSource(`${API}/stream/tasks?workflow_id=${encodeURIComponent(id)}`);
  document.getElementById("live").hidden = false;
  stream.addEventListener("tasks", (event) => {
    let added = 0;
    for (const t of JSON.parse(event.data)) {
      if (!tasks.has(t.task_id)) added += 1;
      tasks.set(t.task_id, { ...(tasks.get(t.task_id) || {}), ...t });
    }
    count.textContent = Number(count.textContent) + added;
    refresh();
  });
}

function taskTable(tasks) {
  tasks.sort((a, b) => (a.started_at || 0) - (b.started_at || 0));
  const shown = tasks.slice(0, 500);
  return el("table", {}, el("tr", {}, ...["Activity", "Status", "Started (UTC)", "Duration", "Task id"]
    .map((h) => el("th", {}, h))),
    shown.map((t) => el("tr", { class: "task-row" },
      el("td", {}, el("a", { href: `#/tasks/${encodeURIComponent(t.task_id)}`, class: "task-link" },
                    t.activity_id || "(task)")),
      statusCell(t.status), el("td", {}, fmtTime(t.started_at)), el("td", {}, fmtDuration(t.started_at, t.ended_at)),
      el("td", { class: "mono" }, t.task_id))),
    tasks.length > shown.length ? el("tr", {}, el("td", { colspan: 5, class: "muted" },
      `… ${tasks.length - shown.length} more (use the API to page through all)`)) : null);
}

function drawGantt(tasks) {
  const rows = tasks.filter((t) => t.started_at).sort((a, b) => a.started_at - b.started_at).slice(0, 300);
  if (!rows.length) return el("span", { class: "muted" }, "No tasks yet.");
  const t0 = Math.min(...rows.map((t) => t.started_at));
  const t1 = Math.max(...rows.map((t) => t.ended_at || t.started_at));
  const width = 1100, label = 160, rowH = 16, span = Math.max(t1 - t0, 1e-6);
  const root = svg("svg", { width, height: rows.length * rowH + 24, class: "gantt" });
  rows.forEach((t, i) => {
    const y = i * rowH + 4;
    root.append(svg("text", { x: 0, y: y + 11 }, (t.activity_id || t.task_id).slice(0, 24)));
    const x = label + ((t.started_at - t0) / span) * (width - label - 10);
    const w = Math.max(2, (((t.ended_at || t.started_at) - t.started_at) / span) * (width - label - 10));
    const bar = svg("rect", { x, y, width: w, height: rowH - 4, class: `gantt-bar ${t.status || ""}`,
                              "data-task-id": t.task_id });
    bar.append(svg("title", {}, `${t.activity_id} ${fmtDuration(t.started_at, t.ended_at)}`));
    bar.addEventListener("click", () => { location.hash = `#/tasks/${encodeURIComponent(t.task_id)}`; });
    root.append(bar);
  });
  root.append(svg("text", { x: label, y: rows.length * rowH + 20 }, `0 s … ${span.toFixed(3)} s`));
  return root;
}

function drawGraph(graph) {
  if (!graph.nodes.length) return el("span", { class: "muted" }, "No tasks yet.");
  // Layered layout: a node's column is the longest edge path that reaches it.
  const level = new Map(graph.nodes.map((n) => [n.task_id, 0]));
  for (let pass = 0; pass < graph.nodes.length && pass < 50; pass += 1) {
    let changed = false;
    for (const e of graph.edges) {
      const next = level.get(e.source) + 1;
      if (level.has(e.target) && next > level.get(e.target) && next < 1000) { level.set(e.target, next); changed = true; }
    }
    if (!changed) break;
  }
  const columns = new Map();
  for (const n of graph.nodes) {
    const l = level.get(n.task_id);
    if (!columns.has(l)) columns.set(l, []);
    columns.get(l).push(n);
  }
  const colW = 150, rowH = 34, pos = new Map();
  for (const [l, nodes] of columns) nodes.forEach((n, i) => pos.set(n.task_id, [20 + l * colW, 20 + i * rowH]));
  const width = 40 + (Math.max(...columns.keys()) + 1) * colW;
  const height = 40 + Math.max(...[...columns.values()].map((c) => c.length)) * rowH;
  const root = svg("svg", { width, height, class: "graph" });
  for (const e of graph.edges) {
    const [x1, y1] = pos.get(e.source), [x2, y2] = pos.get(e.target);
    root.append(svg("path", { d: `M${x1 + 120},${y1 + 11} C${x1 + 135},${y1 + 11} ${x2 - 15},${y2 + 11} ${x2},${y2 + 11}`,
                              class: `graph-edge ${e.kind}` }));
  }
  for (const n of graph.nodes) {
    const [x, y] = pos.get(n.task_id);
    const g = svg("g", { "data-task-id": n.task_id });
    g.append(svg("rect", { x, y, width: 120, height: 22, rx: 4, class: `graph-node ${n.status || ""}` }),
             svg("text", { x: x + 6, y: y + 15 }, (n.activity_id || n.task_id).slice(0, 18)));
    g.addEventListener("click", () => { location.hash = `#/tasks/${encodeURIComponent(n.task_id)}`; });
    root.append(g);
  }
  return graph.truncated ? el("div", {}, root, el("p", { class: "muted" }, "Showing the first tasks only.")) : root;
}

async function drawTelemetry(workflowId) {
  const fields = ["telemetry_at_end.cpu.percent_all", "telemetry_at_end.memory.virtual.percent",
                  "telemetry_summary.duration_sec"];
  const data = await api("/stats/timeseries", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ filter: { workflow_id: workflowId }, fields, limit: 1000 }) });
  const series = fields.map((f, i) => ({ name: f.split(".").slice(1).join("."), color: ["#2f6fdf", "#2e9d5b", "#e0a030"][i],
    points: data.items.filter((p) => typeof p[f] === "number").map((p) => [p.x, p[f]]) }))
    .filter((s) => s.points.length);
  if (!series.length) return el("span", { class: "muted" }, "No telemetry captured for this workflow.");
  const width = 900, height = 220, pad = 30;
  const xs = series.flatMap((s) => s.points.map((p) => p[0])), ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1, y1] = [Math.min(...xs), Math.max(...xs), Math.max(...ys, 1e-9)];
  const root = svg("svg", { width, height: height + 20 * series.length, class: "chart" });
  series.forEach((s, i) => {
    const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${pad + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (width - 2 * pad)},${height - pad - (y / y1) * (height - 2 * pad)}`).join(" ");
    root.append(svg("path", { d, class: "chart-line", stroke: s.color }),
                svg("text", { x: pad, y: height + 14 * i, fill: s.color }, `${s.name} (max ${Math.max(...s.points.map((p) => p[1])).toFixed(2)})`));
  });
  return root;
}

async function taskPage(id) {
  const t = await api(`/tasks/${encodeURIComponent(id)}`);
  show(
    el("h1", {}, t.activity_id || t.task_id),
    el("div", { class: "muted mono" }, t.task_id, " · workflow ",
       el("a", { href: `#/workflows/${encodeURIComponent(t.workflow_id)}` }, t.workflow_id)),
    el("div", { class: "cards" },
      el("div", { class: "card" }, "Status", el("b", { class: `status-${t.status}`, id: "task-status" }, t.status || "")),
      el("div", { class: "card" }, "Started", el("b", {}, fmtTime(t.started_at))),
      el("div", { class: "card" }, "Duration", el("b", {}, fmtDuration(t.started_at, t.ended_at))),
      el("div", { class: "card" }, "Host", el("b", {}, t.hostname || ""))),
    t.parent_task_id ? el("p", {}, "Parent: ", el("a", { href: `#/tasks/${encodeURIComponent(t.parent_task_id)}` }, t.parent_task_id)) : null,
    el("h2", {}, "Lineage"), el("div", { class: "cards", id: "lineage" }, el("span", { class: "muted" }, "Loading…")),
    el("h2", {}, "Used"), el("div", { id: "used" }, json(t.used || {})),
    el("h2", {}, "Generated"), el("div", { id: "generated" }, json(t.generated || {})),
    t.stderr ? [el("h2", {}, "Error"), el("pre", { class: "error", id: "stderr" }, t.stderr)] : null,
    t.telemetry_summary ? [el("h2", {}, "Telemetry summary"), json(t.telemetry_summary)] : null,
    el("h2", {}, "Record"), json(t));
  const [up, down] = await Promise.all([api(`/tasks/${encodeURIComponent(id)}/upstream`),
                                        api(`/tasks/${encodeURIComponent(id)}/downstream`)]);
  const links = (title, list, cls) => el("div", { class: `card ${cls}` }, `${title} (${list.items.length})`,
    el("div", {}, list.items.slice(0, 50).map((u) =>
      el("div", {}, el("a", { href: `#/tasks/${encodeURIComponent(u.task_id)}` }, u.activity_id || u.task_id)))));
  document.getElementById("lineage").replaceChildren(links("Upstream", up, "upstream"),
                                                     links("Downstream", down, "downstream"));
}

async function objectsPage() {
  const page = await api("/objects?limit=200");
  const size = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} B`);
  show(el("h1", {}, "Objects"), el("p", { class: "muted" }, `${page.count} objects (latest versions)`),
    el("table", { id: "objects" },
      el("tr", {}, ...["Object", "Type", "Version", "Size", "Updated (UTC)", "Task", ""].map((h) => el("th", {}, h))),
      page.items.map((o) => el("tr", {},
        el("td", { class: "mono" }, o.object_id), el("td", {}, o.object_type || ""), el("td", {}, o.version),
        el("td", {}, size(o.object_size_bytes || 0)), el("td", {}, fmtTime(o.updated_at)),
        el("td", {}, o.task_id ? el("a", { href: `#/tasks/${encodeURIComponent(o.task_id)}` }, o.task_id) : ""),
        el("td", {}, el("a", { href: `${API}/objects/${encodeURIComponent(o.object_id)}/download` }, "download"))))));
}

async function campaignsPage() {
  const page = await api("/campaigns");
  show(el("h1", {}, "Campaigns"), el("table", {},
    el("tr", {}, ...["Campaign", "Workflows", "Started (UTC)"].map((h) => el("th", {}, h))),
    page.items.map((c) => el("tr", {}, el("td", { class: "mono" }, c.campaign_id), el("td", {}, c.workflow_count),
                                el("td", {}, fmtTime(c.started_at))))));
}

async function agentsPage() {
  const page = await api("/agents?limit=100");
  show(el("h1", {}, "Agents"), el("table", {},
    el("tr", {}, ...["Name", "Agent id", "Workflow"].map((h) => el("th", {}, h))),
    page.items.map((a) => el("tr", {}, el("td", {}, a.name || ""), el("td", { class: "mono" }, a.agent_id),
      el("td", {}, a.workflow_id ? el("a", { href: `#/workflows/${encodeURIComponent(a.workflow_id)}` }, a.workflow_id) : "")))));
}

// ------------------------------------------------------------------------------------------ router
const ROUTES = [
  [/^#?\/?$/, workflowsPage],
  [/^#\/workflows\/(.+)$/, workflowPage],
  [/^#\/tasks\/(.+)$/, taskPage],
  [/^#\/campaigns$/, campaignsPage],
  [/^#\/agents$/, agentsPage],
  [/^#\/objects$/, objectsPage],
];

async function route() {
  if (stream) { stream.close(); stream = null; document.getElementById("live").hidden = true; }
  const hash = location.hash || "#/";
  for (const [pattern, page] of ROUTES) {
    const m = hash.match(pattern);
    if (m) {
      try { await page(...m.slice(1).map(decodeURIComponent)); } catch (e) {
        show(el("p", { class: "error" }, `Could not load this page: ${e.message}`));
      }
      return;
    }
  }
  show(el("p", { class: "error" }, "No such page."));
}
window.addEventListener("hashchange", route);
route();

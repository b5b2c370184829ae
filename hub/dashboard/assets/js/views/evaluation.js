// Evaluation page (综合评价): the hub's `GET reports/evaluation?from=&to=` answering three
// questions at a glance — who is late (departments), where problems cluster (grid cells, repeat
// offenders), which sensors are unreliable (data completeness) — with ranked tables that show
// names, bar charts whose axes are labelled in the chosen language, a department × week heat
// map, a drill-down from a name or a number to the events behind it, and CSV/XLSX downloads of
// the same tables. Printing (A4) keeps the tables and charts and drops the controls (app.css,
// block "evaluation print"). The report's JSON is paged (`limit` rows per table, `totals`): the
// page asks for the first ROWS_LOADED rows of every table and pages on (in what it holds, then
// from the hub with `table=…&offset=…`), so a district's 100k components do not load at once.

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, fmtNum, fmtDuration, fmtTime, errorBox, empty } from "../util.js";

const PERIODS = [
  { key: "range.24h", ms: 24 * 3600e3 },
  { key: "range.7d", ms: 7 * 24 * 3600e3 },
  { key: "range.30d", ms: 30 * 24 * 3600e3 },
];
/** Rows a ranked table shows at a time (‹ › page on); the downloads hold every row. */
const ROWS_SHOWN_MAX = 15;
/** Rows of each table one report request loads (the hub's `limit`). */
const ROWS_LOADED = 1000;
/** Bars a chart draws. */
const BARS_MAX = 12;
let periodIndex = 1;

export async function render(main) {
  main.append(h("h1", {}, t("nav.evaluation")));
  const seg = h("span", { class: "seg", id: "period" });
  const downloads = h("span", { class: "eval-downloads" });
  const body = h("div", { id: "eval-body" });
  main.append(h("div", { class: "toolbar eval-controls" }, h("label", {}, t("eval.period")), seg, downloads), body);
  const draw = async () => {
    empty(seg).append(...PERIODS.map((p, i) => h("button", { class: i === periodIndex ? "on" : "", onclick: () => { periodIndex = i; draw(); } }, t(p.key))));
    const to = new Date();
    const from = new Date(to.getTime() - PERIODS[periodIndex].ms);
    const range = { from: from.toISOString(), to: to.toISOString() };
    empty(downloads).append(h("button", { id: "eval-xlsx", onclick: () => download("reports/evaluation.xlsx", range, "evaluation.xlsx") }, t("eval.download_xlsx")));
    let report;
    try {
      report = await api.get("reports/evaluation", { ...range, limit: ROWS_LOADED });
    } catch (e) {
      empty(body).append(errorBox(e));
      return;
    }
    empty(body).append(...page(report || {}, range));
  };
  await draw();
}

/** The page's sections, in the order a director reads them. */
function page(r, range) {
  const drill = h("section", { class: "panel eval-drill", id: "eval-drill", hidden: true });
  const ctx = { range, drill, totals: r.totals || {} };
  const rows = (name) => (Array.isArray(r[name]) ? r[name] : []);
  return [
    h("p", { class: "muted eval-range" }, fmtTime(r.from), " – ", fmtTime(r.to), " · ", t("eval.drill.hint")),
    summary(r, rows),
    section("eval.q.late", "departments", ctx, departmentsPanel(rows("departments"), ctx), heatMap(rows("trend_weekly"), ctx)),
    section("eval.q.cluster", "grid_cells", ctx, gridPanel(rows("grid_cells"), ctx), offendersPanel(rows("repeat_offenders"), ctx)),
    section("eval.q.unreliable", "components", ctx, componentsPanel(rows("components"), ctx), rollups(r, rows, ctx), outages(r)),
    section("eval.q.trend", "trend_daily", ctx, trendPanel(rows("trend_daily"))),
    drill,
  ];
}

function section(titleKey, table, ctx, ...children) {
  return h("section", { class: "panel eval-section", id: "eval-" + table },
    h("div", { class: "eval-head" }, h("h2", {}, t(titleKey)), csvButton(table, ctx)),
    ...children);
}

function csvButton(table, ctx) {
  return h("button", { class: "eval-csv", "data-table": table, onclick: () => download("reports/evaluation.csv", { ...ctx.range, table }, `evaluation-${table}.csv`) }, t("eval.download_csv"));
}

/** Downloads a report export with the session's token (a plain link could not send it). */
async function download(path, query, name) {
  const resp = await fetch(api.url(path, query), { headers: { Authorization: "Bearer " + api.token() } });
  if (!resp.ok) {
    alert(t("error.generic") + ": " + resp.status);
    return;
  }
  const a = h("a", { href: URL.createObjectURL(await resp.blob()), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

function pct(v) {
  return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + " %";
}

function fmtCell(col, v) {
  if (v === null || v === undefined || v === "") return "—";
  if (/rate|completeness/.test(col)) return pct(v);
  if (/_s(\.|$)/.test(col) && typeof v === "number") return fmtDuration(v * 1000);
  if (/^(monitored_from|period)$/.test(col)) return fmtTime(v);
  return typeof v === "number" ? fmtNum(v) : String(v);
}

function summary(r, rows) {
  // Every sensor once, whatever page of the components is loaded.
  const comps = rows("completeness_by_type");
  const sum = (list, k) => list.reduce((a, x) => a + (typeof x[k] === "number" ? x[k] : 0), 0);
  const expected = sum(comps, "expected");
  const depts = rows("departments");
  const closed = sum(depts, "closed");
  const card = (id, cls, n, l) => h("div", { class: "card " + cls, id }, h("div", { class: "n" }, n), h("div", { class: "l" }, l));
  return h("section", { class: "panel" },
    h("div", { class: "cards" },
      card("eval-completeness", "normal", expected ? pct(sum(comps, "received") / expected) : "—", t("eval.summary.completeness")),
      card("eval-received", "info", fmtNum(sum(rows("grid_cells"), "events")), t("eval.summary.received")),
      card("eval-on-time", "minor", closed ? pct(sum(depts, "closed_on_time") / closed) : "—", t("eval.summary.on_time")),
      card("eval-overdue", "alarm", fmtNum(sum(depts, "overdue_now")), t("eval.summary.overdue_now")),
    ),
    h("p", { class: "muted eval-note" }, t("eval.exclusions")));
}

/** The announced edge outages the report excluded (`exclusions.announced_outages`). */
function outages(r) {
  const list = r.exclusions?.announced_outages || [];
  if (!list.length) return null;
  return h("div", { class: "eval-outages", id: "eval-outages" },
    h("h3", {}, t("eval.outages")),
    h("ul", {}, list.map((o) => h("li", {}, label("edge", o.edge_id), " · ", fmtTime(o.from), " – ", fmtTime(o.until), o.reason ? " · " + o.reason : ""))));
}

/**
 * A ranked table: `cols` are [column, kind] with kind "name" (the row's label), "num" or "text".
 * It shows ROWS_SHOWN_MAX rows at a time; ‹ › page through `list`, and past its end `more()`
 * (if given) fetches the next rows from the hub (null when there are none).
 */
function ranked(id, list, cols, ctx, nameOf, drillOf, more) {
  if (!list.length) return h("p", { class: "muted" }, t("eval.empty"));
  const cell = (row, [c, kind]) => {
    const text = kind === "name" ? nameOf(row) : c === "grid_cell" ? label("grid", row[c]) : fmtCell(c, row[c]);
    const q = drillOf && (kind === "name" || kind === "drill") ? drillOf(row) : null;
    const content = q ? h("a", { href: "#", class: "eval-drill-link", onclick: (ev) => { ev.preventDefault(); drillDown(ctx, q, nameOf(row)); } }, text) : text;
    return h("td", { class: kind === "text" || kind === "name" ? "" : "num" }, content);
  };
  const rows = [...list];
  let start = 0;
  let exhausted = !more;
  const tbody = h("tbody", {});
  const where = h("span", { class: "muted eval-pager-at" });
  const prev = h("button", { class: "eval-prev", onclick: () => show(start - ROWS_SHOWN_MAX) }, "‹");
  const next = h("button", { class: "eval-next", onclick: () => show(start + ROWS_SHOWN_MAX) }, "›");
  const show = async (at) => {
    if (at + ROWS_SHOWN_MAX > rows.length && !exhausted) {
      const got = await more(rows.length);
      if (got && got.length) rows.push(...got);
      else exhausted = true;
    }
    start = Math.max(0, Math.min(at, rows.length - 1));
    const page = rows.slice(start, start + ROWS_SHOWN_MAX);
    empty(tbody).append(...page.map((row, i) => h("tr", {}, h("td", { class: "num" }, start + i + 1), cols.map((c) => cell(row, c)))));
    where.textContent = t("eval.rows", { a: start + 1, b: start + page.length, n: exhausted ? rows.length : "…" });
    prev.disabled = start === 0;
    next.disabled = exhausted && start + ROWS_SHOWN_MAX >= rows.length;
  };
  show(0);
  const table = h("table", { class: "eval-table", id },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), cols.map(([c, kind]) => h("th", { class: kind === "text" || kind === "name" ? "" : "num" }, label("col", c))))),
    tbody);
  if (rows.length <= ROWS_SHOWN_MAX && exhausted) return table;
  return h("div", { class: "eval-paged" }, table, h("div", { class: "eval-pager", id: id + "-pager" }, prev, where, next));
}

/** The next loaded page of `table` from the hub, from row `offset` on. */
async function loadRows(ctx, table, offset) {
  if (offset >= (ctx.totals[table] ?? 0)) return null;
  const r = await api.get("reports/evaluation", { ...ctx.range, table, offset, limit: ROWS_LOADED });
  return Array.isArray(r?.[table]) ? r[table] : null;
}

function departmentsPanel(list, ctx) {
  // Who is late: most overdue now first, then the lowest on-time closure rate.
  const sorted = [...list].sort((a, b) => (b.overdue_now || 0) - (a.overdue_now || 0) || (a.on_time_closure_rate ?? 2) - (b.on_time_closure_rate ?? 2));
  const name = (r) => label("dept", r.department);
  const flat = sorted.map((r) => ({ ...r, "time_to_acknowledge_s.p50": r.time_to_acknowledge_s?.p50, "time_to_close_s.p90": r.time_to_close_s?.p90, "onward_response_s.p50": r.onward_response_s?.p50 }));
  // Eleven figures per department: the chart above the table, both full width.
  return h("div", { class: "eval-stack" },
    bars(sorted.map(name), sorted.map((r) => r.on_time_closure_rate), { axisLabel: t("eval.axis.on_time"), categoryLabel: t("eval.axis.department"), percent: true }),
    ranked("eval-departments-table", flat, [["department", "name"], ["events_received", "drill"], ["acknowledged", "num"], ["dispatched_onward", "num"], ["closed", "num"], ["on_time_closure_rate", "num"], ["overdue_now", "drill"], ["reopened_rate", "num"], ["time_to_acknowledge_s.p50", "num"], ["time_to_close_s.p90", "num"], ["onward_response_s.p50", "num"]], ctx, name, (r) => ({ department: r.department })));
}

/** Department × week: each cell the on-time closure rate (colour) and the events received. */
function heatMap(weekly, ctx) {
  // Departments with an event figure (the weekly rows also carry every department's completeness).
  const rows = weekly.filter((r) => r.department !== "*" && (r.received || r.acknowledged || r.closed || r.overdue));
  if (!rows.length) return null;
  const weeks = [...new Set(rows.map((r) => r.period))].sort();
  const depts = [...new Set(rows.map((r) => r.department))].sort();
  const at = (d, w) => rows.find((r) => r.department === d && r.period === w);
  const colour = (rate) => (rate === null || rate === undefined ? "#f2f4f7" : `hsl(${Math.round(rate * 120)}, 65%, ${88 - Math.round(rate * 20)}%)`);
  return h("div", { class: "eval-heat" },
    h("h3", {}, t("eval.heatmap")),
    h("table", { id: "eval-heatmap" },
      h("thead", {}, h("tr", {}, h("th", {}, t("eval.axis.department")), weeks.map((w) => h("th", { class: "num" }, t("eval.axis.week_of", { d: fmtDay(w) }))))),
      h("tbody", {}, depts.map((d) => h("tr", {}, h("th", {}, label("dept", d)), weeks.map((w) => {
        const c = at(d, w);
        return h("td", { class: "num", style: `background:${colour(c?.on_time_closure_rate)}`, title: c ? `${label("col", "received")}: ${c.received}` : "" },
          c ? h("a", { href: "#", class: "eval-drill-link", onclick: (ev) => { ev.preventDefault(); drillDown(ctx, { department: d }, label("dept", d)); } }, c.closed ? pct(c.on_time_closure_rate) : "—", h("span", { class: "muted" }, ` (${c.received})`)) : "");
      }))))),
    h("p", { class: "muted" }, t("eval.heatmap_legend")));
}

function gridPanel(list, ctx) {
  const name = (r) => label("grid", r.grid_cell);
  return h("div", { class: "eval-pair" },
    bars(list.map(name), list.map((r) => r.events), { axisLabel: t("eval.axis.events"), categoryLabel: t("eval.axis.grid_cell") }),
    ranked("eval-grid-table", list, [["grid_cell", "name"], ["components", "num"], ["events", "num"], ["events_per_component", "num"], ["open_backlog", "num"]], ctx, name, null));
}

function offendersPanel(list, ctx) {
  const name = (r) => r.name || r.component_id;
  return h("div", {},
    h("h3", {}, label("col", "repeat_offenders")),
    ranked("eval-offenders-table", list, [["name", "name"], ["component_id", "text"], ["type", "text"], ["events", "drill"], ["open", "num"], ["event_types", "text"]], ctx, name, (r) => ({ component: r.component_id })));
}

function componentsPanel(list, ctx) {
  // Rows of the hub's ranking loaded so far (the filter below drops some of each page).
  let loaded = list.length;
  const more = async () => {
    const got = await loadRows(ctx, "components", loaded);
    if (!got) return null;
    loaded += got.length;
    return got.filter((r) => r.expected > 0 && r.received > 0);
  };
  // Reporting components worst first, as the hub ranks them; the ones that sent nothing at all
  // are counted apart (listed on demand), so they do not hide the partly reporting ones.
  const name = (r) => r.name || r.component_id;
  const expected = list.filter((r) => r.expected > 0);
  const silent = expected.filter((r) => !r.received);
  const shown = expected.filter((r) => r.received > 0);
  const cols = [["name", "name"], ["component_id", "text"], ["grid_cell", "text"], ["edge", "text"], ["received", "num"], ["expected", "num"], ["excluded_s", "num"], ["completeness", "num"]];
  const silentBox = h("div", { class: "eval-silent" });
  const silentLine = silent.length
    ? h("p", { class: "muted", id: "eval-silent" }, t("eval.silent", { n: silent.length }), " ",
      h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); empty(silentBox).append(ranked("eval-silent-table", silent, cols, ctx, name, (r) => ({ component: r.component_id }))); } }, t("eval.silent_show")))
    : null;
  return h("div", {},
    h("div", { class: "eval-pair" },
      bars(shown.map(name), shown.map((r) => r.completeness), { axisLabel: t("eval.axis.completeness"), categoryLabel: t("eval.axis.component"), percent: true }),
      ranked("eval-components-table", shown, cols, ctx, name, (r) => ({ component: r.component_id }), loaded < (ctx.totals.components ?? 0) ? more : null)),
    silentLine, silentBox);
}

function rollups(r, rows, ctx) {
  const tables = [["completeness_by_type", "ctype"], ["completeness_by_grid_cell", "grid"], ["completeness_by_department", "dept"], ["completeness_by_edge", "edge"]];
  return h("div", { class: "eval-rollups" }, tables.map(([name, prefix]) =>
    h("div", {}, h("h3", {}, label("col", name)),
      ranked("eval-" + name, rows(name), [["key", "name"], ["sensors", "num"], ["completeness", "num"]], ctx, (x) => label(prefix, x.key), null))));
}

function trendPanel(daily) {
  const all = daily.filter((r) => r.department === "*").sort((a, b) => (a.period < b.period ? -1 : 1));
  if (!all.length) return h("p", { class: "muted" }, t("eval.empty"));
  return h("div", { class: "eval-pair" },
    bars(all.map((r) => fmtDay(r.period)), all.map((r) => r.received), { axisLabel: t("eval.axis.received"), categoryLabel: t("eval.axis.day"), vertical: true }),
    bars(all.map((r) => fmtDay(r.period)), all.map((r) => r.closed), { axisLabel: t("eval.axis.closed"), categoryLabel: t("eval.axis.day"), vertical: true }),
    h("div", { id: "eval-trend-completeness" },
      bars(all.map((r) => fmtDay(r.period)), all.map((r) => r.completeness), { axisLabel: t("eval.axis.completeness"), categoryLabel: t("eval.axis.day"), percent: true, vertical: true })));
}

function fmtDay(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : `${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * A bar chart as SVG (crisp on screen and on paper): horizontal bars with the names on the
 * category axis, or `vertical` bars for days; both axes carry a title in the page's language
 * and the value axis has ticks (0–100 % for `percent`).
 */
function bars(labels, values, { axisLabel, categoryLabel, percent = false, vertical = false }) {
  const n = Math.min(labels.length, vertical ? 31 : BARS_MAX);
  if (!n) return h("p", { class: "muted" }, t("eval.empty"));
  const vals = values.slice(0, n).map((v) => (typeof v === "number" ? v : 0));
  // Percentages run 0–100 %; counts get whole-number ticks (a count of 0.3 events reads wrong).
  const step = percent ? 0.25 : Math.max(1, Math.ceil(Math.max(1, ...vals) / 4));
  const max = percent ? 1 : step * Math.max(1, Math.ceil(Math.max(...vals) / step));
  const ticks = [];
  for (let v = 0; v <= max + 1e-9; v += step) ticks.push(v);
  const tick = (v) => (percent ? Math.round(v * 100) + "%" : fmtNum(v, 0));
  const W = 460, name = vertical ? 0 : 150, top = 8, axis = 34;
  const band = vertical ? Math.max(12, Math.floor((W - 60) / n)) : 20;
  // Room on the right for a bar's value label.
  const plotW = vertical ? band * n : W - name - 56;
  const plotH = vertical ? 150 : band * n;
  const H = top + plotH + axis + (vertical ? 16 : 0);
  const left = vertical ? 50 : name;
  const svg = s("svg", { class: "eval-chart", viewBox: `0 0 ${left + plotW + 56} ${H}`, role: "img", "aria-label": `${categoryLabel} / ${axisLabel}` });
  const scale = (v) => (v / max) * (vertical ? plotH : plotW);
  for (const v of ticks) {
    const p = vertical ? top + plotH - scale(v) : left + scale(v);
    svg.append(vertical ? s("line", { x1: left, x2: left + plotW, y1: p, y2: p, class: "grid" }) : s("line", { x1: p, x2: p, y1: top, y2: top + plotH, class: "grid" }));
    svg.append(vertical ? s("text", { x: left - 4, y: p + 4, "text-anchor": "end", class: "tick" }, tick(v)) : s("text", { x: p, y: top + plotH + 14, "text-anchor": "middle", class: "tick" }, tick(v)));
  }
  vals.forEach((v, i) => {
    const text = s("title", {}, `${labels[i]}: ${percent ? pct(values[i]) : fmtNum(values[i])}`);
    if (vertical) {
      const x = left + i * band + 2;
      svg.append(s("rect", { x, y: top + plotH - scale(v), width: band - 4, height: scale(v), class: "bar" }, text));
      if (n <= 16 || i % Math.ceil(n / 16) === 0) svg.append(s("text", { x: x + band / 2 - 2, y: top + plotH + 14, "text-anchor": "middle", class: "tick" }, labels[i]));
    } else {
      const y = top + i * band;
      svg.append(s("text", { x: name - 6, y: y + band / 2 + 4, "text-anchor": "end", class: "name" }, clip(labels[i], 18)));
      svg.append(s("rect", { x: left, y: y + 3, width: Math.max(1, scale(v)), height: band - 6, class: "bar" }, text));
      svg.append(s("text", { x: left + Math.max(1, scale(v)) + 4, y: y + band / 2 + 4, class: "value" }, percent ? pct(values[i]) : fmtNum(values[i])));
    }
  });
  const axisY = top + plotH + (vertical ? 30 : 28);
  svg.append(s("text", { x: left + plotW / 2, y: axisY, "text-anchor": "middle", class: "axis" }, vertical ? categoryLabel : axisLabel));
  svg.append(s("text", { x: 12, y: top + plotH / 2, "text-anchor": "middle", transform: `rotate(-90 12 ${top + plotH / 2})`, class: "axis" }, vertical ? axisLabel : categoryLabel));
  return h("div", { class: "eval-chart-box" }, svg);
}

function clip(text, n) {
  const str = String(text ?? "");
  return str.length > n ? str.slice(0, n - 1) + "…" : str;
}

/** Lists the events behind a figure (a department's, a component's) in the report's range. */
async function drillDown(ctx, query, what) {
  const panel = ctx.drill;
  panel.hidden = false;
  empty(panel).append(h("h2", {}, t("eval.drill.title", { what })));
  panel.scrollIntoView({ block: "nearest" });
  let items;
  try {
    items = (await api.all("events", { ...query, since: ctx.range.from })).items;
  } catch (e) {
    panel.append(errorBox(e));
    return;
  }
  if (!items.length) {
    panel.append(h("p", { class: "muted" }, t("eval.drill.none")));
    return;
  }
  panel.append(h("table", { id: "eval-drill-table" },
    h("thead", {}, h("tr", {}, ["event.id", "event.type", "event.status", "event.department", "event.raised_at"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, items.map((e) => h("tr", {},
      h("td", {}, h("a", { href: "#/events/" + e.id }, "#" + e.id)),
      h("td", {}, label("etype", e.type)),
      h("td", {}, label("estatus", e.status), e.overdue ? h("span", { class: "badge overdue" }, t("event.overdue")) : null),
      h("td", {}, label("dept", e.department)),
      h("td", {}, fmtTime(e.raised_at)))))));
}

// Evaluation page (综合评价): the hub's `GET reports/evaluation?from=&to=` as tables, with a bar
// chart of one chosen column per table. The tables are drawn from the report's own rows, so a
// column the hub adds later shows up without a dashboard change.

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, fmtNum, fmtDuration, fmtTime, errorBox, empty } from "../util.js";
import { barChart } from "../chart.js";

const PERIODS = [
  { key: "range.24h", ms: 24 * 3600e3 },
  { key: "range.7d", ms: 7 * 24 * 3600e3 },
  { key: "range.30d", ms: 30 * 24 * 3600e3 },
];
/** Columns preferred for the bar chart, in order, when a table has them. */
const CHART_PREFERENCE = ["events_received", "completeness", "on_time_closure_rate", "overdue", "received"];
/** Rows a table shows before the rest is folded away. */
const ROWS_SHOWN_MAX = 200;
let periodIndex = 1;

export async function render(main) {
  main.append(h("h1", {}, t("nav.evaluation")));
  const seg = h("span", { class: "seg", id: "period" });
  const body = h("div", {});
  main.append(h("div", { class: "toolbar" }, h("label", {}, t("eval.period")), seg), body);
  const draw = async () => {
    empty(seg).append(...PERIODS.map((p, i) => h("button", { class: i === periodIndex ? "on" : "", onclick: () => { periodIndex = i; draw(); } }, t(p.key))));
    const to = new Date();
    const from = new Date(to.getTime() - PERIODS[periodIndex].ms);
    let report;
    try {
      report = await api.get("reports/evaluation", { from: from.toISOString(), to: to.toISOString() });
    } catch (e) {
      empty(body).append(errorBox(e));
      return;
    }
    empty(body);
    const tables = Object.entries(report || {}).filter(([, v]) => Array.isArray(v));
    const scalars = Object.entries(report || {}).filter(([, v]) => v === null || typeof v !== "object");
    if (scalars.length) {
      body.append(h("section", { class: "panel" }, h("dl", { class: "kv" }, scalars.map(([k, v]) => [h("dt", {}, label("col", k)), h("dd", {}, k === "from" || k === "to" ? fmtTime(v) : fmtCell(k, v))]))));
    }
    if (!tables.length) body.append(h("p", { class: "muted" }, t("eval.empty")));
    for (const [name, rows] of tables) body.append(table(name, rows));
  };
  await draw();
}

function fmtCell(col, v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number" && /rate|completeness|ratio/.test(col) && v <= 1) return (v * 100).toFixed(1) + " %";
  if (typeof v === "number" && /_ms(\.|$)/.test(col)) return fmtDuration(v);
  if (typeof v === "number" && /_s(\.|$)/.test(col)) return fmtDuration(v * 1000);
  if (typeof v === "object") return JSON.stringify(v);
  return typeof v === "number" ? fmtNum(v) : String(v);
}

/** Nested objects (e.g. `time_to_acknowledge_s: {p50, p90}`) become dotted columns. */
function flatten(row, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(row || {})) {
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, prefix + k + ".", out);
    else out[prefix + k] = v;
  }
  return out;
}

function table(name, rawRows) {
  const rows = rawRows.map((r) => flatten(r));
  const panel = h("section", { class: "panel", id: "eval-" + name }, h("h2", {}, label("col", name)));
  if (!rows.length) {
    panel.append(h("p", { class: "muted" }, t("eval.empty")));
    return panel;
  }
  const all = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  // A column is a figure when its values are numbers, or all empty (a rate with nothing closed yet).
  const numeric = all.filter((c) => rows.some((r) => typeof r[c] === "number") || rows.every((r) => r[c] == null));
  // What a row is about (department, component) first, then its figures.
  const cols = [...all.filter((c) => !numeric.includes(c)), ...numeric];
  const key = cols.find((c) => !numeric.includes(c)) || cols[0];
  const chartBox = h("div", { class: "bars" });
  if (numeric.length) {
    const pick = h("select", { onchange: () => chart(pick.value) }, numeric.map((c) => h("option", { value: c }, label("col", c))));
    pick.value = CHART_PREFERENCE.find((c) => numeric.includes(c)) || numeric[0];
    const chart = (col) => {
      empty(chartBox);
      const shown = rows.slice(0, 40);
      barChart(chartBox, shown.map((r) => shortLabel(key, r[key])), shown.map((r) => (typeof r[col] === "number" ? r[col] : null)), { label: label("col", col), category: label("col", key) });
    };
    panel.append(h("div", { class: "toolbar" }, h("label", {}, t("eval.chart")), pick), chartBox);
    requestAnimationFrame(() => chart(pick.value));
  }
  panel.append(
    h("table", {},
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { class: numeric.includes(c) ? "num" : "" }, label("col", c))))),
      h("tbody", {}, rows.slice(0, ROWS_SHOWN_MAX).map((r) =>
        h("tr", {}, cols.map((c) => h("td", { class: numeric.includes(c) ? "num" : "" }, c === "department" ? label("dept", r[c]) : c === "component_id" ? h("a", { href: "#/component/" + encodeURIComponent(r[c]) }, r[c]) : fmtCell(c, r[c])))),
      )),
    ),
  );
  if (rows.length > ROWS_SHOWN_MAX) panel.append(h("p", { class: "muted" }, t("list.cut")));
  return panel;
}

function shortLabel(key, v) {
  if (key === "department") return label("dept", v);
  const s = String(v ?? "");
  // Component codes differ in class and serial: the last 10 digits tell them apart.
  return s.length > 12 ? "…" + s.slice(-10) : s;
}

// Component page: registry details, latest values, a trend chart per quantity over a chosen
// range (downsampled by the hub beyond 1 h), and the component's events with their history.

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, badge, fmtTime, fmtNum, errorBox, empty } from "../util.js";
import { quantitiesOf, UNITS, BOOLEAN } from "../catalogue.js";
import { timeChart } from "../chart.js";
import { refreshOnLive } from "./common.js";

/** Range choices: label key, length, and the downsampling step asked of the hub (none = raw). */
const RANGES = [
  { key: "range.1h", ms: 3600e3, step: null },
  { key: "range.24h", ms: 24 * 3600e3, step: "2m" },
  { key: "range.7d", ms: 7 * 24 * 3600e3, step: "15m" },
];
/** How far back "latest value" looks. */
const LATEST_WINDOW_MS = 3600e3;
/** Most events whose history the page loads. */
const EVENTS_WITH_HISTORY_MAX = 20;

let rangeIndex = 1;

export async function render(main, args, ctx) {
  const id = args[0] || "";
  let comp;
  try {
    comp = await api.get("components/" + encodeURIComponent(id));
  } catch (e) {
    main.append(h("h1", {}, t("component.title")), errorBox(e));
    return;
  }
  main.append(
    h("h1", {}, comp.name, " ", badge(comp.status, label("status", comp.status))),
    h("div", { class: "grid2" }, details(comp), h("section", { class: "panel", id: "latest" }, h("h2", {}, t("component.latest")))),
  );
  const charts = h("section", { class: "panel", id: "charts" });
  const evs = h("section", { class: "panel", id: "component-events" });
  main.append(charts, evs);
  const quantities = quantitiesOf(comp.type);
  await Promise.all([latest(main.querySelector("#latest"), comp, quantities), drawCharts(charts, comp, quantities), drawEvents(evs, comp)]);
  return refreshOnLive(ctx, () => drawEvents(evs, comp));
}

function details(c) {
  const row = (k, v) => [h("dt", {}, t(k)), h("dd", {}, v ?? "—")];
  return h("section", { class: "panel", id: "details" },
    h("h2", {}, t("component.details")),
    h("dl", { class: "kv" },
      row("component.id", c.id),
      row("component.type", label("ctype", c.type)),
      row("component.address", c.address),
      row("component.position", c.lat != null ? `${fmtNum(c.lat, 6)}, ${fmtNum(c.lon, 6)}` : null),
      row("component.grid", c.grid_cell && label("grid", c.grid_cell) !== c.grid_cell ? `${label("grid", c.grid_cell)} (${c.grid_cell})` : c.grid_cell),
      row("component.owner", label("dept", c.owner_department)),
      row("component.maintainer", label("dept", c.maintainer_department)),
      row("component.status", badge(c.status, label("status", c.status))),
    ),
  );
}

/** A value with its unit; booleans as yes/no. */
export function showValue(q, v) {
  if (v === null || v === undefined) return "—";
  if (BOOLEAN.has(q)) return v === true || v >= 0.5 ? t("bool.true") : t("bool.false");
  return fmtNum(v) + (UNITS[q] ? " " + UNITS[q] : "");
}

async function latest(panel, comp, quantities) {
  const to = Date.now();
  const box = h("div", { class: "values" });
  panel.append(box);
  if (!quantities.length) box.append(h("p", { class: "muted" }, t("component.no_quantities")));
  const results = await Promise.allSettled(
    quantities.map((q) => api.get(`components/${encodeURIComponent(comp.id)}/readings`, { quantity: q, from: to - LATEST_WINDOW_MS, to })),
  );
  quantities.forEach((q, i) => {
    const r = results[i];
    const last = r.status === "fulfilled" ? r.value.points.at(-1) : null;
    box.append(
      h("div", { class: "value", dataset: { quantity: q } },
        h("div", { class: "q" }, label("qty", q)),
        h("div", { class: "v" }, last ? showValue(q, last.value) : "—"),
        h("div", { class: "q" }, last ? fmtTime(last.ts) : r.status === "rejected" ? r.reason.message : t("component.no_recent")),
      ),
    );
  });
}

async function drawCharts(panel, comp, quantities) {
  empty(panel);
  const seg = h("span", { class: "seg", id: "range" },
    RANGES.map((r, i) => h("button", { class: i === rangeIndex ? "on" : "", "data-range": r.key, onclick: () => { rangeIndex = i; drawCharts(panel, comp, quantities); } }, t(r.key))),
  );
  panel.append(h("div", { class: "toolbar" }, h("h2", { style: "margin:0;flex:1" }, t("component.trends")), seg));
  const range = RANGES[rangeIndex];
  const to = Date.now();
  const from = to - range.ms;
  for (const q of quantities) {
    const box = h("div", { class: "chart", dataset: { quantity: q } }, h("h3", {}, label("qty", q), UNITS[q] ? ` (${UNITS[q]})` : ""));
    panel.append(box);
    try {
      const r = await api.get(`components/${encodeURIComponent(comp.id)}/readings`, { quantity: q, from, to, step: range.step });
      if (!r.points.length) {
        box.append(h("p", { class: "muted" }, t("component.no_data")));
        continue;
      }
      const plot = h("div", { class: "plot" });
      box.append(plot);
      timeChart(plot, r.points, { unit: UNITS[q], step: BOOLEAN.has(q) });
    } catch (e) {
      box.append(errorBox(e));
    }
  }
}

async function drawEvents(panel, comp) {
  let list;
  try {
    list = (await api.get("events", { component: comp.id, limit: 100 })).items || [];
  } catch (e) {
    empty(panel).append(h("h2", {}, t("component.events")), errorBox(e));
    return;
  }
  list.sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
  const detailed = await Promise.all(
    list.slice(0, EVENTS_WITH_HISTORY_MAX).map((e) => api.get("events/" + e.id).catch(() => e)),
  );
  empty(panel).append(h("h2", {}, t("component.events")));
  if (!list.length) panel.append(h("p", { class: "muted" }, t("component.no_events")));
  for (const e of detailed) {
    panel.append(
      h("div", { class: "panel", dataset: { event: e.id } },
        h("div", { class: "toolbar" },
          badge(e.severity, label("severity", e.severity)),
          h("a", { href: "#/events/" + e.id }, "#" + e.id + " " + label("etype", e.type)),
          badge("st", label("estatus", e.status)),
          e.overdue ? badge("overdue", t("event.overdue")) : null,
          h("span", { class: "muted" }, t("event.raised") + " " + fmtTime(e.raised_at)),
        ),
        history(e.history),
      ),
    );
  }
}

/** An event's transitions, oldest first: who did what, when, and their note. */
export function history(entries) {
  if (!entries || !entries.length) return h("p", { class: "muted" }, t("event.no_history"));
  return h("ul", { class: "history" },
    entries.map((x) =>
      h("li", {},
        h("span", { class: "when" }, fmtTime(x.at), " · ", x.actor || "—"), " ",
        h("b", {}, label("action", x.action)),
        x.to_status ? [" → ", label("estatus", x.to_status)] : null,
        x.department ? [" (", label("dept", x.department), ")"] : null,
        x.note ? h("div", {}, "“" + x.note + "”") : null,
      ),
    ),
  );
}

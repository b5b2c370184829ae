// Overview: components by status, open events by severity, and the open events a manager
// should look at first (most severe, then oldest), overdue ones highlighted.

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, badge, bySeverityThenAge, COMPONENT_STATUSES, SEVERITIES, fmtAge, fmtTime, errorBox, empty } from "../util.js";
import { refreshOnLive } from "./common.js";

export async function render(main, _args, ctx) {
  main.append(h("h1", {}, t("nav.overview")));
  const body = h("div", {});
  main.append(body);
  const draw = async () => {
    const [comps, evs] = await Promise.allSettled([api.all("components"), api.all("events")]);
    empty(body);
    body.append(componentsPanel(comps), eventsPanel(evs, comps));
  };
  await draw();
  return refreshOnLive(ctx, draw);
}

function componentsPanel(res) {
  const panel = h("section", { class: "panel", id: "component-counts" }, h("h2", {}, t("overview.components")));
  if (res.status === "rejected") {
    panel.append(errorBox(res.reason));
    return panel;
  }
  const counts = Object.fromEntries(COMPONENT_STATUSES.map((s) => [s, 0]));
  for (const c of res.value.items) counts[c.status] = (counts[c.status] || 0) + 1;
  panel.append(
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("div", { class: "n" }, res.value.items.length), h("div", { class: "l" }, t("overview.total"))),
      COMPONENT_STATUSES.map((s) =>
        h("a", { class: "card " + s, href: "#/map/" + s, dataset: { status: s } }, h("div", { class: "n" }, counts[s]), h("div", { class: "l" }, label("status", s))),
      ),
    ),
  );
  if (res.value.cut) panel.append(h("p", { class: "muted" }, t("list.cut")));
  return panel;
}

function eventsPanel(res, comps) {
  const panel = h("section", { class: "panel", id: "open-events" });
  if (res.status === "rejected") {
    panel.append(h("h2", {}, t("overview.events")), errorBox(res.reason));
    return panel;
  }
  const open = res.value.items.filter((e) => e.status !== "closed").sort(bySeverityThenAge);
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  for (const e of open) counts[e.severity] = (counts[e.severity] || 0) + 1;
  const overdue = open.filter((e) => e.overdue).length;
  const names = new Map(comps.status === "fulfilled" ? comps.value.items.map((c) => [c.id, c.name]) : []);
  panel.append(
    h("h2", {}, t("overview.events")),
    h("div", { class: "cards", id: "severity-counts" },
      SEVERITIES.map((s) => h("div", { class: "card " + s, dataset: { severity: s } }, h("div", { class: "n" }, counts[s]), h("div", { class: "l" }, label("severity", s)))),
      h("div", { class: "card alarm" }, h("div", { class: "n" }, overdue), h("div", { class: "l" }, t("event.overdue"))),
    ),
    h("h2", { style: "margin-top:16px" }, t("overview.open_events")),
    open.length
      ? eventTable(open, names)
      : h("p", { class: "muted" }, t("overview.no_open")),
  );
  return panel;
}

/** The open-events table, also used by the map's side list. */
export function eventTable(list, names) {
  return h("table", { class: "events" },
    h("thead", {}, h("tr", {},
      [t("event.severity"), t("event.type"), t("event.component"), t("event.status"), t("event.department"), t("event.age"), t("event.deadline")].map((c) => h("th", {}, c)),
    )),
    h("tbody", {}, list.map((e) =>
      h("tr", { class: "clickable" + (e.overdue ? " overdue" : ""), dataset: { event: e.id }, onclick: () => (location.hash = "#/events/" + e.id) },
        h("td", {}, badge(e.severity, label("severity", e.severity))),
        h("td", {}, label("etype", e.type)),
        h("td", {}, h("a", { href: "#/component/" + encodeURIComponent(e.component_id), onclick: (ev) => ev.stopPropagation() }, names.get(e.component_id) || e.component_id)),
        h("td", {}, badge("st", label("estatus", e.status))),
        h("td", {}, label("dept", e.department)),
        h("td", {}, fmtAge(e.raised_at)),
        h("td", {}, fmtTime(e.deadline), " ", e.overdue ? badge("overdue", t("event.overdue")) : null),
      ),
    )),
  );
}

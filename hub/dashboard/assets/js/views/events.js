// Events page: filter the events the token may see, open one, and act on it (acknowledge,
// dispatch to a department, start, resolve, close, reopen) with a note and photos (the
// thumbnails and the upload control are views/attachments.js). A 409 from the hub says which
// actions the event's state allows; it is shown as the hub wrote it.

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, badge, bySeverityThenAge, ACTIONS, EVENT_STATUSES, SEVERITIES, fmtTime, fmtAge, fmtNum, errorBox, empty } from "../util.js";
import { history, showValue } from "./component.js";
import { refreshOnLive } from "./common.js";
import { evidence, uploader } from "./attachments.js";

/** Filters survive navigation between events during the session. */
const filters = { status: "", type: "", severity: "", department: "" };
/** Department ids of the seed: the choices when the hub does not list its departments. */
const SEED_DEPARTMENTS = ["cg", "sw", "xf", "ga", "zm", "jd", "rq", "dl", "tx", "rl", "sj", "hb"];
const EVENT_TYPES = [
  "manhole.displaced", "light.fault", "hydrant.low_pressure", "hydrant.impact", "flood.warning", "flood.danger",
  "fire.smoke", "gas.leak", "security.door_open", "security.intrusion", "elevator.entrapment", "elevator.fault",
  "electrical.leakage", "sanitation.bin_full", "environment.pm25_high", "device.offline", "device.battery_low",
];

export async function render(main, args, ctx) {
  const selected = args[0] || "";
  const listed = (await api.departments()).map((d) => d.id);
  const departments = listed.length ? listed : SEED_DEPARTMENTS;
  main.append(h("h1", {}, t("nav.events")));
  const sel = (name, values, labelPrefix) =>
    h("select", { id: "filter-" + name, onchange: (ev) => { filters[name] = ev.target.value; drawList(); } },
      h("option", { value: "" }, t("filter.all")),
      values.map((v) => h("option", { value: v, selected: filters[name] === v ? "selected" : null }, label(labelPrefix, v))),
    );
  main.append(
    h("div", { class: "toolbar" },
      h("label", {}, t("event.status")), sel("status", EVENT_STATUSES, "estatus"),
      h("label", {}, t("event.type")), sel("type", EVENT_TYPES, "etype"),
      h("label", {}, t("event.severity")), sel("severity", SEVERITIES, "severity"),
      h("label", {}, t("event.department")), sel("department", departments, "dept"),
    ),
  );
  const layout = h("div", { class: "grid2" });
  const listPanel = h("section", { class: "panel", id: "event-list" });
  const detailPanel = h("section", { class: "panel", id: "event-detail" });
  layout.append(listPanel, detailPanel);
  main.append(layout);

  async function drawList() {
    let items;
    try {
      const q = { status: filters.status, type: filters.type, department: filters.department };
      items = (await api.all("events", q)).items;
    } catch (e) {
      empty(listPanel).append(errorBox(e));
      return;
    }
    if (filters.severity) items = items.filter((e) => e.severity === filters.severity);
    items.sort((a, b) => (a.status === "closed") - (b.status === "closed") || bySeverityThenAge(a, b));
    empty(listPanel).append(
      h("h2", {}, t("events.count", { n: items.length })),
      items.length
        ? h("table", {},
            h("thead", {}, h("tr", {}, ["#", t("event.severity"), t("event.type"), t("event.component"), t("event.status"), t("event.department"), t("event.age")].map((c) => h("th", {}, c)))),
            h("tbody", {}, items.map((e) =>
              h("tr", {
                class: "clickable" + (e.overdue ? " overdue" : "") + (String(e.id) === selected ? " selected" : ""),
                dataset: { event: e.id, status: e.status },
                onclick: () => (location.hash = "#/events/" + e.id),
              },
                h("td", {}, e.id),
                h("td", {}, badge(e.severity, label("severity", e.severity))),
                h("td", {}, label("etype", e.type)),
                h("td", {}, h("a", { href: "#/component/" + encodeURIComponent(e.component_id), onclick: (ev) => ev.stopPropagation() }, e.component_id)),
                h("td", {}, badge("st", label("estatus", e.status)), e.overdue ? [" ", badge("overdue", t("event.overdue"))] : null),
                h("td", {}, label("dept", e.department)),
                h("td", {}, fmtAge(e.raised_at)),
              ),
            )),
          )
        : h("p", { class: "muted" }, t("events.none")),
    );
  }

  async function drawDetail() {
    if (!selected) {
      empty(detailPanel).append(h("p", { class: "muted" }, t("events.pick")));
      return;
    }
    let e;
    try {
      e = await api.get("events/" + encodeURIComponent(selected));
    } catch (err) {
      empty(detailPanel).append(errorBox(err));
      form = null;
      return;
    }
    // The action form is built once per event and kept across redraws, so a live update
    // never throws away a note being typed; only the facts and the history are redrawn.
    if (!form || !form.isConnected) {
      form = actForm(e, departments, async () => { await Promise.all([drawList(), drawDetail()]); });
      empty(detailPanel).append(info, form);
    }
    info.replaceChildren(detail(e), evidence(e, drawDetail));
  }
  const info = h("div", {});
  let form = null;

  await Promise.all([drawList(), drawDetail()]);
  return refreshOnLive(ctx, () => Promise.all([drawList(), drawDetail()]));
}

function detail(e) {
  const row = (k, v) => [h("dt", {}, t(k)), h("dd", {}, v ?? "—")];
  const tr = e.trigger || {};
  return h("div", { dataset: { event: e.id, status: e.status } },
    h("h2", {}, "#" + e.id + " " + label("etype", e.type)),
    h("dl", { class: "kv" },
      row("event.severity", badge(e.severity, label("severity", e.severity))),
      row("event.status", h("span", { id: "event-status" }, badge("st", label("estatus", e.status)))),
      row("event.component", edgeOf(e)
        ? h("a", { href: "#/edges" }, e.component_id)
        : h("a", { href: "#/component/" + encodeURIComponent(e.component_id) }, e.component_id)),
      row("event.department", label("dept", e.department)),
      row("event.raised", fmtTime(e.raised_at)),
      row("event.cleared", fmtTime(e.cleared_at)),
      row("event.count", e.count),
      row("event.deadline", [fmtTime(e.deadline), e.overdue ? [" ", badge("overdue", t("event.overdue"))] : null]),
      row("event.trigger", edgeOf(e) ? edgeTrigger(tr) : tr.quantity ? `${label("qty", tr.quantity)} = ${showValue(tr.quantity, tr.value)}${tr.threshold != null ? " (" + t("event.threshold") + " " + fmtNum(tr.threshold) + ")" : ""} @ ${fmtTime(tr.ts)}` : null),
    ),
    h("h2", { style: "margin-top:14px" }, t("event.history")),
    history(e.history),
  );
}

/** An `edge.offline` event names an edge (`edge:<id>`), not a component. */
function edgeOf(e) {
  return e.type === "edge.offline" && e.component_id.startsWith("edge:");
}

/** Why the edge is offline, and the sensors whose own `device.offline` it holds back. */
function edgeTrigger(tr) {
  const v = tr.value && typeof tr.value === "object" ? tr.value : {};
  const sensors = Array.isArray(v.sensors) ? v.sensors : [];
  const more = (v.sensors_behind ?? sensors.length) - sensors.length;
  return h("span", { id: "edge-held-back" },
    `${label("cause", v.cause)} @ ${fmtTime(tr.ts)} · ${v.sensors_behind ?? sensors.length} device.offline held back: `,
    sensors.join(", ") + (more > 0 ? ` (+${more})` : ""),
  );
}

function actForm(e, departments, refresh) {
  const action = h("select", { id: "act-action" }, ACTIONS.map((a) => h("option", { value: a }, label("action", a))));
  const dept = h("select", { id: "act-department" },
    departments.map((d) => h("option", { value: d, selected: d === e.department ? "selected" : null }, label("dept", d))),
  );
  const deptWrap = h("span", { style: "display:none" }, h("label", {}, t("event.department"), " "), dept);
  const note = h("textarea", { id: "act-note", placeholder: t("act.note") });
  const msg = h("div", { id: "act-message" });
  action.addEventListener("change", () => (deptWrap.style.display = action.value === "dispatch" ? "" : "none"));
  const photos = uploader(e, refresh);
  const submit = h("button", { class: "primary", id: "act-submit", type: "button" }, t("act.submit"));
  submit.addEventListener("click", async () => {
    const body = { action: action.value };
    if (action.value === "dispatch") body.department = dept.value;
    if (note.value.trim()) body.note = note.value.trim();
    if (photos.ids().length) body.attachments = photos.ids();
    submit.disabled = true;
    try {
      await api.post(`events/${e.id}/transitions`, body);
      note.value = "";
      photos.clear();
      msg.className = "";
      msg.textContent = "";
      submit.disabled = false;
      await refresh();
    } catch (err) {
      submit.disabled = false;
      msg.className = "error";
      const why = err.code === "evidence_required" ? t("att.required") : err.status === 409 ? t("act.conflict") : err.status === 403 ? t("error.forbidden") : t("error.generic");
      msg.textContent = why + ": " + err.message;
      if (err.allowed) msg.append(h("div", {}, t("act.allowed"), " ", err.allowed.length ? err.allowed.map((a) => label("action", a)).join("、") : "—"));
    }
  });
  return h("div", {},
    h("h2", { style: "margin-top:14px" }, t("act.title")),
    h("div", { class: "act" }, action, deptWrap, note, submit),
    photos.el,
    msg,
  );
}


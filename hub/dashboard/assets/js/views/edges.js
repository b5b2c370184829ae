// Edges page: each edge box's state, last contact, backlog and how long the backlog will take
// to drain at the rate it is shrinking between refreshes (the hub reports backlog, not rate),
// and its configuration from the hub: desired vs applied version, in sync or not, last error
// (only for the edges the caller may manage; the others answer 404 and show "—").

import * as api from "../api.js";
import { t } from "../i18n.js";
import { h, badge, fmtTime, fmtAge, fmtDuration, errorBox, empty } from "../util.js";

/** How often the page asks the hub again. */
const REFRESH_INTERVAL_MS = 10000;
/** Previous sample per edge: {backlog, at}, kept across visits so the estimate starts sooner. */
const samples = new Map();

function fmtBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

/** Edges whose configuration is asked for on one refresh (one request each). */
const CONFIG_ROWS_MAX = 100;

/** What the edge did with the newest version it saw, when it did not apply it. */
function outcomeText(applied) {
  const v = { v: applied.version };
  return applied.outcome === "refused" ? t("edges.config_outcome_refused", v) : t("edges.config_outcome_rolled_back", v);
}

/** The cell of an edge's configuration state, `cfg` the answer of `edges/{id}/config`. */
function configCell(cfg) {
  if (!cfg || !cfg.desired) return [h("span", { class: "muted" }, "—")];
  const applied = cfg.applied;
  const parts = [
    cfg.in_sync ? badge("online", t("edges.config_in_sync")) : badge("alarm", t("edges.config_pending")),
    " ",
    t("edges.config_versions", { desired: cfg.desired.version, applied: applied ? applied.applied_version : "—" }),
  ];
  if (applied && applied.outcome !== "applied") {
    parts.push(h("div", { class: "muted", dataset: { outcome: applied.outcome } },
      outcomeText(applied) + (applied.error ? ": " + applied.error : "")));
  }
  return parts;
}

/** Fills the config cells of the first CONFIG_ROWS_MAX rows of `table`, one request per edge. */
async function fillConfig(table) {
  const cells = [...table.querySelectorAll("td[data-config]")].slice(0, CONFIG_ROWS_MAX);
  await Promise.all(cells.map(async (td) => {
    const cfg = await api.get("edges/" + encodeURIComponent(td.dataset.config) + "/config").catch(() => null);
    empty(td).append(...configCell(cfg));
  }));
}

/** A backlog unchanged this long is reported as not draining. */
const NOT_DRAINING_AFTER_MS = 60000;

/**
 * Time left at the rate the backlog shrank between its last two changes, or a word when it
 * cannot be said: [kind, text], kind one of drained | measuring | not_draining | growing | estimate.
 * Edges report their backlog periodically, so an unchanged value keeps the last estimate until
 * NOT_DRAINING_AFTER_MS.
 */
function drain(edge, now) {
  const prev = samples.get(edge.id);
  const backlog = edge.backlog_readings;
  const keep = (kind, text) => {
    samples.set(edge.id, { backlog, at: now, kind, text });
    return [kind, text];
  };
  if (!backlog) return keep("drained", t("edges.drained"));
  if (prev && prev.backlog === backlog) {
    if (now - prev.at >= NOT_DRAINING_AFTER_MS) return ["not_draining", t("edges.not_draining")];
    return [prev.kind, prev.text];
  }
  if (!prev || now <= prev.at) return keep("measuring", t("edges.measuring"));
  const rate = (prev.backlog - backlog) / ((now - prev.at) / 1000);
  if (rate < 0) return keep("growing", t("edges.growing"));
  return keep("estimate", fmtDuration((backlog / rate) * 1000));
}

/** The page for `items`, the edges the hub lists, at `now`: online/offline cards and the table. */
function edgesView(items, now) {
  const online = items.filter((e) => e.online).length;
  return [
    h("div", { class: "cards" },
      h("div", { class: "card normal" }, h("div", { class: "n" }, online), h("div", { class: "l" }, t("edges.online"))),
      h("div", { class: "card offline" }, h("div", { class: "n" }, items.length - online), h("div", { class: "l" }, t("edges.offline"))),
    ),
    h("p", {}),
    items.length
      ? h("table", {},
          h("thead", {}, h("tr", {},
            h("th", {}, t("edges.id")), h("th", {}, t("edges.name")), h("th", {}, t("edges.site")), h("th", {}, t("edges.state")),
            h("th", {}, t("edges.last_seen")), h("th", { class: "num" }, t("edges.backlog")), h("th", { class: "num" }, t("edges.backlog_bytes")),
            h("th", {}, t("edges.drain")), h("th", {}, t("edges.version")), h("th", {}, t("edges.config")),
          )),
          h("tbody", {}, items.map((e) =>
            h("tr", { dataset: { edge: e.id } },
              h("td", {}, e.id), h("td", {}, e.name), h("td", {}, e.site),
              h("td", {}, e.revoked ? badge("alarm", t("edges.revoked")) : e.online ? badge("online", t("edges.state_online")) : badge("offline", t("edges.state_offline"))),
              h("td", {}, e.last_seen ? [fmtTime(e.last_seen), h("div", { class: "muted" }, t("edges.ago", { d: fmtAge(e.last_seen) }))] : t("edges.never")),
              h("td", { class: "num" }, e.backlog_readings),
              h("td", { class: "num" }, fmtBytes(e.backlog_bytes)),
              ((d) => h("td", { dataset: { drain: d[0] } }, d[1]))(drain(e, now)),
              h("td", {}, e.version || "—"),
              h("td", { dataset: { config: e.id } }, "…"),
            ),
          )),
        )
      : h("p", { class: "muted" }, t("edges.none")),
  ];
}

export async function render(main) {
  main.append(h("h1", {}, t("nav.edges")));
  const panel = h("section", { class: "panel", id: "edges" });
  main.append(panel);
  // The page, or the error that kept the hub from listing the edges.
  const draw = async () => {
    const shown = await api.all("edges").then(({ items }) => edgesView(items, Date.now()), (e) => [errorBox(e)]);
    empty(panel).append(...shown);
    const table = panel.querySelector("table");
    if (table) await fillConfig(table);
  };
  await draw();
  const timer = setInterval(draw, REFRESH_INTERVAL_MS);
  return () => clearInterval(timer);
}

// Small DOM and formatting helpers shared by the views.
import { current, t } from "./i18n.js";

/** Builds an element: h("td", {class: "num", onclick: f}, child, "text", …). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const SEVERITIES = ["critical", "major", "minor", "info"];
export const EVENT_STATUSES = ["open", "acknowledged", "dispatched", "in_progress", "resolved", "closed"];
export const COMPONENT_STATUSES = ["normal", "alarm", "offline", "maintenance"];
export const ACTIONS = ["acknowledge", "dispatch", "start", "resolve", "close", "reopen"];

export function severityRank(s) {
  const i = SEVERITIES.indexOf(s);
  return i < 0 ? SEVERITIES.length : i;
}

/** Open events first by severity, then oldest first: what needs a person most comes first. */
export function bySeverityThenAge(a, b) {
  return severityRank(a.severity) - severityRank(b.severity) || Date.parse(a.raised_at) - Date.parse(b.raised_at);
}

export function badge(cls, text) {
  return h("span", { class: "badge " + cls }, text);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString(current() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

/** "3 h 5 min" style age of an ISO time, relative to now. */
export function fmtAge(iso) {
  const ms = Date.now() - Date.parse(iso);
  if (!isFinite(ms)) return "—";
  return fmtDuration(ms);
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t("unit.s", { n: s });
  const m = Math.floor(s / 60);
  if (m < 60) return t("unit.min", { n: m });
  const hh = Math.floor(m / 60);
  if (hh < 48) return t("unit.h_min", { h: hh, m: m % 60 });
  return t("unit.d_h", { d: Math.floor(hh / 24), h: hh % 24 });
}

export function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v === "boolean") return v ? "1" : "0";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits).replace(/\.?0+$/, "");
}

/** An error panel naming what failed, with the hub's message. 403 gets its own wording. */
export function errorBox(e) {
  // A 404 "no route" means this hub does not have the feature (an older or partial build).
  const missing = e && e.status === 404 && /^no route/.test(e.message || "");
  const msg = missing ? t("error.unavailable") : e && e.status === 403 ? t("error.forbidden") : e && e.status === 0 ? t("error.network") : t("error.generic");
  return h("div", { class: "error" }, msg, e && e.message ? ": " + e.message : "");
}

export function empty(el) {
  el.replaceChildren();
  return el;
}

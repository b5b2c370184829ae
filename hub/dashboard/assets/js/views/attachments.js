// Photos on an event (处置前/后照片): thumbnails, an upload control whose photos ride along
// with the next transition, and delete. The hub serves the original photo only to a bearer
// token, which an <img src> cannot carry, so each photo is fetched with the token and shown
// from an object URL; the thumbnail is that original scaled by the browser (the hub makes
// no smaller copy).

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, fmtTime } from "../util.js";

/** Object URLs by photo hash, kept across redraws so a live update does not fetch again. */
const objectUrls = new Map();

function objectUrl(a) {
  if (!objectUrls.has(a.sha256)) {
    const p = fetch(a.url, { headers: { Authorization: "Bearer " + api.token() } })
      .then((r) => {
        if (!r.ok) throw new Error(String(r.status));
        return r.blob();
      })
      .then((b) => URL.createObjectURL(b));
    p.catch(() => objectUrls.delete(a.sha256));
    objectUrls.set(a.sha256, p);
  }
  return objectUrls.get(a.sha256);
}

/** The history row whose transition carried each photo: id → row. */
function carriers(e) {
  const m = new Map();
  for (const row of e.history || []) for (const id of row.attachments || []) m.set(id, row);
  return m;
}

function thumbnail(e, a, row, refresh) {
  const img = h("img", { class: "att-thumb", alt: a.filename || "#" + a.id, dataset: { attachment: a.id } });
  const link = h("a", { target: "_blank", rel: "noopener" }, img);
  objectUrl(a)
    .then((u) => {
      img.src = u;
      link.href = u;
    })
    .catch(() => img.replaceWith(h("span", { class: "error" }, t("att.unavailable"))));
  const del = h("button", { type: "button", class: "att-delete", title: t("att.delete"), "aria-label": t("att.delete") }, "×");
  del.addEventListener("click", async () => {
    if (!confirm(t("att.confirm_delete"))) return;
    try {
      await api.request("DELETE", `events/${e.id}/attachments/${a.id}`);
      await refresh();
    } catch (err) {
      alert(err.message);
    }
  });
  return h("figure", { class: "att" },
    link,
    h("figcaption", {},
      row ? t("att.with", { action: label("action", row.action) }) : t("att.unreferenced"),
      " · ", fmtTime(a.uploaded_at), " · ", a.uploaded_by,
      a.location_removed ? h("div", { class: "muted" }, t("att.location_removed")) : null,
    ),
    del,
  );
}

/** The event's photos as thumbnails, with the transition each came with. */
export function evidence(e, refresh) {
  const items = e.attachments || [];
  const by = carriers(e);
  return h("section", { class: "att-section" },
    h("h2", { style: "margin-top:14px" }, t("att.title"), items.length ? " (" + items.length + ")" : ""),
    items.length
      ? h("div", { class: "att-gallery", id: "att-gallery" }, items.map((a) => thumbnail(e, a, by.get(a.id), refresh)))
      : h("p", { class: "muted", id: "att-none" }, t("att.none")),
  );
}

/**
 * An upload control for the action form: `el` to place, `ids()` the photos uploaded since the
 * last transition (sent as its `attachments`), `clear()` once a transition carried them.
 */
export function uploader(e, onUploaded) {
  const pending = [];
  const input = h("input", { type: "file", id: "att-file", accept: "image/jpeg,image/png,image/webp" });
  const msg = h("span", { id: "att-message" });
  const chips = h("span", { id: "att-pending" });
  const drawChips = () =>
    chips.replaceChildren(...(pending.length ? [t("att.pending") + " ", ...pending.map((id) => h("span", { class: "att-chip" }, "#" + id))] : []));
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    msg.className = "muted";
    msg.textContent = t("att.uploading");
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const resp = await fetch(api.url(`events/${e.id}/attachments`), {
        method: "POST",
        headers: { Authorization: "Bearer " + api.token() },
        body: form,
      });
      const data = await resp.json().catch(() => null);
      if (!resp.ok) {
        const err = (data && data.error) || {};
        throw Object.assign(new Error(err.message || resp.statusText), { status: resp.status });
      }
      pending.push(data.id);
      drawChips();
      msg.textContent = "";
      input.value = "";
      await onUploaded();
    } catch (err) {
      msg.className = "error";
      const what = err.status === 413 ? t("att.too_large") : err.status === 415 ? t("att.unsupported") : t("error.generic");
      msg.textContent = what + ": " + err.message;
    }
  });
  const el = h("div", { class: "att-upload" },
    h("label", { for: "att-file" }, t("att.upload")), " ", input,
    h("span", { class: "muted" }, t("att.hint")), " ", chips, " ", msg,
  );
  return {
    el,
    ids: () => pending.slice(),
    clear: () => {
      pending.length = 0;
      drawChips();
    },
  };
}
